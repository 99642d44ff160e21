"""The event classes, equal to their contracts in schemas/ (`eventplatform schemas check`)."""

from eventplatform import AvroEvent


class Greeting(AvroEvent, namespace="{{package}}", topic="greetings"):
    """Someone said hello."""

    name: str  # Who.
    text: str  # What they said.

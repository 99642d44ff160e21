"""A real Apache Kafka broker for development and tests, wherever the code runs.

See :mod:`eventplatform.devkafka.provision` for the order in which a broker is found or
started, and :mod:`eventplatform.devkafka.local` for the Java + Maven path.
"""

from eventplatform.devkafka.local import LocalCluster, LocalKafka
from eventplatform.devkafka.provision import Broker, Choice, Probe, Provider, choose, provision

__all__ = [
    "Broker",
    "Choice",
    "LocalCluster",
    "LocalKafka",
    "Probe",
    "Provider",
    "choose",
    "provision",
]

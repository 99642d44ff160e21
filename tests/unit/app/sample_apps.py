"""Objects for the ``serve`` spec tests."""

from __future__ import annotations

from eventplatform.app import Context, EventApp
from eventplatform.settings import load_settings
from tests.unit.app.records import Placed

app = EventApp("sample", settings=load_settings())
not_an_app = 42


@app.handle(Placed)
async def handle(event: Placed, ctx: Context) -> None:
    """Does nothing."""


def make() -> EventApp:
    """A factory, for ``--factory``."""
    return EventApp("made", settings=load_settings())


class Holder:
    """An attribute path deeper than one name."""

    app = app

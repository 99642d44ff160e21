"""The service: handles each Greeting once, recording it in the table `greetings`.

Its writes go through `ctx.transaction`, in the same transaction as the event's idempotency key
(default store: the SQLite file eventplatform-idempotency.db in the working directory; set
EVENTPLATFORM_IDEMPOTENCY__STORE=postgresql://… for PostgreSQL, the same SQL runs there).
"""

import logging

from eventplatform import Context, EventApp
from eventplatform.idempotency import IdempotencyStore

from {{package}}.events import Greeting

log = logging.getLogger("{{package}}")


async def create_tables(app: EventApp) -> None:
    """Create the table the handler writes, once the store is open."""
    await app.store.execute(
        "CREATE TABLE IF NOT EXISTS greetings (name TEXT NOT NULL, text TEXT NOT NULL)"
    )


async def greet(event: Greeting, ctx: Context) -> None:
    """Record the greeting (once per event, across crashes and restarts)."""
    await ctx.transaction.execute(
        "INSERT INTO greetings (name, text) VALUES ($1, $2)", event.name, event.text
    )
    log.info("%s says %r", event.name, event.text)


def create_app(*, topic: str | None = None, store: IdempotencyStore | None = None) -> EventApp:
    """The service's app; `topic` and `store` let tests use their own."""
    app = EventApp("{{package}}-greeter", store=store)
    app.on_startup(create_tables)
    app.add_handler(Greeting, greet, topic=topic)
    return app

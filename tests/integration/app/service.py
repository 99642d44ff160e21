"""A small service for ``eventplatform serve tests.integration.app.service:app``.

Everything comes from the environment: the ``EVENTPLATFORM_*`` settings (bootstrap servers,
registry topic, consumer group, idempotency store: a SQLite file holding an ``effects``
table), and ``APP_TEST_TOPIC`` for the topic. Each event inserts one row into ``effects``
through the store's transaction.
"""

from __future__ import annotations

import os

from eventplatform.app import Context, EventApp
from tests.integration.app.events import OrderPlaced

app = EventApp("serve-test")


@app.handle(OrderPlaced, topic=os.environ.get("APP_TEST_TOPIC", "orders"))
async def record(event: OrderPlaced, ctx: Context) -> None:
    """Record the order once, with its idempotency key."""
    await ctx.transaction.execute(
        "INSERT INTO effects (idempotency_key, order_id) VALUES (?, ?)",
        ctx.idempotency_key,
        event.order_id,
    )

"""The workers the queue benchmark runs (``serve benchmarks.queue_service:build --factory``).

Settings come from ``EVENTPLATFORM_*`` (broker, registry topic); ``QUEUE_TOPIC`` names the
topic, ``QUEUE_GROUP`` the share group (``QUEUE_MODE=work``) or consumer group (``handle``),
``QUEUE_CONCURRENCY`` the events in flight per process, ``QUEUE_DELAY`` the seconds of I/O
each event waits for.
"""

from __future__ import annotations

import asyncio
import os

from eventplatform.app import Context, EventApp
from eventplatform.demo.events import OrderPlaced
from eventplatform.idempotency import MemoryStore


def build() -> EventApp:
    """The benchmark's worker (a factory: it reads the environment in the child)."""
    topic = os.environ["QUEUE_TOPIC"]
    group = os.environ["QUEUE_GROUP"]
    delay = float(os.environ.get("QUEUE_DELAY", "0.01"))
    concurrency = int(os.environ.get("QUEUE_CONCURRENCY", "2"))
    if os.environ.get("QUEUE_MODE", "work") == "handle":
        app = EventApp("bench-queue", group_id=group, store=MemoryStore())

        @app.handle(OrderPlaced, topic=topic)
        async def stream(event: OrderPlaced, ctx: Context) -> None:
            await asyncio.sleep(delay)

        return app
    app = EventApp("bench-queue", store=MemoryStore())

    @app.work(OrderPlaced, topic=topic, group=group, concurrency=concurrency)
    async def work(event: OrderPlaced, ctx: Context) -> None:
        await asyncio.sleep(delay)

    return app

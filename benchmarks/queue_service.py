"""The workers the queue benchmark runs (``serve benchmarks.queue_service:build --factory``).

Settings come from ``EVENTPLATFORM_*`` (broker, registry topic); ``QUEUE_TOPIC`` names the
topic, ``QUEUE_GROUP`` the share group (``QUEUE_MODE=work``) or consumer group (``handle``),
``QUEUE_CONCURRENCY`` the events in flight per process, ``QUEUE_DELAY`` the seconds of I/O
each event waits for. With ``QUEUE_TIMES`` set, each process writes the monotonic clock at the
end of every handler call to ``<QUEUE_TIMES>.<pid>`` when it exits (one float per line; the
clock is the system's, so the benchmark merges the processes' files).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import time

from eventplatform.app import Context, EventApp
from eventplatform.demo.events import OrderPlaced
from eventplatform.idempotency import MemoryStore


def _timed() -> list[float]:
    """The list the handlers append their end times to, written out at exit if asked."""
    times: list[float] = []
    prefix = os.environ.get("QUEUE_TIMES")
    if prefix:

        def write() -> None:
            with open(f"{prefix}.{os.getpid()}", "w") as out:
                out.write("\n".join(repr(t) for t in times))

        atexit.register(write)
    return times


def build() -> EventApp:
    """The benchmark's worker (a factory: it reads the environment in the child)."""
    topic = os.environ["QUEUE_TOPIC"]
    group = os.environ["QUEUE_GROUP"]
    delay = float(os.environ.get("QUEUE_DELAY", "0.01"))
    concurrency = int(os.environ.get("QUEUE_CONCURRENCY", "2"))
    times = _timed()
    if os.environ.get("QUEUE_MODE", "work") == "handle":
        app = EventApp("bench-queue", group_id=group, store=MemoryStore())

        @app.handle(OrderPlaced, topic=topic)
        async def stream(event: OrderPlaced, ctx: Context) -> None:
            await asyncio.sleep(delay)
            times.append(time.monotonic())

        return app
    app = EventApp("bench-queue", store=MemoryStore())

    @app.work(OrderPlaced, topic=topic, group=group, concurrency=concurrency)
    async def work(event: OrderPlaced, ctx: Context) -> None:
        await asyncio.sleep(delay)
        times.append(time.monotonic())

    return app

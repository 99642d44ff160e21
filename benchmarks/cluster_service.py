"""The app the cluster benchmark scales (``serve benchmarks.cluster_service:build --factory``).

Settings come from ``EVENTPLATFORM_*`` (cluster and credentials, registry topic, consumer
group, idempotency store: a SQLite file of each process's own); ``CLUSTER_TOPIC`` names the
topic and ``CLUSTER_DELAY`` the seconds of I/O each event waits for (``asyncio.sleep``).
"""

from __future__ import annotations

import asyncio
import os

from eventplatform.app import Context, EventApp
from eventplatform.demo.events import OrderPlaced


def build() -> EventApp:
    """The benchmark's app (a factory: it reads the environment in the child)."""
    app = EventApp("bench-cluster")
    delay = float(os.environ.get("CLUSTER_DELAY", "0.002"))

    @app.handle(OrderPlaced, topic=os.environ["CLUSTER_TOPIC"])
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        await asyncio.sleep(delay)  # the handler's I/O

    return app

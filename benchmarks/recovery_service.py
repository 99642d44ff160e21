"""The app the recovery benchmark restarts (`serve benchmarks.recovery_service:build`).

Settings come from ``EVENTPLATFORM_*``; ``RECOVERY_TOPIC`` names the topic and
``RECOVERY_EFFECTS`` the file each handled event appends ``"<pid> <time>"`` to.
"""

from __future__ import annotations

import os
import time

from eventplatform.app import Context, EventApp
from eventplatform.demo.events import OrderPlaced


def build() -> EventApp:
    """The benchmark's app (a factory: it reads the environment in the child)."""
    app = EventApp("recovery")
    effects = os.environ["RECOVERY_EFFECTS"]
    pid = os.getpid()

    @app.handle(OrderPlaced, topic=os.environ["RECOVERY_TOPIC"])
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        with open(effects, "a") as out:  # noqa: ASYNC230 - a few lines per second
            out.write(f"{pid} {time.time()}\n")

    return app

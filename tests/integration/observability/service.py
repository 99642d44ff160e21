"""The app of the observability tests: ``eventplatform serve tests.integration.observability.
service:app``.

Settings come from the environment (``EVENTPLATFORM_*``), the topic from ``APP_TEST_TOPIC``.
Each event is logged from inside its handler (so a JSON line carries the event); an order
whose id starts with ``bad`` fails without retries, so it is dead-lettered.
"""

from __future__ import annotations

import logging
import os

from eventplatform.app import Context, EventApp
from eventplatform.settings import RetrySettings
from tests.integration.app.events import OrderPlaced

app = EventApp("observability-test")
log = logging.getLogger("tests.observability.service")


@app.handle(
    OrderPlaced,
    topic=os.environ.get("APP_TEST_TOPIC", "orders"),
    retry=RetrySettings(max_attempts=1),
)
async def handle(event: OrderPlaced, ctx: Context) -> None:
    """Log the order; refuse the bad ones."""
    log.info("handling order %s", event.order_id)
    if event.order_id.startswith("bad"):
        raise ValueError(f"order {event.order_id} is refused")

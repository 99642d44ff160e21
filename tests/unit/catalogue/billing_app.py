"""An app of the demo deployment for the catalogue tests: it bills orders and books payments."""

from __future__ import annotations

from eventplatform.app import Context, EventApp
from eventplatform.demo.events import OrderPaid, OrderPlaced
from eventplatform.settings import Settings

app = EventApp("billing", group_id="billing-service", settings=Settings())


@app.handle(OrderPlaced, topic="orders")
async def bill(event: OrderPlaced, ctx: Context) -> None:
    """Bill an order."""


@app.handle(OrderPaid, topic="payments")
async def book_payment(event: OrderPaid, ctx: Context) -> None:
    """Book a captured payment."""

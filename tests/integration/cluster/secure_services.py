"""The app the secure-cluster CLI tests run with ``eventplatform serve --factory``.

``SECURE_ORDERS``: the topic of ``OrderPlaced`` events it reads; ``SECURE_PAYMENTS``: where it
writes one ``OrderPaid`` per order; ``SECURE_PAYROLL`` (optional): a topic it also subscribes
(``CustomerRegistered``), to which its user may have no access.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from eventplatform.app import Context, EventApp
from eventplatform.demo.events import CustomerRegistered, OrderPaid, OrderPlaced


def orders_app() -> EventApp:
    app = EventApp("secure-orders")
    payments = os.environ["SECURE_PAYMENTS"]

    @app.handle(OrderPlaced, topic=os.environ["SECURE_ORDERS"])
    async def pay(event: OrderPlaced, ctx: Context) -> None:
        paid = OrderPaid(
            order_id=event.order_id,
            amount=event.total,
            currency=event.currency,
            paid_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
            payment_method="card",
        )
        await ctx.publish(paid, topic=payments, key=ctx.key)

    payroll = os.environ.get("SECURE_PAYROLL")
    if payroll:

        @app.handle(CustomerRegistered, topic=payroll)
        async def salary(event: CustomerRegistered) -> None:
            pass

    return app

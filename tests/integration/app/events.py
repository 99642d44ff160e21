"""Event types of the EventApp tests (importable by subprocess apps too)."""

from __future__ import annotations

from pydantic import Field

from eventplatform.schema import AvroEvent


class OrderPlaced(AvroEvent, namespace="com.example.orders"):
    """An order was placed."""

    order_id: str
    amount: int = 0


class OrderCancelled(AvroEvent, namespace="com.example.orders"):
    """An order was cancelled."""

    order_id: str
    reason: str = ""


class OrderShipped(AvroEvent, namespace="com.example.orders"):
    """An order left the warehouse (no handler takes it in these tests)."""

    order_id: str


class InvoiceIssued(AvroEvent, namespace="com.example.billing"):
    """Derived from an order by a handler."""

    order_id: str
    amount: int = 0


class Payment(AvroEvent, namespace="com.example.payments"):
    """A payment; Avro cannot say that the amount is positive, pydantic can."""

    payment_id: str
    amount: int = Field(ge=0)

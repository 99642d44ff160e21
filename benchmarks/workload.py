"""The events the Kafka benchmarks move, and how the raw references encode them by hand.

Every side of a comparison sends the *same records*: an ``OrderPlaced`` value in Confluent's
wire format (magic byte, schema id, Avro body), the customer id as the Kafka key, and the
CloudEvents Kafka binding headers in binary mode (DESIGN.md decision 3). The references build
those headers by hand (:func:`cloudevents_headers`) instead of calling
:class:`~eventplatform.cloudevents.EventMetadata`, so that no eventplatform code runs on their
side; what they compute per event (a UUID4, an RFC 3339 time) is what ours computes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO
from typing import Any

import fastavro

from eventplatform.demo.events import Currency, LineItem, OrderPlaced
from eventplatform.serde.wire import HEADER_SIZE, frame_header

__all__ = [
    "CUSTOMERS",
    "SOURCE",
    "RawCodec",
    "cloudevents_headers",
    "event_time",
    "orders",
]

#: CloudEvents ``source`` of every benchmark event.
SOURCE = "/benchmarks"
#: Distinct Kafka keys (customer ids) the events are spread over.
CUSTOMERS = 1_000
_TYPE = OrderPlaced.__avro_name__.encode()
_SPEC = b"1.0"
_CONTENT_TYPE = b"application/avro"
_SOURCE = SOURCE.encode()


def orders(count: int, *, start: int = 0) -> list[OrderPlaced]:
    """``count`` distinct orders (three line items, a note), keyed over :data:`CUSTOMERS`."""
    placed = datetime(2026, 11, 25, 12, 30, 15, 123000, tzinfo=UTC)
    events = []
    for n in range(start, start + count):
        items = [
            LineItem(sku=f"SKU-{(n + i) % 5000:05d}", quantity=i + 1, unit_price=Decimal("19.99"))
            for i in range(3)
        ]
        events.append(
            OrderPlaced(
                order_id=uuid.UUID(int=n + 1),
                customer_id=f"customer-{n % CUSTOMERS:06d}",
                items=items,
                total=Decimal("119.94"),
                currency=Currency.EUR,
                placed_at=placed,
                note=f"order {n}",
            )
        )
    return events


def event_time() -> bytes:
    """The current time as CloudEvents ``time`` (RFC 3339, UTC, ``Z``), UTF-8."""
    now = datetime.now(UTC).isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"
    return now.encode()


def cloudevents_headers(time: bytes | None = None) -> list[tuple[str, bytes]]:
    """A fresh event's binary-mode CloudEvents headers, built by hand: a new id per event,
    and ``time`` (the batch's, as ``EventProducer.publish_batch`` stamps) or the current time.
    """
    return [
        ("ce_specversion", _SPEC),
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_source", _SOURCE),
        ("ce_type", _TYPE),
        ("ce_time", time or event_time()),
        ("content-type", _CONTENT_TYPE),
    ]


class RawCodec:
    """fastavro by hand, the way a careful user writes it: one parsed schema, no registry.

    Args:
        schema_id: the id the registry gave ``OrderPlaced`` (for the 5-byte frame).
    """

    def __init__(self, schema_id: int) -> None:
        self.header = frame_header(schema_id)
        self.parsed: Any = fastavro.parse_schema(OrderPlaced.avro_schema())

    def encode(self, event: OrderPlaced) -> bytes:
        """Confluent-framed Avro of ``event`` (``model_dump`` + ``schemaless_writer``)."""
        buffer = BytesIO()
        buffer.write(self.header)
        fastavro.schemaless_writer(buffer, self.parsed, event.model_dump())
        return buffer.getvalue()

    def decode(self, data: bytes) -> OrderPlaced:
        """The typed event of a framed value (``schemaless_reader`` + ``model_validate``)."""
        buffer = BytesIO(data)
        buffer.seek(HEADER_SIZE)
        return OrderPlaced.model_validate(fastavro.schemaless_reader(buffer, self.parsed, None))

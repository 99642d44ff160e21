"""Where a handler's idempotency key comes from, for records without CloudEvents headers.

A record with CloudEvents headers names its own key: ``ce_idempotencykey``, else ``ce_id``
(DESIGN.md decision 3); its producer decided what one event is, and that stands. A record
without them (Kafka Connect, Debezium, ksqlDB, any stock Confluent client) says nothing, so
each handler declares where the key is::

    @app.handle(OrderPlaced, idempotency_key=IdempotencyKey.field("order_id"))
    @app.handle(OrderPlaced, idempotency_key=IdempotencyKey.header("x-request-id"))
    @app.handle(OrderPlaced, idempotency_key=IdempotencyKey.kafka_key())

The default, :meth:`IdempotencyKey.event_id`, is the record's derived id
(:func:`~eventplatform.cloudevents.record_event_id`: topic, partition, offset, timestamp): the
same at every redelivery, so each record's effects still happen once, but two copies of one
event written twice are two events. A declared source that a record lacks (no such header, a
null key, a null field) falls back to that derived id too, logged once per handler.

The key is recorded per consumer group, across every handler of the app: a key taken from a
Kafka key or a field must tell events apart (an order id keys one event per order only if a
topic carries one event per order).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from eventplatform.errors import ConfigurationError
from eventplatform.schema import AvroEvent

__all__ = ["IdempotencyKey", "key_text"]

KeySource = Literal["event_id", "header", "field", "kafka_key"]

# Avro types whose values make a key: text and whole numbers, and their byte forms.
_KEY_TYPES = frozenset({"string", "int", "long", "enum", "bytes", "fixed"})


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """Where the idempotency key of a record without CloudEvents headers comes from.

    Build one with :meth:`event_id` (the default), :meth:`header`, :meth:`field` or
    :meth:`kafka_key`; records with CloudEvents headers always keep their own key.

    Attributes:
        source: which part of the record holds the key.
        name: the header or field name (empty for the others).
    """

    source: KeySource
    name: str = ""

    @classmethod
    def event_id(cls) -> IdempotencyKey:
        """The record's derived id: once per record, duplicates written twice count twice."""
        return cls("event_id")

    @classmethod
    def header(cls, name: str) -> IdempotencyKey:
        """The value of the Kafka header ``name`` (its last value, as UTF-8 text).

        Raises:
            ConfigurationError: ``name`` is empty.
        """
        if not name:
            raise ConfigurationError("IdempotencyKey.header() needs a header name")
        return cls("header", name)

    @classmethod
    def field(cls, name: str) -> IdempotencyKey:
        """The value of the event's field ``name`` (a string, whole number, enum or bytes).

        The field is checked against the event class when the handler is registered.

        Raises:
            ConfigurationError: ``name`` is empty.
        """
        if not name:
            raise ConfigurationError("IdempotencyKey.field() needs a field name")
        return cls("field", name)

    @classmethod
    def kafka_key(cls) -> IdempotencyKey:
        """The record's Kafka key (see :func:`key_text` for keys that are not text)."""
        return cls("kafka_key")

    def __str__(self) -> str:
        return f"IdempotencyKey.{self.source}({repr(self.name) if self.name else ''})"

    def check(self, event_type: type[AvroEvent]) -> None:
        """Refuse a field choice that ``event_type`` cannot supply.

        Raises:
            ConfigurationError: the class has no such field, or its Avro type cannot make a
                key (records, arrays, maps, floating point, booleans, logical types other
                than ``uuid``).
        """
        if self.source != "field":
            return
        fields = event_type.model_fields
        info = fields.get(self.name)
        if info is None:
            raise ConfigurationError(
                f"IdempotencyKey.field({self.name!r}): {event_type.__avro_name__} has no such "
                f"field (fields: {', '.join(fields)})"
            )
        avro_name = info.alias or self.name
        schema = event_type.avro_schema()
        kind = next(f["type"] for f in schema["fields"] if f["name"] == avro_name)
        if isinstance(kind, list):  # a union: the key is read when the value is not null
            kinds = [k for k in kind if k != "null"]
            kind = kinds[0] if len(kinds) == 1 else kind
        if not _usable(kind):
            raise ConfigurationError(
                f"IdempotencyKey.field({self.name!r}): field of {event_type.__avro_name__} has "
                f"Avro type {kind!r}; a key needs a string, int, long, enum, bytes or fixed"
            )

    def read(self, *, headers: Any, key: bytes | None, event: Any) -> str | None:
        """The key of one record, or None when the record lacks the chosen part.

        Args:
            headers: the record's headers (name, value) pairs.
            key: the record's Kafka key.
            event: the decoded event (read only for a field choice).
        """
        source = self.source
        if source == "kafka_key":
            return key_text(key) if key else None
        if source == "header":
            found: bytes | None = None
            for name, raw in headers or ():
                if name == self.name:
                    found = raw
            return key_text(found) if found else None
        if source == "field":
            value = getattr(event, self.name, None)
            return None if value is None or value in ("", b"") else key_text(value)
        return None


def _usable(kind: Any) -> bool:
    if isinstance(kind, str):
        return kind in _KEY_TYPES
    if isinstance(kind, dict):
        logical = kind.get("logicalType")
        if logical is not None:
            return bool(logical == "uuid")
        return _usable(kind.get("type"))
    return False


def key_text(value: Any) -> str:
    """An idempotency key as text: text as is, numbers and UUIDs in decimal/canonical form.

    Bytes (a Kafka key or header, a ``bytes`` field) are their UTF-8 text when that is
    printable; otherwise (an Avro-serialized key, binary ids) ``0x`` and their hex digits, so
    the key is still exact and fits any store (PostgreSQL's ``text`` holds no NUL).
    """
    if isinstance(value, bytes):
        try:
            text = value.decode()
        except UnicodeDecodeError:
            return "0x" + value.hex()
        return text if text.isprintable() else "0x" + value.hex()
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, str | int | uuid.UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be an idempotency key")

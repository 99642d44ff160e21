"""Event metadata as CloudEvents Kafka protocol binding headers, binary content mode.

CloudEvents 1.0.2, Kafka Protocol Binding §3.2 (binary content mode): the event data is the
record value (here Confluent-framed Avro), every context attribute travels in a header named
``ce_<attribute>`` with a UTF-8 value, and ``datacontenttype`` maps to ``content-type``. The
Kafka record key carries the partitioning key (§3.4, the ``partitionkey`` extension), so it is
not repeated in a header.

Two more headers, both optional on the wire:

- ``ce_idempotencykey``: a CloudEvents extension attribute (lower-case alphanumerics, as §3.1.1
  of the core spec requires of extension names) naming the unit of once-only handling.
  Absent, it defaults to ``ce_id``.
- ``traceparent`` / ``tracestate``: W3C Trace Context, under the names OpenTelemetry's Kafka
  instrumentation uses, passed through unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from eventplatform.errors import DeserializationError

__all__ = [
    "AVRO_CONTENT_TYPE",
    "EventMetadata",
    "HeaderTemplate",
    "InvalidEventHeaders",
    "Headers",
    "new_event_id",
]

SPEC_VERSION = "1.0"
#: Confluent-framed Avro (magic byte, schema id, binary body).
AVRO_CONTENT_TYPE = "application/avro"

H_SPECVERSION = "ce_specversion"
H_ID = "ce_id"
H_SOURCE = "ce_source"
H_TYPE = "ce_type"
H_TIME = "ce_time"
H_SUBJECT = "ce_subject"
H_IDEMPOTENCY_KEY = "ce_idempotencykey"
H_CONTENT_TYPE = "content-type"
H_TRACEPARENT = "traceparent"
H_TRACESTATE = "tracestate"

_KNOWN = {
    H_SPECVERSION,
    H_ID,
    H_SOURCE,
    H_TYPE,
    H_TIME,
    H_SUBJECT,
    H_IDEMPOTENCY_KEY,
    H_CONTENT_TYPE,
    H_TRACEPARENT,
    H_TRACESTATE,
}

Headers = Sequence[tuple[str, bytes]]


class InvalidEventHeaders(DeserializationError):
    """A record lacks a required CloudEvents header or carries a malformed one."""


# The variant field (RFC 9562 §4.1): the top two bits of octet 8 are 10, so its first hex
# digit is one of 8, 9, a, b; the random digit's low two bits pick which.
_VARIANT = {f"{n:x}": "89ab"[n & 3] for n in range(16)}


def _uuid4_text(digits: str) -> str:
    # A random UUID (version 4) from 32 random hex digits: what str(uuid.uuid4()) gives, with
    # the version digit and variant bits set the same way, for a third of its cost.
    return (
        f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-"
        f"{_VARIANT[digits[16]]}{digits[17:20]}-{digits[20:32]}"
    )


#: Random hex digits for :func:`new_event_id`, read from the system in blocks: a getrandom()
#: call per id costs more than the rest of making it.
_spare_digits: list[str] = []
_BLOCK_IDS = 256


def _forget_spare_digits() -> None:
    _spare_digits.clear()  # a forked child must not hand out its parent's ids


os.register_at_fork(after_in_child=_forget_spare_digits)


def new_event_id() -> str:
    """A fresh event id (a random UUID, version 4, as text)."""
    try:
        return _uuid4_text(_spare_digits.pop())
    except IndexError:
        digits = os.urandom(16 * _BLOCK_IDS).hex()
        _spare_digits.extend(digits[n : n + 32] for n in range(32, 32 * _BLOCK_IDS, 32))
        return _uuid4_text(digits[:32])


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix, as CloudEvents' ``time`` attribute requires."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).isoformat(timespec="microseconds")
    return text.removesuffix("+00:00") + "Z"


class HeaderTemplate:
    """The binary-mode headers of new events of one source and type, pre-encoded.

    What :meth:`EventMetadata.to_headers` gives for metadata with only an id and a time, built
    per event from the constant headers and those two values; the batch publish path uses it.
    """

    __slots__ = ("content_type", "source", "specversion", "type")

    def __init__(self, source: str, type: str, content_type: str = AVRO_CONTENT_TYPE) -> None:
        self.specversion = (H_SPECVERSION, SPEC_VERSION.encode())
        self.source = (H_SOURCE, source.encode())
        self.type = (H_TYPE, type.encode())
        self.content_type = (H_CONTENT_TYPE, content_type.encode())

    def headers(
        self, id: str, time: bytes, extra: Iterable[tuple[str, bytes]] = ()
    ) -> list[tuple[str, bytes]]:
        """The headers of the event ``id`` at ``time`` (:func:`format_time`, UTF-8)."""
        headers = [
            self.specversion,
            (H_ID, id.encode()),
            self.source,
            self.type,
            (H_TIME, time),
            self.content_type,
        ]
        if extra:
            headers.extend(extra)
        return headers


@dataclass(frozen=True, slots=True)
class EventMetadata:
    """The CloudEvents context of one event, plus idempotency key and trace context.

    Attributes:
        id: ``ce_id``; unique per source.
        source: ``ce_source``; a URI-reference naming the producer (``/services/orders``).
        type: ``ce_type``; the event type, here the Avro record's full name.
        time: ``ce_time``; when the event happened.
        subject: ``ce_subject``; optional, the thing the event is about.
        content_type: ``content-type``; the value's encoding.
        idempotency_key: once-only handling is per this key; defaults to ``id``.
        traceparent, tracestate: W3C Trace Context, passed through when present.
        extensions: other ``ce_*`` attributes, without the prefix.
    """

    id: str
    source: str
    type: str
    time: datetime
    subject: str | None = None
    content_type: str = AVRO_CONTENT_TYPE
    idempotency_key: str = ""
    traceparent: str | None = None
    tracestate: str | None = None
    specversion: str = SPEC_VERSION
    extensions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.idempotency_key:
            object.__setattr__(self, "idempotency_key", self.id)

    @classmethod
    def new(
        cls,
        *,
        source: str,
        type: str,
        id: str | None = None,
        time: datetime | None = None,
        subject: str | None = None,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
        extensions: Mapping[str, str] | None = None,
    ) -> EventMetadata:
        """Metadata for a new event: a fresh id and the current time unless given."""
        return cls(
            id=id or new_event_id(),
            source=source,
            type=type,
            time=time or datetime.now(UTC),
            subject=subject,
            idempotency_key=idempotency_key or "",
            traceparent=traceparent,
            tracestate=tracestate,
            extensions=dict(extensions or {}),
        )

    def to_headers(self, extra: Iterable[tuple[str, bytes]] = ()) -> list[tuple[str, bytes]]:
        """The Kafka headers of this event (binary content mode), then ``extra``."""
        headers = [
            (H_SPECVERSION, self.specversion.encode()),
            (H_ID, self.id.encode()),
            (H_SOURCE, self.source.encode()),
            (H_TYPE, self.type.encode()),
            (H_TIME, format_time(self.time).encode()),
            (H_CONTENT_TYPE, self.content_type.encode()),
        ]
        if self.subject is not None:
            headers.append((H_SUBJECT, self.subject.encode()))
        if self.idempotency_key != self.id:
            headers.append((H_IDEMPOTENCY_KEY, self.idempotency_key.encode()))
        if self.traceparent:
            headers.append((H_TRACEPARENT, self.traceparent.encode()))
        if self.tracestate:
            headers.append((H_TRACESTATE, self.tracestate.encode()))
        for name, value in self.extensions.items():
            headers.append((f"ce_{name}", value.encode()))
        headers.extend(extra)
        return headers

    @classmethod
    def from_headers(
        cls,
        headers: Headers,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> EventMetadata:
        """Read the metadata of a record.

        Raises:
            InvalidEventHeaders: a required attribute is missing, not UTF-8, or ``ce_time`` is
                not RFC 3339; the message names the header and the record's position.
        """
        values: dict[str, str] = {}
        extensions: dict[str, str] = {}
        for name, raw in headers:
            if not (name in _KNOWN or name.startswith("ce_")):
                continue
            try:
                text = raw.decode() if raw is not None else ""
            except UnicodeDecodeError as exc:
                raise InvalidEventHeaders(
                    f"header {name!r} is not UTF-8", topic=topic, partition=partition, offset=offset
                ) from exc
            if name in _KNOWN:
                values[name] = text
            else:
                extensions[name[3:]] = text
        for required in (H_ID, H_SOURCE, H_TYPE, H_SPECVERSION):
            if not values.get(required):
                raise InvalidEventHeaders(
                    f"missing CloudEvents header {required!r}",
                    topic=topic,
                    partition=partition,
                    offset=offset,
                )
        time_text = values.get(H_TIME)
        try:
            when = datetime.fromisoformat(time_text) if time_text else datetime.now(UTC)
        except ValueError as exc:
            raise InvalidEventHeaders(
                f"header {H_TIME!r} is not RFC 3339: {time_text!r}",
                topic=topic,
                partition=partition,
                offset=offset,
            ) from exc
        return cls(
            id=values[H_ID],
            source=values[H_SOURCE],
            type=values[H_TYPE],
            time=when,
            subject=values.get(H_SUBJECT),
            content_type=values.get(H_CONTENT_TYPE, AVRO_CONTENT_TYPE),
            idempotency_key=values.get(H_IDEMPOTENCY_KEY, ""),
            traceparent=values.get(H_TRACEPARENT),
            tracestate=values.get(H_TRACESTATE),
            specversion=values[H_SPECVERSION],
            extensions=extensions,
        )


def header_value(headers: Headers, name: str) -> str | None:
    """The last value of header ``name`` as text, or None."""
    found: str | None = None
    for key, raw in headers:
        if key == name and raw is not None:
            found = raw.decode(errors="replace")
    return found

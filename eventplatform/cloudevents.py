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

Records without any ``ce_*`` header (what Kafka Connect, Debezium, ksqlDB and every stock
Confluent client write) are events too: :meth:`EventMetadata.from_record` gives them metadata
from the record itself (type = writer schema's full name, time = record timestamp, id =
:func:`record_event_id` of the record's position, source = :func:`default_source` of the
topic unless configured). A record with some ``ce_*`` header is held to the binding: a missing
or malformed attribute is an error, never guessed.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from eventplatform.errors import InvalidEventHeaders

__all__ = [
    "AVRO_CONTENT_TYPE",
    "EventMetadata",
    "HeaderTemplate",
    "InvalidEventHeaders",
    "Headers",
    "default_source",
    "has_cloudevents_headers",
    "new_event_id",
    "parse_time",
    "record_event_id",
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


# RFC 3339 §5.6 "date-time", exactly: full-date "T" full-time, where "T" and "Z" may be
# lower case (§5.6, NOTE), time-secfrac is any number of digits, and time-offset is "Z" or
# ±hh:mm. Nothing else: no date-only values, no ISO 8601 basic format, no missing offset.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_NO_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?", re.ASCII)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 ``date-time`` (CloudEvents' ``time``) into an aware datetime.

    Accepts the whole of RFC 3339 §5.6: lower-case ``t`` and ``z``, any number of fractional
    digits (truncated to microseconds, Python's resolution), any offset including ``-00:00``
    (§4.3: UTC, local offset unknown), and a leap second ``:60`` (read as ``:59.999999``,
    the last instant Python can represent before it).

    Raises:
        ValueError: ``text`` is not an RFC 3339 date-time; a value without a UTC offset is
            refused by name (it does not say which instant it means).
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        if _NO_OFFSET.fullmatch(text):
            raise ValueError(
                f"{text!r} has no UTC offset; RFC 3339 requires 'Z' or '±hh:mm' (a local time "
                "names no instant)"
            )
        raise ValueError(f"{text!r} is not an RFC 3339 date-time (e.g. 2026-01-02T03:04:05Z)")
    offset_ok = match[8] or (match[10] <= "23" and match[11] <= "59")
    if len(match[7] or "") <= 6 and match[6] != "60" and offset_ok:
        # Checked as RFC 3339 by the pattern, this common form is converted by the C parser
        # in a twentieth of the time of _from_fields (it runs once per consumed record);
        # tests/unit/cloudevents/test_time.py checks that both agree.
        try:
            upper = text[10] == "T" and text[-1] != "z"
            return datetime.fromisoformat(text if upper else text.upper())
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a valid date-time: {exc}") from None
    return _from_fields(text, match)


def _from_fields(text: str, match: re.Match[str]) -> datetime:
    """The datetime of an :data:`_RFC3339` match, field by field (every form RFC 3339 has).

    Raises:
        ValueError: a field is out of range.
    """
    year, month, day, hour, minute, second = (int(match[n]) for n in range(1, 7))
    fraction = match[7] or ""
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    if match[8]:
        tz = UTC
    else:
        hours, minutes = int(match[10]), int(match[11])
        if hours > 23 or minutes > 59:
            raise ValueError(f"{text!r} has an offset out of range (hh 00-23, mm 00-59)")
        delta = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-delta if match[9] == "-" else delta) if delta else UTC
    leap = second == 60  # RFC 3339 §5.7: time-second may be 60 at a leap second
    try:
        value = datetime(year, month, day, hour, minute, 59 if leap else second, micros, tzinfo=tz)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date-time: {exc}") from None
    return value.replace(microsecond=999_999) if leap else value


def has_cloudevents_headers(headers: Headers | None) -> bool:
    """Whether a record carries any ``ce_*`` header (and so must be a valid CloudEvent)."""
    return any(name.startswith("ce_") for name, _ in headers or ())


#: The namespace of :func:`record_event_id`: a fixed UUID (RFC 9562 §5.5). Changing it would
#: change every derived id, and with them the idempotency keys already recorded.
RECORD_ID_NAMESPACE = uuid.UUID("0b5c8f4e-7a53-4c1e-9d2a-6f1e3b8a9c47")


def record_event_id(topic: str, partition: int, offset: int, timestamp: int) -> str:
    """The id of a record without CloudEvents headers: stable across its redeliveries.

    ``uuid5(RECORD_ID_NAMESPACE, "<topic>/<partition>/<offset>/<timestamp ms>")``. The
    position names the record; the timestamp (stored with it, so equally stable) keeps a
    recreated topic's records, which reuse offsets from 0, from being taken for the old ones.
    """
    return str(uuid.uuid5(RECORD_ID_NAMESPACE, f"{topic}/{partition}/{offset}/{timestamp}"))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def default_source(topic: str) -> str:
    """The CloudEvents ``source`` of records of ``topic`` without one: ``/topics/<topic>``."""
    return f"/topics/{topic}"


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
        derived: the record had no CloudEvents headers; the attributes were derived from
            the record (:meth:`from_record`).
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
    derived: bool = False

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
        name = ""
        try:
            for name, raw in headers:
                if name in _KNOWN:
                    values[name] = raw.decode() if raw is not None else ""
                elif name.startswith("ce_"):
                    extensions[name[3:]] = raw.decode() if raw is not None else ""
        except UnicodeDecodeError as exc:
            raise InvalidEventHeaders(
                f"header {name!r} is not UTF-8", topic=topic, partition=partition, offset=offset
            ) from exc
        get = values.get
        id, source, type, specversion = get(H_ID), get(H_SOURCE), get(H_TYPE), get(H_SPECVERSION)
        if not (id and source and type and specversion):
            for required in (H_ID, H_SOURCE, H_TYPE, H_SPECVERSION):
                if not get(required):
                    raise InvalidEventHeaders(
                        f"missing CloudEvents header {required!r}",
                        topic=topic,
                        partition=partition,
                        offset=offset,
                    )
            raise AssertionError("unreachable: a required header is missing")
        time_text = get(H_TIME)
        try:
            when = parse_time(time_text) if time_text else datetime.now(UTC)
        except ValueError as exc:
            raise InvalidEventHeaders(
                f"header {H_TIME!r} is not RFC 3339: {exc}",
                topic=topic,
                partition=partition,
                offset=offset,
            ) from exc
        # Built field by field (:func:`_assemble`): the generated __init__ of a frozen
        # dataclass costs twice as much, and this runs once per consumed record.
        return _assemble(
            cls,
            id,
            source,
            type,
            when,
            get(H_SUBJECT),
            get(H_CONTENT_TYPE, AVRO_CONTENT_TYPE),
            get(H_IDEMPOTENCY_KEY) or id,
            get(H_TRACEPARENT),
            get(H_TRACESTATE),
            specversion,
            extensions,
        )

    @classmethod
    def from_record(
        cls,
        *,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        type: str,
        source: str | None = None,
        idempotency_key: str | None = None,
        headers: Headers | None = None,
    ) -> EventMetadata:
        """The metadata of a record without CloudEvents headers, derived from the record.

        Args:
            topic, partition, offset: the record's position; with ``timestamp`` they make the
                id (:func:`record_event_id`), the same at every redelivery.
            timestamp: the record's timestamp (ms since the epoch); also ``time``. A record
                without one (-1, pre-0.10 message formats) gets the epoch.
            type: the writer schema's full name.
            source: default :func:`default_source` of ``topic``.
            idempotency_key: default the derived id.
            headers: the record's headers, for W3C ``traceparent``/``tracestate``.
        """
        id = record_event_id(topic, partition, offset, timestamp)
        trace = dict(_trace_headers(headers)) if headers else {}
        return cls(
            id=id,
            source=source or default_source(topic),
            type=type,
            time=_EPOCH + timedelta(milliseconds=max(timestamp, 0)),
            content_type=AVRO_CONTENT_TYPE,
            idempotency_key=idempotency_key or id,
            traceparent=trace.get(H_TRACEPARENT),
            tracestate=trace.get(H_TRACESTATE),
            derived=True,
        )


def _setter(name: str) -> Any:
    """The slot setter of ``name``, which bypasses the frozen dataclass's ``__setattr__``."""
    return EventMetadata.__dict__[name].__set__


_S_ID, _S_SOURCE, _S_TYPE, _S_TIME = map(_setter, ("id", "source", "type", "time"))
_S_SUBJECT, _S_CONTENT_TYPE = _setter("subject"), _setter("content_type")
_S_KEY, _S_SPECVERSION = _setter("idempotency_key"), _setter("specversion")
_S_TRACEPARENT, _S_TRACESTATE = _setter("traceparent"), _setter("tracestate")
_S_EXTENSIONS, _S_DERIVED = _setter("extensions"), _setter("derived")
#: The fields :func:`_assemble` sets: all of them (tests/unit/cloudevents checks).
_ASSEMBLED_FIELDS = frozenset(
    {"id", "source", "type", "time", "subject", "content_type", "idempotency_key"}
    | {"specversion", "traceparent", "tracestate", "extensions", "derived"}
)


def _assemble(
    cls: type[EventMetadata],
    id: str,
    source: str,
    type: str,
    time: datetime,
    subject: str | None,
    content_type: str,
    idempotency_key: str,
    traceparent: str | None,
    tracestate: str | None,
    specversion: str,
    extensions: Mapping[str, str],
) -> EventMetadata:
    """``cls(...)`` of a record's headers (not derived), slot by slot past the frozen guard.

    Every field is set, as ``__init__`` would set it; ``idempotency_key`` must be non-empty
    (``__post_init__``'s default is the caller's to apply).
    """
    self = object.__new__(cls)
    _S_ID(self, id)
    _S_SOURCE(self, source)
    _S_TYPE(self, type)
    _S_TIME(self, time)
    _S_SUBJECT(self, subject)
    _S_CONTENT_TYPE(self, content_type)
    _S_KEY(self, idempotency_key)
    _S_TRACEPARENT(self, traceparent)
    _S_TRACESTATE(self, tracestate)
    _S_SPECVERSION(self, specversion)
    _S_EXTENSIONS(self, extensions)
    _S_DERIVED(self, False)
    return self


def _trace_headers(headers: Headers) -> Iterable[tuple[str, str]]:
    for name, raw in headers:
        if name in (H_TRACEPARENT, H_TRACESTATE) and raw:
            text = raw.decode(errors="replace")
            yield name, text

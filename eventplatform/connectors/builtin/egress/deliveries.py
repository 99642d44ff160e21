"""What the webhook egress sends, when it tries again, and what it records of each attempt.

**The body** follows the payload structure Standard Webhooks recommends
(https://www.standardwebhooks.com/, "Payload structure"): a JSON object with ``type``,
``timestamp`` and ``data``; the other CloudEvents attributes of the event ride along as
``id``, ``source`` and, when there is one, ``subject``::

    {"type": "com.example.orders.OrderPlaced", "timestamp": "2026-05-01T12:00:00.000000Z",
     "id": "8c4e…", "source": "/connectors/orders-in", "data": {"order_id": "…", …}}

``data`` is the Avro record as JSON in the forms the ingress accepts (and pydantic writes):
decimals, UUIDs and timestamps as strings (RFC 3339, UTC as ``Z``), enums as their symbols;
``bytes`` and ``fixed`` values, which JSON has no type for, as base64 strings.

**Retries** follow a schedule of waits, Svix's by default (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
10 h: eight attempts over about a day and a half). An answer with ``Retry-After``
(RFC 9110 §10.2.3, seconds or an HTTP date) sets the next wait instead, capped so that an
endpoint cannot park a delivery for ever.

**Attempts** are recorded as JSON records (:class:`DeliveryAttempt`) in the deliveries topic,
keyed by endpoint, so the history of one endpoint is in order in one partition.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from aiokafka import errors as kafka_errors

from eventplatform.cloudevents import EventMetadata, format_time
from eventplatform.errors import EventPlatformError
from eventplatform.producer import EventProducer

__all__ = [
    "SVIX_SCHEDULE",
    "DeliveryAttempt",
    "DeliveryOutcome",
    "DeliveryRecorder",
    "EndpointRecords",
    "RetrySchedule",
    "json_value",
    "parse_retry_after",
    "webhook_body",
]

log = logging.getLogger("eventplatform.connectors.egress")

#: Svix's retry schedule: the waits after the first to the seventh failed attempt.
SVIX_SCHEDULE: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


def json_value(value: Any) -> Any:
    """An Avro value as read by fastavro, as JSON-compatible Python (see the module docstring).

    Non-finite floats (NaN, ±Infinity), which JSON cannot write, become None.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return _json_default(value)


def _json_default(value: Any) -> Any:
    # The JSON form of a value JSON lacks. json's C encoder walks the containers and calls
    # this for such values, which makes json_value's walk unnecessary on the common path.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.utcoffset() == timedelta(0):
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, date | clock_time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return str(value)


_encode_body = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False
).encode


def webhook_body(metadata: EventMetadata, data: Any) -> bytes:
    """The UTF-8 JSON body of a delivery of the event ``metadata`` describes, ``data`` its value.

    The same bytes go to every endpoint and every attempt: only the signature headers change.
    """
    body: dict[str, Any] = {
        "type": metadata.type,
        "timestamp": format_time(metadata.time),
        "id": metadata.id,
        "source": metadata.source,
    }
    if metadata.subject is not None:
        body["subject"] = metadata.subject
    body["data"] = data
    try:
        return _encode_body(body).encode()
    except ValueError:  # a NaN or an infinity, which JSON cannot write: json_value nulls them
        body["data"] = json_value(data)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait as a ``Retry-After`` header says: delay-seconds or an HTTP-date.

    Returns:
        None when the header is absent or malformed; never less than 0.
    """
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT (RFC 9110 §5.6.7)
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """The waits between attempts of one delivery.

    Attributes:
        delays: seconds to wait after the 1st, 2nd … failed attempt; a delivery gets
            ``len(delays) + 1`` attempts in all.
        max_retry_after: the longest wait a ``Retry-After`` header may ask for.
    """

    delays: Sequence[float] = SVIX_SCHEDULE
    max_retry_after: float = 36000.0

    @property
    def attempts(self) -> int:
        """Attempts in all, the first included."""
        return len(self.delays) + 1

    def next_delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds before attempt ``attempt + 1`` after attempt ``attempt`` failed.

        Returns:
            None when ``attempt`` was the last one: the delivery is dead-lettered.
        """
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            # The endpoint knows best when it can take the delivery (RFC 9110 §10.2.3).
            return min(max(0.0, retry_after), self.max_retry_after)
        return float(self.delays[attempt - 1])


class DeliveryOutcome(StrEnum):
    """What became of one delivery attempt."""

    DELIVERED = "delivered"  # a 2xx answer
    RETRYING = "retrying"  # failed; another attempt follows
    DEAD_LETTERED = "dead_lettered"  # failed, schedule exhausted: in the dead-letter topic
    REFUSED = "refused"  # the SSRF guard refused the address: dead-lettered at once
    DISABLED = "disabled"  # 410 Gone: the endpoint is disabled from now on
    SKIPPED = "skipped"  # the endpoint was disabled already: not sent


_clock: list[Any] = [-1, ""]


def attempt_time() -> str:
    """Now in RFC 3339 (UTC, ``Z``) to the millisecond, as :func:`format_time` writes it
    (``2026-05-01T12:00:00.123000Z``); the date and time of day are formatted once a second."""
    seconds, millis = divmod(time.time_ns() // 1_000_000, 1000)
    if seconds != _clock[0]:
        _clock[1] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds))
        _clock[0] = seconds
    return f"{_clock[1]}{millis:03d}000Z"


_string = json.encoder.encode_basestring


def _optional_string(value: str | None) -> str:
    return "null" if value is None else _string(value)


def _optional_int(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def _optional_ms(value: float | None) -> str:
    # float.__repr__ is what json.dumps writes for a finite float.
    return "null" if value is None else repr(round(float(value), 3))


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One attempt to deliver one event to one endpoint, as recorded in the deliveries topic.

    Attributes:
        connector: the egress connector's name.
        endpoint: the endpoint's name; ``url`` where it was sent.
        event_id: the event's ``ce_id``; ``webhook_id`` the ``webhook-id`` header sent (the
            idempotency key), ``type`` its ``ce_type``.
        topic, partition, offset: where the event was read.
        attempt: 1 for the first attempt.
        outcome: what became of it.
        status_code: the HTTP status answered, None without an answer.
        latency_ms: milliseconds from sending to the answer (or the failure).
        error: why it failed, when it did.
        next_attempt_at: RFC 3339 time of the next attempt when ``retrying``.
        at: RFC 3339 time of the attempt.
    """

    connector: str
    endpoint: str
    url: str
    event_id: str
    webhook_id: str
    type: str
    topic: str
    partition: int
    offset: int
    attempt: int
    outcome: DeliveryOutcome
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    next_attempt_at: str | None = None
    at: str = ""

    def to_json(self) -> bytes:
        """The record's value: compact UTF-8 JSON."""
        # Written out rather than through dataclasses.asdict (which deep-copies every value)
        # and json.dumps: one record per delivery attempt puts this on the egress's hot path.
        # Strings go through the json module's own escaping; the keys are fixed.
        return (
            f'{{"connector":{_string(self.connector)},"endpoint":{_string(self.endpoint)},'
            f'"url":{_string(self.url)},"event_id":{_string(self.event_id)},'
            f'"webhook_id":{_string(self.webhook_id)},"type":{_string(self.type)},'
            f'"topic":{_string(self.topic)},"partition":{int(self.partition)},'
            f'"offset":{int(self.offset)},"attempt":{int(self.attempt)},'
            f'"outcome":{_string(self.outcome.value)},'
            f'"status_code":{_optional_int(self.status_code)},'
            f'"latency_ms":{_optional_ms(self.latency_ms)},'
            f'"error":{_optional_string(self.error)},'
            f'"next_attempt_at":{_optional_string(self.next_attempt_at)},'
            f'"at":{_string(self.at or format_time(datetime.now(UTC)))}}}'
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> DeliveryAttempt:
        """Read a record written by :meth:`to_json`.

        Raises:
            ValueError: not such a record.
        """
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("a delivery attempt record is a JSON object")
        try:
            data["outcome"] = DeliveryOutcome(data["outcome"])
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a delivery attempt record: {exc}") from exc


class EndpointRecords:
    """Renders one endpoint's attempt records: the bytes of :meth:`DeliveryAttempt.to_json`
    without building a :class:`DeliveryAttempt`.

    One record is written per delivery attempt, so the parts that do not change are escaped
    once: the connector, endpoint and URL here, and an event's own fields once for all the
    endpoints it goes to (:meth:`event_fields`).

    Args:
        connector: the egress connector's name.
        endpoint: the endpoint's name (also the record's key).
        url: the endpoint's URL.
    """

    __slots__ = ("_prefix", "key")

    def __init__(self, connector: str, endpoint: str, url: str) -> None:
        self._prefix = (
            f'{{"connector":{_string(connector)},"endpoint":{_string(endpoint)},'
            f'"url":{_string(url)},'
        )
        #: The record's key: the endpoint's name.
        self.key = endpoint.encode()

    @staticmethod
    def event_fields(
        event_id: str, webhook_id: str, type: str, topic: str, partition: int, offset: int
    ) -> str:
        """The event's part of its records, the same for every endpoint and attempt."""
        return (
            f'"event_id":{_string(event_id)},"webhook_id":{_string(webhook_id)},'
            f'"type":{_string(type)},"topic":{_string(topic)},"partition":{int(partition)},'
            f'"offset":{int(offset)},'
        )

    def render(
        self,
        event_fields: str,
        attempt: int,
        outcome: str,
        status_code: int | None,
        latency_ms: float | None,
        error: str | None,
        next_attempt_at: str | None,
        at: str,
    ) -> bytes:
        """The record's value; ``outcome`` a :class:`DeliveryOutcome` value."""
        return (
            f'{self._prefix}{event_fields}"attempt":{int(attempt)},'
            f'"outcome":{_string(outcome)},'
            f'"status_code":{_optional_int(status_code)},'
            f'"latency_ms":{_optional_ms(latency_ms)},'
            f'"error":{_optional_string(error)},'
            f'"next_attempt_at":{_optional_string(next_attempt_at)},'
            f'"at":{_string(at)}}}'
        ).encode()

    def delivered(
        self, event_fields: str, attempt: int, status_code: int, latency_ms: float, at: str
    ) -> bytes:
        """:meth:`render` of a ``delivered`` attempt (most of them), with less to decide."""
        return (
            f'{self._prefix}{event_fields}"attempt":{int(attempt)},"outcome":"delivered",'
            f'"status_code":{int(status_code)},"latency_ms":{round(float(latency_ms), 3)!r},'
            f'"error":null,"next_attempt_at":null,"at":{_string(at)}}}'
        ).encode()


_JSON_HEADERS = (("content-type", b"application/json"),)


class DeliveryRecorder:
    """Writes delivery attempts to the deliveries topic in the background, in order.

    Records are handed to the producer in the order they were made (one partition per
    endpoint, by key) and acknowledged in batches, so recording never slows a delivery down.
    A record that cannot be written is logged and dropped: it is a history, not a delivery.
    Create it inside a running event loop; :meth:`close` writes what is queued.

    Args:
        producer: a started producer (its aiokafka client sends the records).
        topic: the deliveries topic.
        linger: seconds to gather records before each write.
    """

    def __init__(self, producer: EventProducer, topic: str, *, linger: float = 0.05) -> None:
        self._producer = producer
        self._topic = topic
        self.linger = linger
        # A list and an event rather than an asyncio.Queue: one append per attempt, and the
        # writer takes everything at once. Records are kept as (key, value, headers).
        self._pending: list[tuple[bytes, bytes, Sequence[tuple[str, bytes]]]] = []
        self._arrived = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._write(), name=f"deliveries {topic}")
        self.failures = 0

    def add(self, attempt: DeliveryAttempt) -> None:
        """Queue ``attempt`` for writing; returns at once."""
        self.add_rendered(attempt.endpoint.encode(), attempt.to_json())

    def add_rendered(self, key: bytes, value: bytes) -> None:
        """Queue a record rendered already (:class:`EndpointRecords`); returns at once."""
        self._pending.append((key, value, _JSON_HEADERS))
        self._arrived.set()

    async def _write(self) -> None:
        while True:
            await self._arrived.wait()
            if not self._closing:
                # A history, not a delivery: gathering for a moment turns a produce request
                # per few attempts (~25 µs of client CPU each, as measured by the egress
                # benchmark) into one per ``linger``.
                await asyncio.sleep(self.linger)
            self._arrived.clear()
            records, self._pending = self._pending, []
            try:
                # One aiokafka batch per partition (the endpoint is the key), one wait.
                await self._producer.send_raw_batch(self._topic, records)
            except (kafka_errors.KafkaError, TimeoutError, EventPlatformError) as exc:
                self.failures += len(records)
                log.warning("recording %d delivery attempts failed: %s", len(records), exc)
            if self._closing and not self._pending:
                return

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        self._arrived.set()
        await asyncio.gather(self._task, return_exceptions=True)

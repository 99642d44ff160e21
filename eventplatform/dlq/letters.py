"""Dead letters as an operator sees them: where each came from, why it failed, what to replay.

Two header dialects are read:

- Kafka Connect's ``__connect.errors.*`` (KIP-298), which :mod:`eventplatform.app.dlq` writes:
  origin topic, partition and offset, the stage, the exception class and message, plus
  eventplatform's ``eventplatform.errors.group`` and ``eventplatform.errors.attempts``;
- the share-group dead letters of Kafka 4.4 (KIP-1191): ``__dlq.errors.topic``,
  ``partition``, ``offset``, ``group``, ``delivery.count`` and ``message``. The broker copies the
  record's key, value and headers only with ``errors.deadletterqueue.copy.record.enable``;
  without them there is nothing to replay.

A dead letter keeps the event's own headers (CloudEvents ``ce_*``, the idempotency key,
``traceparent``): :attr:`DeadLetterRecord.event_headers` are those, without the error headers,
and are what a replay writes back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from eventplatform.app import dlq as connect
from eventplatform.cloudevents import H_ID, H_IDEMPOTENCY_KEY

__all__ = [
    "DeadLetterRecord",
    "Dialect",
    "Selection",
    "parse_offset_range",
]

_SHARE = "__dlq.errors."
H_SHARE_TOPIC = _SHARE + "topic"
H_SHARE_PARTITION = _SHARE + "partition"
H_SHARE_OFFSET = _SHARE + "offset"
H_SHARE_GROUP = _SHARE + "group"
H_SHARE_DELIVERY_COUNT = _SHARE + "delivery.count"
H_SHARE_MESSAGE = _SHARE + "message"

#: Header prefixes that describe a failure, not the event; a replay drops them.
ERROR_PREFIXES = ("__connect.errors.", "eventplatform.errors.", _SHARE)


class Dialect(StrEnum):
    """Which dead-letter headers a record carries."""

    CONNECT = "connect"
    SHARE_GROUP = "share-group"
    UNKNOWN = "unknown"


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One record of a dead-letter topic.

    Attributes:
        topic, partition, offset, timestamp: where it is in the dead-letter topic, and when
            it was written there (ms since the epoch).
        key, value, headers: the record as stored.
        dialect: which error headers it carries.
        origin_topic, origin_partition, origin_offset: where the event was when it failed.
        group: the consumer (or share) group that gave up on it.
        error_class: the exception's class (Connect dialect; None for share groups).
        message: the exception's message, or the broker's reason (share groups).
        stage: Connect's stage (``VALUE_CONVERTER``, ``TASK_PUT``, …).
        attempts: handler attempts, or the share group's delivery count.
        stacktrace: the formatted traceback, when written.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    dialect: Dialect
    origin_topic: str | None = None
    origin_partition: int | None = None
    origin_offset: int | None = None
    group: str | None = None
    error_class: str | None = None
    message: str | None = None
    stage: str | None = None
    attempts: int | None = None
    stacktrace: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
    ) -> DeadLetterRecord:
        """Read the error headers of a dead-letter record (either dialect, or none)."""
        kept = tuple((name, raw if raw is not None else b"") for name, raw in headers)
        text = {name: raw.decode("utf-8", "replace") for name, raw in kept}
        plain = cls(topic, partition, offset, timestamp, key, value, kept, Dialect.UNKNOWN)
        if connect.H_TOPIC in text:
            return replace(
                plain,
                dialect=Dialect.CONNECT,
                origin_topic=text[connect.H_TOPIC],
                origin_partition=_int(text.get(connect.H_PARTITION)),
                origin_offset=_int(text.get(connect.H_OFFSET)),
                group=text.get(connect.H_GROUP),
                error_class=text.get(connect.H_EXCEPTION_CLASS_NAME),
                message=text.get(connect.H_EXCEPTION_MESSAGE),
                stage=text.get(connect.H_STAGE),
                attempts=_int(text.get(connect.H_ATTEMPTS)),
                stacktrace=text.get(connect.H_EXCEPTION_STACKTRACE),
            )
        if H_SHARE_TOPIC in text:
            return replace(
                plain,
                dialect=Dialect.SHARE_GROUP,
                origin_topic=text[H_SHARE_TOPIC],
                origin_partition=_int(text.get(H_SHARE_PARTITION)),
                origin_offset=_int(text.get(H_SHARE_OFFSET)),
                group=text.get(H_SHARE_GROUP),
                message=text.get(H_SHARE_MESSAGE),
                attempts=_int(text.get(H_SHARE_DELIVERY_COUNT)),
            )
        return plain

    @property
    def position(self) -> str:
        """``PARTITION:OFFSET`` in the dead-letter topic (what ``dlq show`` takes)."""
        return f"{self.partition}:{self.offset}"

    @property
    def origin(self) -> str | None:
        """``topic/partition@offset`` where the event failed, when known."""
        if self.origin_topic is None:
            return None
        return f"{self.origin_topic}/{self.origin_partition}@{self.origin_offset}"

    @property
    def event_id(self) -> str | None:
        """The CloudEvents id (``ce_id``), if the event has one."""
        return self._header(H_ID)

    @property
    def idempotency_key(self) -> str | None:
        """The idempotency key the consumer deduplicates on: its header, else the event id."""
        return self._header(H_IDEMPOTENCY_KEY) or self.event_id

    @property
    def reason(self) -> str:
        """Why it failed, in one line: ``ErrorClass: message`` (or what is known)."""
        short = self.error_class.rsplit(".", 1)[-1] if self.error_class else None
        message = (self.message or "").strip().splitlines()
        first = message[0] if message else ""
        if short and first:
            return f"{short}: {first}"
        return short or first or (self.stage or "unknown (no error headers)")

    @property
    def time(self) -> datetime:
        """When it was dead-lettered (the record's timestamp), in UTC."""
        return datetime.fromtimestamp(self.timestamp / 1000, UTC)

    @property
    def event_headers(self) -> list[tuple[str, bytes]]:
        """The event's own headers: every header but the error ones, in their order."""
        return [(n, raw) for n, raw in self.headers if not n.startswith(ERROR_PREFIXES)]

    @property
    def replayable(self) -> str | None:
        """None when it can be replayed, else why not."""
        if self.origin_topic is None:
            return "no origin topic in its headers (not a dead letter of this project or Kafka)"
        if self.dialect is Dialect.SHARE_GROUP and self.value is None:
            return (
                "the broker kept no payload (the group's errors.deadletterqueue.copy.record."
                "enable was off)"
            )
        return None

    def _header(self, name: str) -> str | None:
        for header, raw in self.headers:
            if header == name:
                return raw.decode("utf-8", "replace")
        return None


_RANGE = re.compile(r"^\s*(\d*)\s*(?:(-)\s*(\d*))?\s*$")


def parse_offset_range(text: str) -> tuple[int | None, int | None]:
    """``"5-9"`` → (5, 9), ``"5-"`` → (5, None), ``"-9"`` → (None, 9), ``"7"`` → (7, 7).

    Both ends are inclusive.

    Raises:
        ValueError: not a range, or its end is before its start.
    """
    match = _RANGE.match(text)
    if not match or not (match.group(1) or match.group(3)):
        raise ValueError(f"{text!r} is not an offset range (FIRST-LAST, FIRST-, -LAST or N)")
    first = int(match.group(1)) if match.group(1) else None
    last = int(match.group(3)) if match.group(3) else None
    if match.group(2) is None:
        last = first
    if first is not None and last is not None and last < first:
        raise ValueError(f"offset range {text!r} ends before it starts")
    return first, last


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters to list or replay; every criterion given must hold.

    Attributes:
        partition: only this partition of the dead-letter topic.
        first_offset, last_offset: offsets in the dead-letter topic, inclusive.
        error_class: the exception class, full (``module.Name``) or its last part (``Name``).
        key: the record key (UTF-8 text).
        since, until: when it was dead-lettered (the record timestamp), ``until`` exclusive.
    """

    partition: int | None = None
    first_offset: int | None = None
    last_offset: int | None = None
    error_class: str | None = None
    key: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: DeadLetterRecord) -> bool:
        """Whether ``letter`` is selected."""
        if self.partition is not None and letter.partition != self.partition:
            return False
        if not self.covers(letter.offset):
            return False
        if self.error_class is not None:
            found = letter.error_class or ""
            if self.error_class not in (found, found.rsplit(".", 1)[-1]):
                return False
        if self.key is not None and letter.key != self.key.encode():
            return False
        if self.since is not None and letter.time < self.since:
            return False
        return not (self.until is not None and letter.time >= self.until)

    def covers(self, offset: int) -> bool:
        """Whether ``offset`` is inside the offset range."""
        if self.first_offset is not None and offset < self.first_offset:
            return False
        return not (self.last_offset is not None and offset > self.last_offset)

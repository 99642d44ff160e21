"""Dead letters: records a handler could not take, written aside so the partition moves on.

A dead letter keeps the original record's key, value and headers, and adds headers naming
where it came from and what went wrong. The names are Kafka Connect's (``DeadLetterQueueReporter``
with ``errors.deadletterqueue.context.headers.enable=true``, KIP-298), so tools that read
Connect's dead-letter topics read ours:

=========================================  ==================================================
``__connect.errors.topic``                 the record's topic
``__connect.errors.partition``             its partition (decimal text, as Connect writes it)
``__connect.errors.offset``                its offset (decimal text)
``__connect.errors.connector.name``        the app's name
``__connect.errors.task.id``               the app instance that gave up on it
``__connect.errors.stage``                 ``HEADER_CONVERTER`` (CloudEvents headers invalid),
                                           ``VALUE_CONVERTER`` (bytes undecodable), or
                                           ``TASK_PUT`` (the handler failed)
``__connect.errors.class.name``            the decoder or handler that failed
``__connect.errors.exception.class.name``  the exception's class (``module.QualName``)
``__connect.errors.exception.message``     its message
``__connect.errors.exception.stacktrace``  its formatted traceback (the last 16 KiB)
``eventplatform.errors.group``             the consumer group
``eventplatform.errors.attempts``          how many times the handler ran (0 if never)
=========================================  ==================================================

Error headers an earlier dead-lettering left on the record are replaced, so a dead letter
always describes its latest failure. Replaying a dead letter to its topic (after fixing the
cause) works as it is: its idempotency key was released, not recorded as done.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from eventplatform.app.retry import RetryPolicy
from eventplatform.app.stats import AppStats
from eventplatform.errors import EventPlatformError

__all__ = [
    "H_ATTEMPTS",
    "H_CLASS_NAME",
    "H_CONNECTOR_NAME",
    "H_EXCEPTION_CLASS_NAME",
    "H_EXCEPTION_MESSAGE",
    "H_EXCEPTION_STACKTRACE",
    "H_GROUP",
    "H_OFFSET",
    "H_PARTITION",
    "H_STAGE",
    "H_TASK_ID",
    "H_TOPIC",
    "DeadLetter",
    "DeadLetterQueue",
    "Stage",
]

_CONNECT = "__connect.errors."
H_TOPIC = _CONNECT + "topic"
H_PARTITION = _CONNECT + "partition"
H_OFFSET = _CONNECT + "offset"
H_CONNECTOR_NAME = _CONNECT + "connector.name"
H_TASK_ID = _CONNECT + "task.id"
H_STAGE = _CONNECT + "stage"
H_CLASS_NAME = _CONNECT + "class.name"
H_EXCEPTION_CLASS_NAME = _CONNECT + "exception.class.name"
H_EXCEPTION_MESSAGE = _CONNECT + "exception.message"
H_EXCEPTION_STACKTRACE = _CONNECT + "exception.stacktrace"
_OURS = "eventplatform.errors."
H_GROUP = _OURS + "group"
H_ATTEMPTS = _OURS + "attempts"

log = logging.getLogger("eventplatform.app")

_MAX_MESSAGE = 4096
_MAX_STACKTRACE = 16384


class Stage(StrEnum):
    """Where processing failed, in the names of Kafka Connect's ``Stage`` enum."""

    HEADER_CONVERTER = "HEADER_CONVERTER"
    VALUE_CONVERTER = "VALUE_CONVERTER"
    TASK_PUT = "TASK_PUT"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record bound for a dead-letter topic."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _class_name(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


class DeadLetterQueue:
    """Builds dead letters for one app and writes them, retrying a failed write.

    Args:
        connector: the app's name (``__connect.errors.connector.name``).
        task_id: the app instance (``__connect.errors.task.id``).
        group: the consumer group (``eventplatform.errors.group``).
        policy: backoff between write attempts; ``max_attempts`` bounds them.
        pause: awaits a backoff; returns False when the app is stopping (give up early).
        stats: the app's counters; failed writes count as ``connection_errors``.
    """

    def __init__(
        self,
        *,
        connector: str,
        task_id: str,
        group: str,
        policy: RetryPolicy,
        pause: Callable[[float], Awaitable[bool]],
        stats: AppStats | None = None,
    ) -> None:
        self.connector = connector
        self.task_id = task_id
        self.group = group
        self.policy = policy
        self._pause = pause
        self._stats = stats
        self.write_failures = 0

    def letter(
        self,
        *,
        dlq_topic: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
        stage: Stage,
        class_name: str,
        exc: BaseException,
        attempts: int,
    ) -> DeadLetter:
        """The dead letter of one record that failed with ``exc``."""
        kept = [
            (name, raw if raw is not None else b"")
            for name, raw in headers
            if not (name.startswith((_CONNECT, _OURS)))
        ]
        message = str(exc)[:_MAX_MESSAGE]
        trace = "".join(traceback.format_exception(exc))[-_MAX_STACKTRACE:]
        kept += [
            (H_TOPIC, topic.encode()),
            (H_PARTITION, str(partition).encode()),
            (H_OFFSET, str(offset).encode()),
            (H_CONNECTOR_NAME, self.connector.encode()),
            (H_TASK_ID, self.task_id.encode()),
            (H_STAGE, stage.value.encode()),
            (H_CLASS_NAME, class_name.encode()),
            (H_EXCEPTION_CLASS_NAME, _class_name(exc).encode()),
            (H_EXCEPTION_MESSAGE, message.encode(errors="replace")),
            (H_EXCEPTION_STACKTRACE, trace.encode(errors="replace")),
            (H_GROUP, self.group.encode()),
            (H_ATTEMPTS, str(attempts).encode()),
        ]
        return DeadLetter(dlq_topic, key, value, kept)

    async def write(
        self, letter: DeadLetter, send: Callable[[DeadLetter], Awaitable[object]]
    ) -> bool:
        """Write ``letter`` through ``send``, retrying retriable failures with backoff.

        Returns:
            True once the write was acknowledged; False when it kept failing, failed for good
            (the broker refused the record) or the app is stopping: the caller must then not
            commit the offset past the record, which is read and dead-lettered again later.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                await send(letter)
            except EventPlatformError as exc:
                self.write_failures += 1
                if self._stats is not None:
                    self._stats.connection_errors += 1
                log.warning(
                    "writing a dead letter to %s failed (attempt %d): %s",
                    letter.topic,
                    attempt,
                    exc,
                )
                if not exc.retriable or attempt >= self.policy.max_attempts:
                    return False
                if not await self._pause(self.policy.backoff(attempt)):
                    return False
            else:
                return True

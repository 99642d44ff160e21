"""Webhook endpoints of the egress: their configuration, their state, and their delivery queues.

Each endpoint has a queue and one worker that delivers the queue's events one at a time, in the
order they were read (per-endpoint ordering): an event that fails holds back the later ones of
*its* endpoint until it is delivered, disabled or dead-lettered, while the other endpoints go
on. A delivery is signed the Standard Webhooks way (:mod:`~..webhooks`):
``webhook-id`` is the event's idempotency key, the same on every attempt and after a restart,
so receivers can deduplicate; ``webhook-timestamp`` and the signature are made per attempt,
since receivers refuse stale timestamps.

Answers:

- ``2xx``: delivered.
- ``410 Gone``: the receiver asks not to be sent anything any more. The endpoint is disabled,
  in the compacted state topic (so it stays disabled after a restart) until its URL changes in
  the configuration or :meth:`EndpointStates.enable` is called; its later events are recorded
  as ``skipped``.
- anything else (3xx included: redirects are not followed, a redirect could point anywhere),
  timeouts and connection errors: retried on the schedule, then dead-lettered.
- an address the SSRF guard refuses: dead-lettered at once (retrying will not change it).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from yarl import URL

from eventplatform.__about__ import __version__
from eventplatform.cloudevents import EventMetadata, format_time
from eventplatform.connectors.builtin.egress.deliveries import (
    DeliveryOutcome,
    EndpointRecords,
    RetrySchedule,
    attempt_time,
    parse_retry_after,
)
from eventplatform.connectors.builtin.egress.watermarks import OffsetTracker
from eventplatform.connectors.builtin.webhooks import Signer, decode_secret
from eventplatform.connectors.runtime.compacted import CompactedTable
from eventplatform.connectors.sdk.status import ConnectorStats
from eventplatform.errors import (
    ConfigurationError,
    DeliveryFailed,
    EventPlatformError,
    UnsafeDestination,
)
from eventplatform.observability import events as observed

__all__ = [
    "DEFAULT_STATE_TOPIC",
    "SESSION_HEADERS",
    "EndpointStates",
    "EndpointWorker",
    "PendingEvent",
    "WebhookEndpoint",
]

log = logging.getLogger("eventplatform.connectors.egress")

#: The compacted topic that keeps which endpoints are disabled.
DEFAULT_STATE_TOPIC = "_eventplatform_egress_state"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_USER_AGENT = f"eventplatform/{__version__} (webhook egress)"
#: The headers of every delivery besides the signature's, set once on the client session.
SESSION_HEADERS = {"content-type": "application/json", "user-agent": _USER_AGENT}
#: Bytes of an answer's body read (and dropped) so the connection can be reused.
_MAX_ANSWER = 1 << 16


class WebhookEndpoint(BaseModel):
    """One subscriber: where its events go and how they are signed (a ``[[settings.endpoints]]``).

    Attributes:
        name: names the endpoint in logs, the deliveries topic and the state topic.
        url: the ``http(s)://`` URL deliveries are POSTed to.
        secret: the Standard Webhooks secret (``whsec_…``) deliveries are signed with.
        previous_secrets: also signed with these while the receiver rotates secrets.
        event_types: the ``ce_type`` values it takes: exact names, ``prefix.*``, or ``*``.
        timeout: seconds one attempt may take; default the connector's ``timeout``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    secret: SecretStr
    previous_secrets: list[SecretStr] = []
    event_types: list[str] = Field(default=["*"], min_length=1)
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError("letters, digits, '.', '_' and '-' only (at most 100)")
        return name

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("must be an absolute http:// or https:// URL")
        return url

    @field_validator("secret", "previous_secrets")
    @classmethod
    def _check_secrets(cls, value: SecretStr | list[SecretStr]) -> SecretStr | list[SecretStr]:
        for secret in value if isinstance(value, list) else [value]:
            try:
                decode_secret(secret.get_secret_value())
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
        return value

    def matches(self, event_type: str) -> bool:
        """Whether the endpoint subscribes to events of ``event_type``."""
        for pattern in self.event_types:
            if pattern in ("*", event_type):
                return True
            if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
                return True
        return False

    def secrets(self) -> list[str]:
        """The secrets a delivery is signed with: the current one first."""
        return [s.get_secret_value() for s in (self.secret, *self.previous_secrets)]


class EndpointStates:
    """Which endpoints are disabled, kept in a compacted topic (key ``<connector>/<endpoint>``).

    A disabled state names the URL it was disabled at: pointing the endpoint at another URL
    in the configuration enables it again.

    Args:
        table: the started compacted table.
        connector: the egress connector's name.
    """

    def __init__(self, table: CompactedTable, connector: str) -> None:
        self._table = table
        self._connector = connector
        self._local: dict[str, str] = {}  # disabled, but not recorded in the topic (yet)

    def _key(self, endpoint: str) -> bytes:
        return f"{self._connector}/{endpoint}".encode()

    def disabled(self, endpoint: WebhookEndpoint) -> bool:
        """Whether ``endpoint`` (at its configured URL) is disabled."""
        local = self._local
        if local and local.get(endpoint.name) == endpoint.url:
            return True
        entries = self._table.entries
        if not entries:  # the common case, asked before every attempt
            return False
        raw = entries.get(self._key(endpoint.name))
        if raw is None:
            return False
        try:
            state = json.loads(raw)
        except ValueError:
            return False
        return isinstance(state, dict) and state.get("url") == endpoint.url

    async def disable(self, endpoint: WebhookEndpoint, reason: str) -> None:
        """Disable ``endpoint``; it stays disabled in memory even when the write fails."""
        self._local[endpoint.name] = endpoint.url
        state = {
            "state": "disabled",
            "url": endpoint.url,
            "reason": reason,
            "at": format_time(datetime.now(UTC)),
        }
        try:
            await self._table.put([(self._key(endpoint.name), json.dumps(state).encode())])
        except EventPlatformError as exc:
            log.warning(
                "endpoint %s disabled, but recording it in %s failed (it is enabled again "
                "after a restart): %s",
                endpoint.name,
                self._table.topic,
                exc,
            )
            return
        del self._local[endpoint.name]

    async def enable(self, endpoint: str) -> None:
        """Enable ``endpoint`` again (a tombstone in the state topic).

        Raises:
            PublishTimeout, KafkaError: the write failed.
        """
        self._local.pop(endpoint, None)
        await self._table.put([(self._key(endpoint), None)])


@dataclass(slots=True, eq=False)
class PendingEvent:
    """An event read from Kafka, on its way to the endpoints subscribed to its type."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    metadata: EventMetadata
    body: bytes
    tracker: OffsetTracker = field(repr=False)
    #: Its fields in the deliveries topic's records, rendered by the first attempt's record.
    record_fields: str | None = field(default=None, repr=False)

    @property
    def abandoned(self) -> bool:
        """Its partition was revoked: the partition's new owner delivers it."""
        return self.tracker.revoked

    def settle(self) -> None:
        """One of its deliveries is settled (delivered, skipped, disabled or dead-lettered)."""
        self.tracker.settle(self.offset)


#: Writes the dead letter of an event that failed for an endpoint; False if it was not written.
DeadLetterWriter = Callable[[PendingEvent, WebhookEndpoint, BaseException, int], Awaitable[bool]]


class _Answer(NamedTuple):
    # A NamedTuple: one is made per attempt.
    status: int | None
    retry_after: str | None
    error: BaseException | None
    latency_ms: float


class EndpointWorker:
    """Delivers one endpoint's queue, in order, with retries (see the module docstring).

    Args:
        connector: the egress connector's name.
        endpoint: the endpoint.
        session: the shared HTTP client session (its connector applies the SSRF guard).
        schedule: waits between attempts.
        timeout: seconds an attempt may take unless the endpoint says otherwise.
        states: disabled endpoints.
        record: records an attempt, given its key and value (:class:`EndpointRecords`), in
            the deliveries topic; must not block. None: attempts are not recorded.
        dead_letter: writes a dead letter.
        stopping: set when the connector stops.
        stats: the connector's counters.
    """

    def __init__(
        self,
        *,
        connector: str,
        endpoint: WebhookEndpoint,
        session: aiohttp.ClientSession,
        schedule: RetrySchedule,
        timeout: float,
        states: EndpointStates,
        record: Callable[[bytes, bytes], None] | None,
        dead_letter: DeadLetterWriter,
        stopping: asyncio.Event,
        stats: ConnectorStats,
    ) -> None:
        self.connector = connector
        self.endpoint = endpoint
        self._schedule = schedule
        self._timeout = endpoint.timeout or timeout
        self._url = URL(endpoint.url)
        # Bound once: the parsed URL (aiohttp takes a yarl.URL as it is, a str is parsed per
        # request) and no redirects. The session has no timeout: the worker's watchdog
        # bounds each attempt (see _expire).
        self._post = functools.partial(session.post, self._url, allow_redirects=False)
        # The attempt in flight must end by this loop time (None: no attempt in flight).
        self._deadline: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._watching = 0.0  # the deadline the watchdog is set for
        self._timed_out = False
        self._task: asyncio.Task[None] | None = None
        self._states = states
        self._record = record
        self._dead_letter = dead_letter
        self._stopping = stopping
        self._stats = stats
        # Keyed once: signing then starts from the keyed HMAC states.
        self._signer = Signer(endpoint.secrets())
        self._records = EndpointRecords(connector, endpoint.name, endpoint.url)
        self._queue: deque[PendingEvent] = deque()
        self._ready = asyncio.Event()
        #: The event being delivered, if any.
        self.current: PendingEvent | None = None
        #: Delivery attempts by outcome (one dict update next to an HTTP request).
        self.outcomes: dict[str, int] = {}
        self._span: Any = None  # the attempt's span, while traced

    def __repr__(self) -> str:
        return f"<EndpointWorker {self.endpoint.name} queued={len(self._queue)}>"

    @property
    def queued(self) -> int:
        """Events waiting behind the current one."""
        return len(self._queue)

    def submit(self, event: PendingEvent) -> None:
        """Queue ``event`` for delivery after the ones queued before it."""
        self._queue.append(event)
        self._ready.set()

    async def run(self) -> None:
        """Deliver queued events until the connector stops.

        An event whose delivery is interrupted by the stop stays unsettled, as do the ones
        queued behind it: their offsets are not committed, and they are read again later.
        """
        try:
            while not self._stopping.is_set():
                if not self._queue:
                    self._ready.clear()
                    await _first(self._ready.wait(), self._stopping.wait())
                    continue
                event = self._queue.popleft()
                if event.abandoned:
                    continue
                self.current = event
                try:
                    if not await self._deliver(event):
                        return
                finally:
                    self.current = None
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None

    async def _deliver(self, event: PendingEvent) -> bool:
        """Deliver ``event`` until it settles; False when the stop interrupted it."""
        endpoint = self.endpoint
        attempt = 0
        while True:
            if event.abandoned:
                return True
            attempt += 1
            if self._states.disabled(endpoint):
                self._note(event, attempt, DeliveryOutcome.SKIPPED)
                self._stats.count("skipped")
                event.settle()
                return True
            answer = await self._attempt(event, attempt)
            status = answer.status
            if status is not None and 200 <= status < 300:
                self._delivered(event, attempt, status, answer)
                return True
            if isinstance(answer.error, UnsafeDestination):
                self._note(event, attempt, DeliveryOutcome.REFUSED, answer)
                log.error("endpoint %s: %s", endpoint.name, answer.error)
                self._stats.count("refused")
                return await self._give_up(event, answer.error, attempt)
            if status == 410:
                await self._states.disable(endpoint, f"410 Gone at {format_time(_now())}")
                self._note(event, attempt, DeliveryOutcome.DISABLED, answer)
                log.warning(
                    "endpoint %s answered 410 Gone: disabled (its events are skipped until its "
                    "URL changes or it is enabled again)",
                    endpoint.name,
                )
                self._stats.count("disabled")
                event.settle()
                return True
            delay = self._schedule.next_delay(attempt, _retry_after(answer))
            failure = self._failure(answer, attempt)
            if delay is None:
                self._note(event, attempt, DeliveryOutcome.DEAD_LETTERED, answer)
                log.error("%s; dead-lettering event %s", failure, event.metadata.id)
                return await self._give_up(event, failure, attempt)
            self._note(event, attempt, DeliveryOutcome.RETRYING, answer, retry_in=delay)
            self._stats.count("retries")
            log.info("%s; retrying in %.3gs", failure, delay)
            if not await self._sleep(delay):
                return False

    async def _attempt(self, event: PendingEvent, attempt: int = 1) -> _Answer:
        # Content type and user agent are the session's defaults (SESSION_HEADERS).
        headers = self._signer.headers(event.metadata.idempotency_key, event.body)
        telemetry = observed.SWITCHES.telemetry
        if telemetry is not None:  # a CLIENT span per attempt, ended by _note
            self._span = telemetry.delivering(
                event.metadata, self._url, self.endpoint.name, attempt, headers
            )
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        self._deadline = deadline = loop.time() + self._timeout
        if self._watchdog is None:
            self._task = asyncio.current_task()
            self._watching = deadline
            self._watchdog = loop.call_at(deadline, self._expire)
        try:
            async with self._post(data=event.body, headers=headers) as response:
                # Read (a bounded part of) the answer so the connection goes back to the pool;
                # a 204, like most answers to a webhook, has no body to read.
                content = response.content
                if not content.at_eof():
                    await content.read(_MAX_ANSWER)
                status = response.status
                return _Answer(
                    status,
                    # Only a failed attempt waits as Retry-After says.
                    None if 200 <= status < 300 else response.headers.get("Retry-After"),
                    None,
                    (time.perf_counter() - started) * 1000,
                )
        except (UnsafeDestination, aiohttp.ClientError, TimeoutError, OSError) as exc:
            return _Answer(None, None, exc, (time.perf_counter() - started) * 1000)
        except asyncio.CancelledError:
            task = self._task
            if not self._timed_out or task is None:
                raise
            self._timed_out = False
            if task.uncancel() > 0:  # the connector's stop cancelled it as well
                raise
            return _Answer(
                None,
                None,
                TimeoutError(f"no answer within {self._timeout:g}s"),
                (time.perf_counter() - started) * 1000,
            )
        finally:
            self._deadline = None

    def _expire(self) -> None:
        """The watchdog: cancel the attempt in flight once its deadline has come.

        One timer per worker rather than aiohttp's per request (a timer handle scheduled and
        cancelled, a timeout context entered and left for every attempt): a timer set for an
        earlier attempt that has since ended is moved to the deadline of the attempt now in
        flight, and lapses when there is none (the next attempt sets one).
        """
        self._watchdog = None
        deadline = self._deadline
        if deadline is None or self._task is None:
            return
        if deadline > self._watching:  # a later attempt than the one this timer was set for
            self._watching = deadline
            self._watchdog = asyncio.get_running_loop().call_at(deadline, self._expire)
            return
        self._timed_out = True
        self._task.cancel()

    def _failure(self, answer: _Answer, attempt: int) -> DeliveryFailed:
        name = self.endpoint.name
        if answer.status is not None:
            what = f"answered {answer.status}"
        elif isinstance(answer.error, TimeoutError):
            what = f"did not answer within {self._timeout:g}s"
        else:
            what = f"could not be reached ({_describe(answer.error)})"
        return DeliveryFailed(
            f"endpoint {name} {what} (attempt {attempt} of {self._schedule.attempts})",
            endpoint=name,
            status=answer.status,
            attempts=attempt,
        )

    async def _give_up(self, event: PendingEvent, error: BaseException, attempts: int) -> bool:
        """Dead-letter ``event`` (retrying the write while Kafka is down); False on stop."""
        failures = 0
        while not await self._dead_letter(event, self.endpoint, error, attempts):
            failures += 1
            if not await self._sleep(min(30.0, 0.5 * 2**failures)):
                return False
        self._stats.failed(error)
        self._stats.count("dead_lettered")
        event.settle()
        return True

    async def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the connector stops first; True when the wait completed."""
        if self._stopping.is_set():
            return False
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    def _delivered(self, event: PendingEvent, attempt: int, status: int, answer: _Answer) -> None:
        """What :meth:`_note` and the counters do for a delivered attempt (most attempts),
        with nothing to decide: the record has no error and no next attempt."""
        outcomes = self.outcomes
        outcomes["delivered"] = outcomes.get("delivered", 0) + 1
        if self._span is not None:
            self._end_span(DeliveryOutcome.DELIVERED.value, answer, None)
        record = self._record
        if record is not None:
            records = self._records
            record(
                records.key,
                records.delivered(
                    self._event_fields(event), attempt, status, answer.latency_ms, attempt_time()
                ),
            )
        stats = self._stats
        stats.published()
        stats.count("delivered")
        event.tracker.settle(event.offset)

    def _end_span(self, outcome: str, answer: _Answer | None, retry_in: float | None) -> None:
        span, self._span = self._span, None
        if span is not None and observed.SWITCHES.telemetry is not None:
            status, failure = (answer.status, answer.error) if answer else (None, None)
            observed.SWITCHES.telemetry.delivered(span, outcome, status, failure, retry_in)

    @staticmethod
    def _event_fields(event: PendingEvent) -> str:
        fields = event.record_fields
        if fields is None:
            metadata = event.metadata
            fields = event.record_fields = EndpointRecords.event_fields(
                metadata.id,
                metadata.idempotency_key,
                metadata.type,
                event.topic,
                event.partition,
                event.offset,
            )
        return fields

    def _note(
        self,
        event: PendingEvent,
        attempt: int,
        outcome: DeliveryOutcome,
        answer: _Answer | None = None,
        *,
        retry_in: float | None = None,
    ) -> None:
        value = outcome.value
        self.outcomes[value] = self.outcomes.get(value, 0) + 1
        self._end_span(value, answer, retry_in)
        record = self._record
        if record is None:
            return
        error = None
        if answer is not None and answer.error is not None:
            error = _describe(answer.error)
        elif answer is not None and outcome is not DeliveryOutcome.DELIVERED:
            error = f"HTTP {answer.status}"
        records = self._records
        record(
            records.key,
            records.render(
                self._event_fields(event),
                attempt,
                value,
                answer.status if answer is not None else None,
                answer.latency_ms if answer is not None else None,
                error,
                (
                    format_time(datetime.fromtimestamp(time.time() + retry_in, UTC))
                    if retry_in is not None
                    else None
                ),
                attempt_time(),
            ),
        )


def _retry_after(answer: _Answer) -> float | None:
    return parse_retry_after(answer.retry_after)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _now() -> datetime:
    return datetime.now(UTC)


async def _first(*waits: Awaitable[Any]) -> None:
    """Wait until the first of ``waits`` completes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

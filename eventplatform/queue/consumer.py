"""ShareConsumer: a member of a Kafka share group (KIP-932), on aiokafka's connections.

The consumer speaks the share-group RPCs of :mod:`eventplatform.queue.protocol` through an
``AIOKafkaClient`` (its connections, version negotiation, SASL/TLS), so nothing blocks the event
loop and no thread is involved. What it does, following KIP-932:

- **Membership**: ``ShareGroupHeartbeat`` to the group coordinator (FindCoordinator, key type 0
  GROUP: a share group lives on the group coordinator; key type 2 finds the *share-state*
  coordinator, which only brokers talk to). Member epoch 0 joins with a client-generated member
  id (KIP-1082), -1 leaves; the coordinator assigns partitions (every member of a share group
  may get the same partition) and says how often to heartbeat. A fenced member rejoins.
- **Fetching**: ``ShareFetch`` to each partition's leader, one share session per leader
  (epoch 0 opens it, then +1 per request, -1 closes it). The answer holds record batches and the
  *acquired* ranges with their delivery counts: only offsets in those ranges are ours, each
  locked for ``acquisition_lock_timeout`` seconds.
- **Acknowledging**: :meth:`ShareConsumer.acknowledge` queues ACCEPT, RELEASE or REJECT per
  record; the queue rides on the next ``ShareFetch`` to that leader, or, when no fetch comes
  within a moment, goes alone in a ``ShareAcknowledge``. Offsets of an acquired range that hold
  no record for us (transaction markers, compacted away) are acknowledged as GAP by themselves,
  so they never come back. :meth:`ShareConsumer.renew` extends locks (RENEW, KIP-1222, brokers
  with ShareAcknowledge v2).
- **Leaving** (:meth:`ShareConsumer.close`): what was fetched and not acknowledged is released,
  the sessions are closed and the member leaves the group.

It is the layer ``EventQueue`` (and later ``@app.work``) stands on: it knows bytes and offsets,
not events.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from types import TracebackType
from typing import Any, Self

from aiokafka import errors as kafka_errors
from aiokafka.client import AIOKafkaClient, ConnectionGroup
from aiokafka.protocol.admin import ApiVersionRequest
from aiokafka.record.memory_records import MemoryRecords

from eventplatform.errors import (
    ConfigurationError,
    QueueError,
    QueueUnavailable,
    ResourceStateError,
    SharingUnsupported,
)
from eventplatform.queue import protocol as p
from eventplatform.settings import Settings, load_settings

__all__ = ["AcknowledgeType", "ShareConsumer", "ShareRecord"]

log = logging.getLogger("eventplatform.queue")


class AcknowledgeType(IntEnum):
    """What becomes of an acquired record (KIP-932 acknowledge types on the wire)."""

    GAP = p.ACK_GAP
    ACCEPT = p.ACK_ACCEPT
    RELEASE = p.ACK_RELEASE
    REJECT = p.ACK_REJECT
    RENEW = p.ACK_RENEW


# Kafka protocol error codes the consumer acts on (org.apache.kafka.common.protocol.Errors).
_NONE = 0
_UNKNOWN_TOPIC_OR_PARTITION = 3
_NOT_LEADER_OR_FOLLOWER = 6
_COORDINATOR_LOAD_IN_PROGRESS = 14
_COORDINATOR_NOT_AVAILABLE = 15
_NOT_COORDINATOR = 16
_UNKNOWN_MEMBER_ID = 25
_UNSUPPORTED_VERSION = 35
_UNKNOWN_TOPIC_ID = 100
_FENCED_MEMBER_EPOCH = 110
_INVALID_RECORD_STATE = 121
_SHARE_SESSION_NOT_FOUND = 122
_INVALID_SHARE_SESSION_EPOCH = 123

_COORDINATOR_MOVED = {_COORDINATOR_LOAD_IN_PROGRESS, _COORDINATOR_NOT_AVAILABLE, _NOT_COORDINATOR}
_LEADER_MOVED = {_UNKNOWN_TOPIC_OR_PARTITION, _NOT_LEADER_OR_FOLLOWER, _UNKNOWN_TOPIC_ID}
_SESSION_LOST = {_SHARE_SESSION_NOT_FOUND, _INVALID_SHARE_SESSION_EPOCH}

_ENABLE_HINT = (
    "share groups (KIP-932) need Apache Kafka 4.1 or newer with the cluster feature "
    "share.version >= 1 (on by default for clusters formatted by 4.2+; otherwise run "
    "`kafka-features.sh --bootstrap-server … upgrade --feature share.version=1`), and, on "
    "fewer than three brokers, share.coordinator.state.topic.replication.factor=1 and "
    "share.coordinator.state.topic.min.isr=1"
)

#: The group configs a queue sets unless told otherwise: read from the earliest record
#: (a share group starts at the latest one by default).
DEFAULT_GROUP_CONFIGS: Mapping[str, str] = {"share.auto.offset.reset": "earliest"}


def _error_name(code: int) -> str:
    known = {
        _INVALID_RECORD_STATE: "INVALID_RECORD_STATE",
        _SHARE_SESSION_NOT_FOUND: "SHARE_SESSION_NOT_FOUND",
        _INVALID_SHARE_SESSION_EPOCH: "INVALID_SHARE_SESSION_EPOCH",
        _FENCED_MEMBER_EPOCH: "FENCED_MEMBER_EPOCH",
        _UNKNOWN_TOPIC_ID: "UNKNOWN_TOPIC_ID",
    }
    if code in known:
        return known[code]
    cls = kafka_errors.for_code(code)
    return cls.__name__ if cls is not kafka_errors.UnknownError else f"error code {code}"


def new_member_id() -> str:
    """A member id as the Java client makes one (a random UUID, base64url without padding)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass(slots=True, eq=False)
class ShareRecord:
    """One acquired record: aiokafka ``ConsumerRecord``'s fields plus its delivery count.

    Attributes:
        delivery_count: how many times the broker delivered it, this time included (1 first).
        node: the leader that delivered it (its acknowledgement goes back there).
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    delivery_count: int
    node: int
    topic_id: uuid.UUID = field(repr=False)
    timestamp_type: int = 0


_TPKey = tuple[uuid.UUID, int]


class _Session:
    """One share session: this member's fetches from one leader."""

    def __init__(self, node: int) -> None:
        self.node = node
        self.epoch = 0
        self.lock = asyncio.Lock()
        self.partitions: set[_TPKey] = set()
        #: acknowledgements not yet sent: partition -> offset -> type
        self.pending: dict[_TPKey, dict[int, int]] = {}
        #: delivered records not acknowledged yet: partition -> offsets
        self.acquired: dict[_TPKey, set[int]] = {}
        self.flusher: asyncio.Task[None] | None = None
        #: the producer batch each partition's records were last read from, decoded so far
        self.batches: dict[_TPKey, _DecodedBatch] = {}

    def take_pending(self) -> dict[_TPKey, dict[int, int]]:
        pending, self.pending = self.pending, {}
        return pending

    def next_epoch(self) -> None:
        self.epoch = 1 if self.epoch >= 2**31 - 1 else self.epoch + 1

    def reset(self) -> None:
        self.epoch = 0
        self.partitions.clear()


class _DecodedBatch:
    """One producer batch of a partition, its records decoded as far as fetches needed them.

    The broker answers a ShareFetch with whole producer batches, also in the record-limit
    acquire mode (KIP-1206): a fetch of 4 records of a batch of 200 carries all 200, and the
    next fetch (this member's or, on one partition, the next after another member's) the same
    batch again. Decoding it from its start each time cost more than the rest of a fetch; a
    record at an offset never changes, so the records decoded once are kept (one batch per
    partition: the one read last) and the batch's iterator resumes where it stopped.
    """

    __slots__ = ("base", "exhausted", "last", "records", "records_iter", "upto")

    def __init__(self, batch: Any) -> None:
        self.base: int = batch.base_offset
        self.last: int = batch.base_offset + batch.last_offset_delta
        self.records: dict[int, Any] = {}
        self.records_iter = iter(batch)
        self.upto = self.base - 1
        self.exhausted = False

    def read_to(self, high: int) -> None:
        """Decode the batch's records up to offset ``high`` (or its end)."""
        records = self.records
        it = self.records_iter
        while self.upto < high and not self.exhausted:
            record = next(it, None)
            if record is None:
                self.exhausted = True
                break
            records[record.offset] = record
            self.upto = record.offset


def _ack_batches(offsets: Mapping[int, int]) -> list[tuple[int, int, list[int]]]:
    """Contiguous runs of one acknowledge type: ``(first, last, [type])``."""
    batches: list[tuple[int, int, list[int]]] = []
    first = last = kind = -1
    for offset in sorted(offsets):
        ack = offsets[offset]
        if offset == last + 1 and ack == kind:
            last = offset
            continue
        if first >= 0:
            batches.append((first, last, [kind]))
        first = last = offset
        kind = ack
    if first >= 0:
        batches.append((first, last, [kind]))
    return batches


def _wire(pending: Mapping[_TPKey, Mapping[int, int]]) -> list[p.AckTopic]:
    topics: dict[uuid.UUID, list[p.AckPartition]] = {}
    for (topic_id, partition), offsets in pending.items():
        topics.setdefault(topic_id, []).append((partition, _ack_batches(offsets)))
    return list(topics.items())


class ShareConsumer:
    """A member of share group ``group`` reading ``topics``. An async context manager::

        async with ShareConsumer(group="mailer", topics=["orders"]) as consumer:
            for record in await consumer.fetch(100):
                ...
                consumer.acknowledge(record, AcknowledgeType.ACCEPT)

    Args:
        group: the share group.
        topics: the topics it subscribes to.
        bootstrap_servers: Kafka cluster; default ``settings.kafka.bootstrap_servers``.
        settings: all settings; default :func:`~eventplatform.settings.load_settings`.
        group_configs: dynamic configs set on the group at start (IncrementalAlterConfigs on
            the GROUP resource); default ``share.auto.offset.reset=earliest``. ``{}`` sets none.
        max_wait: seconds a fetch waits on the broker for records to arrive.
        ack_linger: seconds queued acknowledgements wait for a fetch to ride on before they
            are sent alone.
        record_limit: acquire at most ``max_records`` per fetch (KIP-1206 record-limit mode,
            brokers with ShareFetch v2): fair to other members, and nothing is locked that
            will not be handed out. False lets the broker acquire whole producer batches
            (batch-optimized mode), which is faster for big batches but locks more at once.
        client_options: extra keyword arguments for ``aiokafka.AIOKafkaClient``.
    """

    def __init__(
        self,
        *,
        group: str,
        topics: Sequence[str],
        bootstrap_servers: str | None = None,
        settings: Settings | None = None,
        group_configs: Mapping[str, str] | None = None,
        max_wait: float = 0.5,
        ack_linger: float = 0.05,
        record_limit: bool = True,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.bootstrap_servers = bootstrap_servers or self.settings.kafka.bootstrap_servers
        if not self.bootstrap_servers:
            raise ConfigurationError(
                "no Kafka bootstrap servers: pass bootstrap_servers= or set "
                "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS"
            )
        if not group:
            raise ConfigurationError("a share group needs a name (group=…)")
        if not topics:
            raise ConfigurationError(f"share group {group!r} subscribes to no topic")
        self.group = group
        self.topics = list(topics)
        self.group_configs = dict(DEFAULT_GROUP_CONFIGS if group_configs is None else group_configs)
        self.max_wait = max_wait
        self.ack_linger = ack_linger
        self.record_limit = record_limit
        self._client_options = dict(client_options or {})
        self.member_id = new_member_id()
        self.member_epoch = 0
        #: seconds a delivered record stays locked to this member (from the last fetch)
        self.lock_timeout = 30.0
        #: whether the brokers accept RENEW acknowledgements (ShareAcknowledge v2, KIP-1222)
        self.supports_renew = False
        #: acknowledgements the broker refused (their records went back to the queue)
        self.failed_acknowledgements = 0
        self._client: AIOKafkaClient | None = None
        self._coordinator: int | None = None
        self._heartbeat_interval = 5.0
        self._heartbeat: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._assigned: set[_TPKey] = set()
        self._assignment_changed = asyncio.Event()
        self._names: dict[uuid.UUID, str] = {}
        self._leaders: dict[_TPKey, int] = {}
        self._sessions: dict[int, _Session] = {}
        self._fatal: QueueError | None = None
        self._state = "new"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"<ShareConsumer group={self.group!r} topics={self.topics!r} "
            f"member={self.member_id} epoch={self.member_epoch} {self._state}>"
        )

    @property
    def client(self) -> AIOKafkaClient:
        """The aiokafka client underneath.

        Raises:
            ResourceStateError: before :meth:`start` or after :meth:`close`.
        """
        if self._state != "started" or self._client is None:
            raise ResourceStateError(
                f"ShareConsumer is {self._state}; use it inside `async with` or after start()"
            )
        return self._client

    @property
    def assignment(self) -> set[tuple[str, int]]:
        """The ``(topic, partition)`` pairs the coordinator assigned to this member."""
        return {
            (self._names[tid], partition) for tid, partition in self._assigned if tid in self._names
        }

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, check the cluster has share groups, set the group configs and join.

        Raises:
            ResourceStateError: after :meth:`close`.
            SharingUnsupported: the brokers offer no share-group API (version or feature).
            ConfigurationError: the broker refused a group config (names it and why).
            QueueUnavailable: the cluster or the group coordinator cannot be reached.
            QueueError: the coordinator refused the member (authorization, group full).
        """
        if self._state == "started":
            return
        if self._state == "closed":
            raise ResourceStateError("ShareConsumer cannot be restarted after close()")
        options = self.settings.kafka.connection_options() | self._client_options
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap_servers, **options)
        try:
            await client.bootstrap()
        except kafka_errors.KafkaError as exc:
            await client.close()
            raise QueueUnavailable(
                f"cannot reach Kafka at {self.bootstrap_servers}: {exc}", group=self.group
            ) from exc
        self._client = client
        self._state = "started"
        try:
            await self._check_versions()
            if self.group_configs:
                await self._set_group_configs(self.group_configs)
            await self._refresh_metadata()
            await self._join()
        except BaseException:
            await self._shutdown_client()
            raise
        self._heartbeat = asyncio.create_task(
            self._heartbeat_loop(), name=f"eventplatform.queue.heartbeat[{self.group}]"
        )

    async def close(self) -> None:
        """Release what was fetched and not acknowledged, close the sessions, leave. Idempotent.

        Acknowledgements still queued are sent first; errors on the way out are logged, not
        raised (the broker releases the records when the locks or the member expire anyway).
        """
        if self._state != "started":
            self._state = "closed"
            return
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        for session in list(self._sessions.values()):
            if session.flusher is not None:
                session.flusher.cancel()
                await asyncio.gather(session.flusher, return_exceptions=True)
            for tp, offsets in session.acquired.items():
                queued = session.pending.setdefault(tp, {})
                for offset in offsets:
                    queued.setdefault(offset, p.ACK_RELEASE)
            session.acquired.clear()
            if session.epoch == 0:
                continue
            try:
                async with session.lock:
                    await self._send_acknowledge(session, session.take_pending(), closing=True)
            except (QueueError, kafka_errors.KafkaError, OSError) as exc:
                log.warning("closing the share session with node %d failed: %s", session.node, exc)
        try:
            if self._coordinator is not None and self.member_epoch >= 0:
                await self._client_send(
                    self._coordinator,
                    p.ShareGroupHeartbeatRequest(
                        group_id=self.group,
                        member_id=self.member_id,
                        member_epoch=-1,
                        subscribed_topic_names=None,
                    ),
                    group=ConnectionGroup.COORDINATION,
                )
        except (QueueError, kafka_errors.KafkaError, OSError) as exc:
            log.warning("leaving share group %s failed: %s", self.group, exc)
        await self._shutdown_client()

    async def _shutdown_client(self) -> None:
        self._state = "closed"
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # -- requests ---------------------------------------------------------------------------

    async def _client_send(
        self, node: int, request: Any, *, group: ConnectionGroup = ConnectionGroup.DEFAULT
    ) -> Any:
        """Send ``request`` to ``node``; aiokafka's failures become QueueUnavailable/Unsupported."""
        client = self.client
        try:
            return await client.send(node, request, group=group)
        except kafka_errors.IncompatibleBrokerVersion as exc:
            raise SharingUnsupported(
                f"node {node} cannot take {type(request).__name__}: {exc}; {_ENABLE_HINT}",
                group=self.group,
            ) from exc
        except NotImplementedError as exc:  # the broker only offers versions we lack
            raise SharingUnsupported(
                f"node {node} offers no version of {type(request).__name__} this client "
                f"speaks ({exc}); {_ENABLE_HINT}",
                group=self.group,
            ) from exc
        except (kafka_errors.KafkaError, OSError) as exc:
            raise QueueUnavailable(
                f"{type(request).__name__} to node {node} failed for share group "
                f"{self.group!r}: {type(exc).__name__}: {exc}",
                group=self.group,
            ) from exc

    async def _check_versions(self) -> None:
        node = self.client.get_random_node()
        response = await self._client_send(node, ApiVersionRequest())
        versions = {key: (low, high) for key, low, high in response.api_versions}
        wanted = {
            p.API_SHARE_GROUP_HEARTBEAT: "ShareGroupHeartbeat",
            p.API_SHARE_FETCH: "ShareFetch",
            p.API_SHARE_ACKNOWLEDGE: "ShareAcknowledge",
        }
        missing = [f"{name} ({key})" for key, name in wanted.items() if key not in versions]
        if missing:
            raise SharingUnsupported(
                f"the broker at {self.bootstrap_servers} (node {node}) does not offer "
                f"{', '.join(missing)}: {_ENABLE_HINT}",
                group=self.group,
            )
        if versions[p.API_SHARE_GROUP_HEARTBEAT][1] < 1 or versions[p.API_SHARE_FETCH][1] < 1:
            raise SharingUnsupported(
                f"the broker at {self.bootstrap_servers} offers only the early-access share-group "
                f"protocol of Apache Kafka 4.0 (ShareFetch v0): {_ENABLE_HINT}",
                group=self.group,
            )
        if p.API_METADATA not in versions or versions[p.API_METADATA][1] < 12:
            raise SharingUnsupported(
                f"the broker at {self.bootstrap_servers} lacks Metadata v12 (topic ids); "
                f"{_ENABLE_HINT}",
                group=self.group,
            )
        self.supports_renew = versions[p.API_SHARE_ACKNOWLEDGE][1] >= 2

    async def _set_group_configs(self, configs: Mapping[str, str]) -> None:
        """Set dynamic configs of the group (resource type GROUP, KIP-848/932/1240).

        Raises:
            ConfigurationError: the broker refused a config (the message is the broker's).
        """
        request = p.IncrementalAlterConfigsRequest(
            resource_type=p.RESOURCE_GROUP, resource_name=self.group, configs=dict(configs)
        )
        response = await self._client_send(self.client.get_random_node(), request)
        for code, message, _type, _name, _tags in response.responses:
            if code != _NONE:
                raise ConfigurationError(
                    f"the broker refused configs {dict(configs)} of share group "
                    f"{self.group!r}: {_error_name(code)}: {message}"
                )

    async def set_group_configs(self, configs: Mapping[str, str]) -> None:
        """Set dynamic configs of this share group (e.g. ``share.record.lock.duration.ms``).

        Raises:
            ConfigurationError: the broker refused one (out of range, unknown).
            QueueUnavailable: the cluster cannot be reached.
        """
        await self._set_group_configs(configs)

    async def _refresh_metadata(self) -> None:
        node = self.client.get_random_node()
        response = await self._client_send(node, p.MetadataRequest(self.topics))
        for code, name, topic_id, _internal, partitions, _ops, _tags in response.topics:
            if code != _NONE or name is None:
                continue  # not created yet: the assignment stays empty until it is
            self._names[topic_id] = name
            for _code, index, leader, *_rest in partitions:
                self._leaders[(topic_id, index)] = leader

    async def _join(self, *, within: float = 30.0) -> None:
        """Find the coordinator and send the first heartbeat, waiting out (bounded) a
        coordinator that is still being elected or loading its state on a fresh cluster."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        delay = 0.05
        while True:
            try:
                await self._find_coordinator(within=max(deadline - loop.time(), 0.0))
                await self._beat(subscribe=True)
                return
            except QueueUnavailable:
                if loop.time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _find_coordinator(self, *, within: float = 30.0) -> None:
        # A fresh cluster answers COORDINATOR_NOT_AVAILABLE / LOAD_IN_PROGRESS while it creates
        # and loads its internal topics: retriable, so wait for it (bounded) as the Java
        # client does, rather than fail the first queue started on a new broker.
        deadline = asyncio.get_running_loop().time() + within
        delay = 0.05
        while True:
            try:
                self._coordinator = await self.client.coordinator_lookup(0, self.group)
                return
            except kafka_errors.KafkaError as exc:
                late = asyncio.get_running_loop().time() + delay > deadline
                if not getattr(exc, "retriable", False) or late:
                    raise QueueUnavailable(
                        f"no group coordinator for share group {self.group!r}: {exc}",
                        group=self.group,
                    ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    # -- membership -------------------------------------------------------------------------

    async def _beat(self, *, subscribe: bool) -> None:
        """One heartbeat; raises the errors :meth:`start` documents (fatal ones)."""
        if self._coordinator is None:
            await self._find_coordinator()
        assert self._coordinator is not None
        response = await self._client_send(
            self._coordinator,
            p.ShareGroupHeartbeatRequest(
                group_id=self.group,
                member_id=self.member_id,
                member_epoch=self.member_epoch,
                subscribed_topic_names=self.topics if subscribe or self.member_epoch == 0 else None,
            ),
            group=ConnectionGroup.COORDINATION,
        )
        code = response.error_code
        if code in _COORDINATOR_MOVED:
            self._coordinator = None
            raise QueueUnavailable(
                f"the coordinator of share group {self.group!r} moved or is loading "
                f"({_error_name(code)})",
                group=self.group,
                error_code=code,
            )
        if code in (_FENCED_MEMBER_EPOCH, _UNKNOWN_MEMBER_ID):
            # KIP-932: a fenced member rejoins with epoch 0 and the same member id.
            log.info("share group %s fenced member %s; rejoining", self.group, self.member_id)
            self.member_epoch = 0
            self._wake.set()
            return
        if code == _UNSUPPORTED_VERSION:
            raise SharingUnsupported(
                f"share group {self.group!r}: the coordinator answered UNSUPPORTED_VERSION "
                f"({response.error_message}): {_ENABLE_HINT}",
                group=self.group,
                error_code=code,
            )
        if code != _NONE:
            raise QueueError(
                f"share group {self.group!r} refused member {self.member_id}: "
                f"{_error_name(code)}: {response.error_message}",
                group=self.group,
                error_code=code,
            )
        if response.member_id:
            self.member_id = response.member_id
        self.member_epoch = response.member_epoch
        if response.heartbeat_interval_ms > 0:
            self._heartbeat_interval = response.heartbeat_interval_ms / 1000
        if response.assignment is not None:
            assigned = {
                (topic_id, partition)
                for topic_id, partitions, _tags in response.assignment[0]
                for partition in partitions
            }
            if any(tp not in self._leaders or tp[0] not in self._names for tp in assigned):
                await self._refresh_metadata()
            if assigned != self._assigned:
                log.info(
                    "share group %s assigned %s to member %s",
                    self.group,
                    sorted((self._names.get(t, str(t)), n) for t, n in assigned),
                    self.member_id,
                )
                self._assigned = assigned
                self._assignment_changed.set()

    async def _heartbeat_loop(self) -> None:
        backoff = 0.1
        while True:
            # The coordinator computes assignments asynchronously: until one arrives, ask
            # sooner than the interval so a new member starts fetching quickly.
            interval = self._heartbeat_interval if self._assigned else 0.25
            if self.member_epoch == 0:
                interval = 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self._beat(subscribe=False)
                backoff = 0.1
            except QueueUnavailable as exc:
                log.warning("heartbeat of share group %s failed: %s", self.group, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except QueueError as exc:
                log.error("share group %s: %s", self.group, exc)
                self._fatal = exc
                self._assignment_changed.set()
                return

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    # -- fetching ---------------------------------------------------------------------------

    async def wait_assigned(self, timeout: float) -> bool:  # noqa: ASYNC109 - a poll budget
        """Wait up to ``timeout`` seconds for a non-empty assignment; whether there is one.

        Raises:
            QueueError: the member was refused for good (see :meth:`start`).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._assigned:
            self._raise_fatal()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._assignment_changed.clear()
            try:
                await asyncio.wait_for(self._assignment_changed.wait(), remaining)
            except TimeoutError:
                return bool(self._assigned)
        self._raise_fatal()
        return True

    async def fetch(
        self,
        max_records: int,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the broker-side wait, like getmany()
    ) -> list[ShareRecord]:
        """Acquire up to ``max_records`` records, waiting up to ``timeout`` s (``max_wait``).

        Queued acknowledgements ride on the requests. Returns an empty list when nothing came
        within the time. Records of several leaders come from one ``ShareFetch`` each, in
        parallel (the limit applies per leader).

        Raises:
            ResourceStateError: not started, or closed.
            QueueUnavailable: a leader cannot be reached (retriable).
            QueueError: the broker refused the fetch for good, or the member was refused.
        """
        self.client  # noqa: B018 - raises when not started
        wait = self.max_wait if timeout is None else timeout
        if not await self.wait_assigned(wait):
            return []
        by_leader: dict[int, list[_TPKey]] = {}
        for tp in self._assigned:
            leader = self._leaders.get(tp)
            if leader is not None and leader >= 0:
                by_leader.setdefault(leader, []).append(tp)
        if not by_leader:
            await self._refresh_metadata()
            return []
        if len(by_leader) == 1:  # one leader: no task of its own (the request goes out now)
            ((node, tps),) = by_leader.items()
            return await self._fetch_from(self._session(node), tps, max_records, wait)
        results = await asyncio.gather(
            *(
                self._fetch_from(self._session(node), tps, max_records, wait)
                for node, tps in by_leader.items()
            )
        )
        return [record for batch in results for record in batch]

    def _session(self, node: int) -> _Session:
        session = self._sessions.get(node)
        if session is None:
            session = self._sessions[node] = _Session(node)
        return session

    async def _fetch_from(
        self, session: _Session, tps: list[_TPKey], max_records: int, wait: float
    ) -> list[ShareRecord]:
        async with session.lock:
            pending = session.take_pending()
            if session.epoch == 0 and pending:
                # Acknowledgements of records from a session that is gone: a new session
                # cannot carry them (the broker released those records or will at expiry).
                self._failed(pending, "their share session was closed")
                pending = {}
            wanted = set(tps)
            listed = (wanted - session.partitions) | pending.keys()
            topics: dict[uuid.UUID, list[p.AckPartition]] = {}
            for tp in sorted(listed, key=lambda k: (str(k[0]), k[1])):
                batches = _ack_batches(pending[tp]) if tp in pending else []
                topics.setdefault(tp[0], []).append((tp[1], batches))
            forgotten: dict[uuid.UUID, list[int]] = {}
            if session.epoch > 0:
                for tp in session.partitions - wanted - pending.keys():
                    forgotten.setdefault(tp[0], []).append(tp[1])
            request = p.ShareFetchRequest(
                group_id=self.group,
                member_id=self.member_id,
                share_session_epoch=session.epoch,
                max_wait_ms=max(0, int(wait * 1000)),
                min_bytes=1,
                max_bytes=50 * 1024 * 1024,
                max_records=max_records,
                batch_size=max_records,
                topics=list(topics.items()),
                forgotten=list(forgotten.items()),
                acquire_mode=(
                    p.ACQUIRE_RECORD_LIMIT if self.record_limit else p.ACQUIRE_BATCH_OPTIMIZED
                ),
            )
            try:
                response = await self._client_send(session.node, request)
            except QueueError:
                self._failed(pending, "its request failed")
                session.reset()
                raise
            code = response.error_code
            if code in _SESSION_LOST:
                log.warning(
                    "share session with node %d lost (%s); opening a new one",
                    session.node,
                    _error_name(code),
                )
                self._failed(pending, "the share session was lost")
                session.reset()
                session.acquired.clear()
                return []
            if code != _NONE:
                self._failed(pending, _error_name(code))
                session.reset()
                raise self._fetch_error(code, response.error_message, session.node)
            session.next_epoch()
            session.partitions = (session.partitions | wanted) - {
                (tid, part) for tid, parts in forgotten.items() for part in parts
            }
            if response.acquisition_lock_timeout_ms > 0:
                self.lock_timeout = response.acquisition_lock_timeout_ms / 1000
            records: list[ShareRecord] = []
            stale = False
            for topic_id, partitions, _tags in response.responses:
                for entry in partitions:
                    index, error, message, ack_error, ack_message = entry[:5]
                    tp = (topic_id, index)
                    if ack_error != _NONE and tp in pending:
                        self._failed({tp: pending[tp]}, f"{_error_name(ack_error)}: {ack_message}")
                    if error in _LEADER_MOVED:
                        stale = True
                        continue
                    if error != _NONE:
                        raise self._fetch_error(error, message, session.node)
                    records += self._acquired(session, tp, entry[6], entry[7])
            if stale:
                await self._refresh_metadata()
            if session.pending and session.flusher is None:
                self._schedule_flush(session)
            return records

    def _fetch_error(self, code: int, message: str | None, node: int) -> QueueError:
        text = (
            f"ShareFetch of share group {self.group!r} from node {node} failed: "
            f"{_error_name(code)}: {message}"
        )
        if code == _UNSUPPORTED_VERSION:
            return SharingUnsupported(f"{text}; {_ENABLE_HINT}", group=self.group, error_code=code)
        return QueueError(text, group=self.group, error_code=code)

    def _acquired(
        self,
        session: _Session,
        tp: _TPKey,
        raw: bytes | None,
        ranges: Sequence[tuple[int, int, int, Any]],
    ) -> list[ShareRecord]:
        """The records of ``raw`` inside the acquired ``ranges``; other offsets there are gaps."""
        if not ranges:
            return []
        topic = self._names.get(tp[0], str(tp[0]))
        low = min(first for first, _last, _count, _tags in ranges)
        high = max(last for _first, last, _count, _tags in ranges)
        delivered: dict[int, Any] = {}
        if raw:
            batches = MemoryRecords(raw)
            while batches.has_next():
                batch = batches.next_batch()
                if batch is None or batch.base_offset > high:
                    break
                if getattr(batch, "is_control_batch", False):
                    continue  # transaction markers: their offsets are acknowledged as gaps
                if batch.base_offset + getattr(batch, "last_offset_delta", 0) < low:
                    continue
                if not hasattr(batch, "last_offset_delta"):  # a legacy (v0/v1) message set
                    for record in batch:
                        if low <= record.offset <= high:
                            delivered[record.offset] = record
                    continue
                # The broker sends whole producer batches; with the record-limit acquire mode
                # (KIP-1206) only part of a big batch may be ours: decode up to the last
                # offset, resuming the same batch's decoding of an earlier fetch.
                decoded = session.batches.get(tp)
                if (
                    decoded is None
                    or decoded.base != batch.base_offset
                    or decoded.last != (batch.base_offset + batch.last_offset_delta)
                ):
                    decoded = session.batches[tp] = _DecodedBatch(batch)
                decoded.read_to(high)
                found = decoded.records
                for offset in range(max(low, decoded.base), min(high, decoded.last) + 1):
                    record = found.get(offset)
                    if record is not None:
                        delivered[offset] = record
        out: list[ShareRecord] = []
        gaps: list[int] = []
        held = session.acquired.setdefault(tp, set())
        for first, last, count, _tags in ranges:
            for offset in range(first, last + 1):
                record = delivered.get(offset)
                if record is None:
                    gaps.append(offset)
                    continue
                held.add(offset)
                out.append(
                    ShareRecord(
                        topic=topic,
                        partition=tp[1],
                        offset=offset,
                        timestamp=record.timestamp,
                        key=record.key,
                        value=record.value,
                        headers=list(record.headers),
                        delivery_count=count,
                        node=session.node,
                        topic_id=tp[0],
                        timestamp_type=record.timestamp_type,
                    )
                )
        if gaps:
            queued = session.pending.setdefault(tp, {})
            for offset in gaps:
                queued[offset] = p.ACK_GAP
        return out

    def _failed(self, pending: Mapping[_TPKey, Mapping[int, int]], why: str) -> None:
        count = sum(len(offsets) for offsets in pending.values())
        if not count:
            return
        self.failed_acknowledgements += count
        log.warning(
            "share group %s: %d acknowledgement(s) not applied (%s); those records go back "
            "to the queue when their locks expire",
            self.group,
            count,
            why,
        )

    # -- acknowledging ----------------------------------------------------------------------

    def acknowledge(self, record: ShareRecord, kind: AcknowledgeType) -> None:
        """Queue ``kind`` (ACCEPT, RELEASE or REJECT) for ``record``; sent with the next fetch.

        Acknowledgements go to the leader that delivered the record. When no fetch follows
        within ``ack_linger`` seconds they are sent alone (``ShareAcknowledge``);
        :meth:`flush` sends them at once. A record is acknowledged once: a second call for it
        replaces the first only while neither was sent.

        Raises:
            ValueError: ``kind`` is RENEW or GAP (use :meth:`renew`; gaps are automatic).
        """
        if kind in (AcknowledgeType.RENEW, AcknowledgeType.GAP):
            raise ValueError(f"acknowledge() takes ACCEPT, RELEASE or REJECT, not {kind.name}")
        session = self._sessions.get(record.node)
        tp = (record.topic_id, record.partition)
        if session is None:
            return
        held = session.acquired.get(tp)
        if held is not None:
            held.discard(record.offset)
        session.pending.setdefault(tp, {})[record.offset] = int(kind)
        if session.flusher is None and self._state == "started":
            self._schedule_flush(session)

    def _schedule_flush(self, session: _Session) -> None:
        session.flusher = asyncio.create_task(
            self._linger_flush(session), name=f"eventplatform.queue.ack[{self.group}]"
        )

    async def _linger_flush(self, session: _Session) -> None:
        try:
            await asyncio.sleep(self.ack_linger)
            session.flusher = None
            if session.pending and not session.lock.locked():
                await self._flush_session(session)
        except QueueError as exc:
            log.warning("acknowledging to node %d failed: %s", session.node, exc)
        finally:
            if session.flusher is asyncio.current_task():
                session.flusher = None

    async def flush(self) -> None:
        """Send every queued acknowledgement now; wait for the answers to all sent so far.

        Raises:
            QueueUnavailable: a leader cannot be reached.
            QueueError: a leader refused the request.
        """
        for session in list(self._sessions.values()):
            # Taking the lock also waits for a fetch in flight, whose acknowledgements are
            # answered only with it.
            await self._flush_session(session)

    async def _flush_session(self, session: _Session) -> None:
        async with session.lock:
            pending = session.take_pending()
            if pending:
                await self._send_acknowledge(session, pending)

    async def _send_acknowledge(
        self,
        session: _Session,
        pending: Mapping[_TPKey, Mapping[int, int]],
        *,
        closing: bool = False,
        renew: bool = False,
    ) -> None:
        if session.epoch == 0:  # no session (lost or never opened): nothing to acknowledge in
            self._failed(pending, "no share session is open")
            return
        request = p.ShareAcknowledgeRequest(
            group_id=self.group,
            member_id=self.member_id,
            share_session_epoch=-1 if closing else session.epoch,
            topics=_wire(pending),
            is_renew_ack=renew,
        )
        try:
            response = await self._client_send(session.node, request)
        except QueueError:
            self._failed(pending, "its request failed")
            session.reset()
            raise
        code = response.error_code
        if closing:
            session.reset()
        elif code in _SESSION_LOST:
            self._failed(pending, _error_name(code))
            session.reset()
            session.acquired.clear()
            return
        elif code == _NONE:
            session.next_epoch()
        if code != _NONE:
            self._failed(pending, _error_name(code))
            if not closing:
                raise QueueError(
                    f"ShareAcknowledge of share group {self.group!r} to node {session.node} "
                    f"failed: {_error_name(code)}: {response.error_message}",
                    group=self.group,
                    error_code=code,
                )
            return
        lock = getattr(response, "acquisition_lock_timeout_ms", 0)
        if lock > 0:
            self.lock_timeout = lock / 1000
        for topic_id, partitions, _tags in response.responses:
            for index, error, message, *_rest in partitions:
                tp = (topic_id, index)
                if error != _NONE and tp in pending:
                    self._failed({tp: pending[tp]}, f"{_error_name(error)}: {message}")

    async def renew(self, records: Iterable[ShareRecord]) -> None:
        """Extend the acquisition locks of ``records`` (RENEW, KIP-1222) by a lock duration.

        Raises:
            SharingUnsupported: the brokers do not accept renewals (ShareAcknowledge < v2).
            QueueUnavailable: the leader cannot be reached.
            QueueError: the leader refused the request.
        """
        if not self.supports_renew:
            raise SharingUnsupported(
                "renewing acquisition locks needs ShareAcknowledge v2 (KIP-1222, Apache Kafka "
                "4.2+); this cluster offers v1",
                group=self.group,
            )
        by_node: dict[int, dict[_TPKey, dict[int, int]]] = {}
        for record in records:
            by_node.setdefault(record.node, {}).setdefault((record.topic_id, record.partition), {})[
                record.offset
            ] = p.ACK_RENEW
        for node, pending in by_node.items():
            session = self._sessions.get(node)
            if session is None:
                continue
            async with session.lock:
                await self._send_acknowledge(session, pending, renew=True)

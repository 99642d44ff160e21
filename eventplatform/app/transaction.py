"""One Kafka transaction per poll for ``transactional=True`` handlers (KIP-98).

Consume → transform → produce with the records a handler publishes, the dead letters of its
topics, and the consumer offsets past them committed atomically::

    begin
      handler attempt ok  → its buffered records are sent into the transaction
      handler attempt err → its buffered records are dropped (nothing was sent)
      dead letters        → sent into the transaction
    send_offsets_to_transaction(offsets, group)   # TxnOffsetCommit
    commit                                        # or abort, and the poll is read again

Records are buffered per handler attempt because a Kafka transaction has no savepoints: a
record already sent cannot be taken back without aborting everything else in the poll.

Fencing and its limits
----------------------
The producer's ``transactional.id`` is stable per app *instance* (``<group>.<instance id>``,
the instance id defaulting to the host name). When an instance restarts, ``InitProducerId``
with the same id bumps the epoch and fences its predecessor: a zombie of the crashed process
can no longer commit (KIP-98).

KIP-447 (Kafka 2.5) fences more: the consumer's group metadata (generation, member id,
instance id) travels with the ``TxnOffsetCommit``, so after a *rebalance* a member that lost a
partition cannot commit offsets for it even though its transactional id differs from the new
owner's. aiokafka sends ``TxnOffsetCommit`` v0 (group id only); :mod:`._groupfencing` makes the
app's transactional producer send v3 with the metadata the loop reads from its consumer right
before each commit. A member that is still alive but was expelled from the group (a long GC
pause, a network partition) then has its transaction refused (``ILLEGAL_GENERATION`` /
``UNKNOWN_MEMBER_ID``) and aborted: its output never becomes visible to ``read_committed``
readers, and the new owner's does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventplatform.app.dlq import DeadLetter
from eventplatform.errors import EventPlatformError, KafkaError, ProducerFenced, PublishTimeout
from eventplatform.observability import events as observed
from eventplatform.producer import EventProducer, Outgoing, PublishResult
from eventplatform.producer._errors import KAFKA_FAILURES, translate
from eventplatform.producer.deadlines import all_acknowledged
from eventplatform.serde import AvroSerializer

__all__ = ["PollTransaction", "TransactionBuffer"]

log = logging.getLogger("eventplatform.app")


@dataclass(frozen=True, slots=True)
class _Record:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]


def _key_bytes(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


class TransactionBuffer:
    """Collects one handler attempt's publishes; sent only when the attempt succeeds.

    Serializes at once, so that an event that does not fit its schema fails inside the handler
    (and is retried or dead-lettered like any handler failure).
    """

    __slots__ = ("_producer", "_serializer", "records")

    def __init__(self, producer: EventProducer, serializer: AvroSerializer) -> None:
        self._producer = producer
        self._serializer = serializer
        self.records: list[_Record] = []

    async def publish(self, item: Outgoing) -> PublishResult | None:
        """Serialize and buffer one event; returns None (the offset is not known yet).

        Traced, the call is a ``send`` span, child of the handler's ``process`` span and the
        record's creation context (its ``traceparent``), so the trace goes on through the
        transaction. It ends here: the record is only sent if the handler attempt succeeds,
        and becomes visible when the poll's transaction commits (where it is counted).
        """
        producer = self._producer
        topic = producer.topic_for(item.event, item.topic)
        telemetry = observed.SWITCHES.telemetry
        if telemetry is not None:
            telemetry.sent(telemetry.sending(item, topic), None)
        meta = producer.metadata_for(item)
        value = await self._serializer.serialize(item.event, topic)
        self.records.append(
            _Record(topic, value, _key_bytes(item.key), meta.to_headers(item.headers))
        )
        return None


class PollTransaction:
    """The Kafka transaction of one poll.

    Args:
        producer: the app's transactional producer (started).
        group_id: the consumer group whose offsets commit in the transaction.
        timeout: seconds to wait for the records' acknowledgements before committing.
    """

    def __init__(self, producer: EventProducer, *, group_id: str, timeout: float) -> None:
        self._producer = producer
        self._client: Any = producer.client
        #: The group id; the loop replaces it by the consumer's group metadata (KIP-447)
        #: right before the commit, so the coordinator can refuse a zombie's offsets.
        self.group_id = group_id
        self._timeout = timeout
        self._futures: list[asyncio.Future[Any]] = []
        #: Handlers' records sent into the transaction, by topic (counted at commit).
        self._sent: dict[str, int] = {}
        self._open = False

    def _translate(self, exc: BaseException, what: str) -> EventPlatformError:
        # The producer's one translation (eventplatform.producer._errors), so a fenced or
        # refused transaction raises here what it raises through EventProducer.transaction().
        txn_id = self._producer.transactional_id
        return translate(
            exc,
            doing=f"{what} in transaction {txn_id!r}",
            transactional_id=txn_id,
            kafka=self._producer.settings.kafka,
        )

    async def begin(self) -> None:
        """Begin the transaction.

        Raises:
            ProducerFenced: another instance owns the transactional id.
            PublishError: the producer is in a state that cannot begin one.
        """
        try:
            await self._client.begin_transaction()
        except KAFKA_FAILURES as exc:
            raise self._translate(exc, "begin") from exc
        self._open = True

    async def send(self, records: list[_Record] | list[DeadLetter]) -> None:
        """Send records into the transaction without waiting for their acknowledgements.

        Raises:
            ProducerFenced, PublishError, PublishTimeout: the records could not be queued.
        """
        client = self._client
        try:
            for record in records:
                future = await client.send(
                    record.topic, record.value, key=record.key, headers=record.headers
                )
                self._futures.append(future)
                if isinstance(record, _Record):
                    self._sent[record.topic] = self._sent.get(record.topic, 0) + 1
        except KAFKA_FAILURES as exc:
            raise self._translate(exc, "send") from exc

    async def commit(self, offsets: Mapping[Any, int]) -> None:
        """Wait for the records, add ``offsets`` and commit.

        Raises:
            ProducerFenced: another instance owns the transactional id (fatal).
            PublishTimeout, PublishError: the transaction was aborted; redo the poll.
        """
        client = self._client
        try:
            try:
                if self._futures:
                    await all_acknowledged(self._futures, self._timeout)
                if offsets:
                    await client.send_offsets_to_transaction(dict(offsets), self.group_id)
                await client.commit_transaction()
                self._open = False
                if self._sent and observed.SWITCHES.sending:
                    observed.sent({(topic, ""): n for topic, n in self._sent.items()})
            except TimeoutError as exc:
                raise PublishTimeout(
                    f"records of transaction {self._producer.transactional_id!r} were not "
                    f"acknowledged within {self._timeout:.0f}s"
                ) from exc
            except KAFKA_FAILURES as exc:
                raise self._translate(exc, "commit") from exc
        except KafkaError:
            await self.abort()
            raise

    async def abort(self) -> None:
        """Abort the transaction if it is open (quietly: the caller reports the cause).

        Raises:
            ProducerFenced: the producer was fenced (nothing can be aborted).
        """
        if not self._open:
            return
        self._open = False
        for future in self._futures:
            # Aborting fails the records still in flight; nobody awaits them any more.
            future.add_done_callback(_consume_result)
        txn = self._client._txn_manager
        if txn is not None and txn.is_fatal_error():
            raise ProducerFenced(
                f"transactional id {self._producer.transactional_id!r} is fenced; "
                "this instance stops"
            )
        try:
            await self._client.abort_transaction()
        except KAFKA_FAILURES as exc:
            translated = self._translate(exc, "abort")
            if isinstance(translated, ProducerFenced):
                raise translated from exc
            log.warning("aborting transaction %s failed: %s", self._producer.transactional_id, exc)


def _consume_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()

"""KIP-447 for aiokafka: transactional offset commits that carry the consumer's group metadata.

aiokafka's ``send_offsets_to_transaction(offsets, group_id)`` sends ``TxnOffsetCommit`` v0,
which names the group only. The group coordinator then cannot tell a member that was expelled
(a long pause, a network partition) from the partition's current owner, and commits the
zombie's transaction. KIP-447 (Kafka 2.5) added the consumer's generation, member id and
``group.instance.id`` to ``TxnOffsetCommit`` (v3, flexible encoding): a commit from a stale
generation is refused with ``ILLEGAL_GENERATION``, ``UNKNOWN_MEMBER_ID`` or
``FENCED_INSTANCE_ID``, and the transaction must be aborted.

This module adds exactly that to one aiokafka producer (never globally):

* :class:`GroupMetadata` — a ``str`` (the group id, so aiokafka's own checks and bookkeeping
  keep working) that also carries generation, member id and instance id;
* :func:`install` — makes one producer's sender build ``TxnOffsetCommit`` v3 with that
  metadata and turn the three refusals into an *abortable* transaction error
  (:class:`GroupFenced`), instead of v0 and a fatal error.

Everything here reads aiokafka internals (the sender's ``_do_txn_offset_commit``, its
``TxnOffsetCommitHandler``), so :func:`install` checks that they are what it expects and
returns False otherwise; the caller then falls back to aiokafka's plain v0 path and says so.
The request and response structs follow Apache Kafka's ``TxnOffsetCommitRequest.json`` and
``TxnOffsetCommitResponse.json`` (v3: flexible versions, ``GenerationId``, ``MemberId``,
``GroupInstanceId``; ``CommittedLeaderEpoch`` since v2).
"""

from __future__ import annotations

import collections
import logging
import types
from typing import Any

from aiokafka import errors as kafka_errors

log = logging.getLogger("eventplatform.app")

__all__ = ["GroupFenced", "GroupMetadata", "group_metadata_of", "install"]

try:  # aiokafka internals: present in 0.13 and 0.14; probed, never assumed
    from aiokafka.client import CoordinationType
    from aiokafka.producer import sender as _sender_module
    from aiokafka.producer.transaction_manager import TransactionState
    from aiokafka.protocol.api import Request, RequestStruct, Response
    from aiokafka.protocol.transaction import (
        TxnOffsetCommitRequest_v0,
        TxnOffsetCommitResponse_v0,
    )
    from aiokafka.protocol.types import (
        CompactArray,
        CompactString,
        Int16,
        Int32,
        Int64,
        Schema,
        TaggedFields,
    )

    _Handler: Any = _sender_module.TxnOffsetCommitHandler
    _AVAILABLE = True
except (ImportError, AttributeError):  # pragma: no cover - depends on the aiokafka release
    _AVAILABLE = False


class GroupFenced(kafka_errors.KafkaError):  # type: ignore[misc]
    """The group coordinator refused a transactional offset commit from a stale member.

    Raised (through aiokafka's transaction waiter) when ``TxnOffsetCommit`` v3 answers
    ``ILLEGAL_GENERATION``, ``UNKNOWN_MEMBER_ID`` or ``FENCED_INSTANCE_ID``: the partitions
    belong to another member now, and the transaction must be aborted.
    """

    retriable = False


class GroupMetadata(str):
    """A consumer group id that also carries the member's group metadata (KIP-447)."""

    generation_id: int
    member_id: str
    group_instance_id: str | None

    def __new__(
        cls, group_id: str, *, generation_id: int, member_id: str, group_instance_id: str | None
    ) -> GroupMetadata:
        self = super().__new__(cls, group_id)
        self.generation_id = generation_id
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        return self


def group_metadata_of(consumer: Any, group_id: str) -> GroupMetadata:
    """The group metadata an ``AIOKafkaConsumer`` holds now (aiokafka has no accessor).

    Before the first join (or after an expulsion reset it) the generation is -1 and the member
    id empty; the coordinator then checks nothing, as for v0.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    generation = getattr(coordinator, "generation", -1)
    member_id = getattr(coordinator, "member_id", "")
    instance = getattr(coordinator, "_group_instance_id", None)
    return GroupMetadata(
        group_id,
        generation_id=generation if isinstance(generation, int) else -1,
        member_id=member_id if isinstance(member_id, str) else "",
        group_instance_id=instance if isinstance(instance, str) else None,
    )


if _AVAILABLE:

    class TxnOffsetCommitResponse_v3(Response):  # type: ignore[misc]
        """TxnOffsetCommit response v3 (flexible); field names as aiokafka's v0 reads them."""

        API_KEY = 28
        API_VERSION = 3
        SCHEMA = Schema(
            ("throttle_time_ms", Int32),
            (
                "errors",
                CompactArray(
                    ("topic", CompactString("utf-8")),
                    (
                        "partition_errors",
                        CompactArray(
                            ("partition", Int32), ("error_code", Int16), ("tags", TaggedFields)
                        ),
                    ),
                    ("tags", TaggedFields),
                ),
            ),
            ("tags", TaggedFields),
        )

    class TxnOffsetCommitRequest_v3(RequestStruct):  # type: ignore[misc]
        """TxnOffsetCommit request v3 (flexible): v0 plus the consumer's group metadata."""

        API_KEY = 28
        API_VERSION = 3
        FLEXIBLE_VERSION = True
        RESPONSE_TYPE = TxnOffsetCommitResponse_v3
        SCHEMA = Schema(
            ("transactional_id", CompactString("utf-8")),
            ("group_id", CompactString("utf-8")),
            ("producer_id", Int64),
            ("producer_epoch", Int16),
            ("generation_id", Int32),
            ("member_id", CompactString("utf-8")),
            ("group_instance_id", CompactString("utf-8")),
            (
                "topics",
                CompactArray(
                    ("name", CompactString("utf-8")),
                    (
                        "partitions",
                        CompactArray(
                            ("partition_index", Int32),
                            ("committed_offset", Int64),
                            ("committed_leader_epoch", Int32),
                            ("committed_metadata", CompactString("utf-8")),
                            ("tags", TaggedFields),
                        ),
                    ),
                    ("tags", TaggedFields),
                ),
            ),
            ("tags", TaggedFields),
        )

    class FencingTxnOffsetCommitRequest(
        Request[TxnOffsetCommitRequest_v0 | TxnOffsetCommitRequest_v3]  # type: ignore[misc]
    ):
        """v3 with the group metadata where the broker has it, else aiokafka's v0."""

        API_KEY = 28

        def __init__(
            self,
            *,
            transactional_id: str,
            group: GroupMetadata,
            producer_id: int,
            producer_epoch: int,
            topics: list[tuple[str, list[tuple[int, int, str]]]],
        ) -> None:
            self._transactional_id = transactional_id
            self._group = group
            self._producer_id = producer_id
            self._producer_epoch = producer_epoch
            self._topics = topics

        def build(self, request_struct_class: type[Any]) -> Any:
            if request_struct_class is TxnOffsetCommitRequest_v3:
                group = self._group
                return request_struct_class(
                    self._transactional_id,
                    str(group),
                    self._producer_id,
                    self._producer_epoch,
                    group.generation_id,
                    group.member_id,
                    group.group_instance_id,
                    [
                        (topic, [(p, offset, -1, meta, {}) for p, offset, meta in parts], {})
                        for topic, parts in self._topics
                    ],
                    {},
                )
            return request_struct_class(
                self._transactional_id,
                str(self._group),
                self._producer_id,
                self._producer_epoch,
                self._topics,
            )

    _REFUSALS = (
        kafka_errors.IllegalGenerationError,
        kafka_errors.UnknownMemberIdError,
    )

    class FencingTxnOffsetCommitHandler(_Handler):  # type: ignore[misc]
        """aiokafka's handler, building :class:`FencingTxnOffsetCommitRequest` and treating
        the generation refusals as an abortable error rather than an unexpected one."""

        def create_request(self) -> Any:
            txn_manager = self._sender._txn_manager
            group = self._group_id
            if not isinstance(group, GroupMetadata):
                return super().create_request()
            offset_data: dict[str, list[tuple[int, int, str]]] = collections.defaultdict(list)
            for tp, offset in sorted(self._offsets.items()):
                offset_data[tp.topic].append((tp.partition, offset.offset, offset.metadata))
            return FencingTxnOffsetCommitRequest(
                transactional_id=txn_manager.transactional_id,
                group=group,
                producer_id=txn_manager.producer_id,
                producer_epoch=txn_manager.producer_epoch,
                topics=list(offset_data.items()),
            )

        def handle_response(self, resp: Any) -> Any:
            if isinstance(resp, TxnOffsetCommitResponse_v3):  # as aiokafka's handler reads v0
                resp = TxnOffsetCommitResponse_v0(
                    resp.throttle_time_ms,
                    [
                        (topic, [(p, code) for p, code, _tags in parts])
                        for topic, parts, _tags in resp.errors
                    ],
                )
            for _topic, partitions in resp.errors:
                for _partition, error_code in partitions:
                    error_type = kafka_errors.for_code(error_code)
                    if issubclass(error_type, _REFUSALS) or error_code == _FENCED_INSTANCE_ID:
                        _refuse(
                            self._sender._txn_manager,
                            GroupFenced(
                                f"the group coordinator refused the offsets of consumer group "
                                f"{str(self._group_id)!r} from generation "
                                f"{getattr(self._group_id, 'generation_id', -1)} "
                                f"({error_type.__name__}): its partitions moved to another "
                                "member (KIP-447)"
                            ),
                        )
                        return None
            return super().handle_response(resp)

    def _refuse(txn_manager: Any, exc: GroupFenced) -> None:
        """Fail the pending offsets with ``exc``; the transaction can only be aborted now.

        Not aiokafka's ``error_transaction``: that forgets the partitions and the group the
        transaction touched, and the ``abort_transaction()`` that follows then takes the
        transaction for an empty one and ends it locally, without ``EndTxn``, leaving it open
        on the broker (holding back every ``read_committed`` reader of those partitions) until
        its timeout. Keeping them, the abort reaches the transaction coordinator.
        """
        txn_manager._transition_to(TransactionState.ABORTABLE_ERROR)
        pending = txn_manager._pending_txn_offsets
        for _group, _offsets, future in pending:
            if not future.done():
                future.set_exception(exc)
        pending.clear()

    #: FENCED_INSTANCE_ID (KIP-345); aiokafka 0.14 has no class for error code 82.
    _FENCED_INSTANCE_ID = 82

    async def _do_txn_offset_commit(self: Any, offsets: Any, group_id: Any) -> None:
        # The body of aiokafka's Sender._do_txn_offset_commit with our handler.
        if not offsets:
            return
        try:
            node_id = await self._find_coordinator(CoordinationType.GROUP, str(group_id))
        except kafka_errors.GroupAuthorizationFailedError as exc:
            self._txn_manager.error_transaction(exc)
            return
        handler = FencingTxnOffsetCommitHandler(self, offsets, group_id)
        await handler.do(node_id)


def install(client: Any) -> bool:
    """Make ``client`` (a transactional ``AIOKafkaProducer``) commit offsets with KIP-447.

    Returns:
        True when installed; False when this aiokafka release does not look as expected
        (the producer then keeps aiokafka's v0 commits, without generation fencing).
    """
    sender = getattr(client, "_sender", None)
    if not _AVAILABLE or sender is None or not hasattr(sender, "_do_txn_offset_commit"):
        log.warning(
            "this aiokafka release does not expose what KIP-447 fencing needs; transactional "
            "offset commits carry the group id only"
        )
        return False
    sender._do_txn_offset_commit = types.MethodType(_do_txn_offset_commit, sender)
    return True

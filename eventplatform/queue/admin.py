# aiokafka ships no type information, so its protocol classes are Any to mypy.
# mypy: disallow-subclassing-any=False
"""Share groups as the brokers describe them: list, members, assignment, start offsets, lag.

The admin RPCs of KIP-932 as aiokafka structs (checked against the JSON message definitions in
the 4.4.0 ``kafka-clients`` jar), sent through ``AIOKafkaClient``:

=============================  =======  ==============================================
ListGroups                     16       v5 (``TypesFilter``: ``share``), to every broker
ShareGroupDescribe             77       v1, to the group coordinator
DescribeShareGroupOffsets      90       v1 (``Lag``, KIP-1226), v0; to the coordinator
=============================  =======  ==============================================

What the brokers report per share-partition is its *start offset* (SPSO: every record below it
is acknowledged or archived) and, from v1, its *lag* (records from the start offset to the end
of the log not acknowledged yet: available, in flight or to be redelivered). Per-record states
(how many are acquired right now, how many were archived) are not in any admin RPC of 4.4;
:func:`describe_share_group` adds the log end offset so that ``end - start - lag`` gives the
records above the start offset that are settled already.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka import errors as kafka_errors
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)
from aiokafka.structs import TopicPartition

from eventplatform.errors import QueueError, QueueUnavailable, SharingUnsupported
from eventplatform.queue.protocol import Uuid
from eventplatform.settings import Settings

__all__ = [
    "ShareGroupDescription",
    "ShareGroupListing",
    "ShareMember",
    "SharePartition",
    "admin_client",
    "describe_share_group",
    "list_share_groups",
]

API_LIST_GROUPS = 16
API_SHARE_GROUP_DESCRIBE = 77
API_DESCRIBE_SHARE_GROUP_OFFSETS = 90

_STRING = CompactString("utf-8")
_GROUP_ID_NOT_FOUND = 69

_HINT = (
    "share groups need Apache Kafka 4.1+ with the cluster feature share.version >= 1 "
    "(`kafka-features.sh … upgrade --feature share.version=1`)"
)


# -- ListGroups (16) v5 ------------------------------------------------------------------------


class ListGroupsResponse_v5(Response):
    """ListGroupsResponse v5."""

    API_KEY = API_LIST_GROUPS
    API_VERSION = 5
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        (
            "groups",
            CompactArray(
                ("group_id", _STRING),
                ("protocol_type", _STRING),
                ("group_state", _STRING),
                ("group_type", _STRING),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class ListGroupsRequest_v5(RequestStruct):
    """ListGroupsRequest v5."""

    FLEXIBLE_VERSION = True
    API_KEY = API_LIST_GROUPS
    API_VERSION = 5
    RESPONSE_TYPE = ListGroupsResponse_v5
    SCHEMA = Schema(
        ("states_filter", CompactArray(_STRING)),
        ("types_filter", CompactArray(_STRING)),
        ("tags", TaggedFields),
    )


class ListGroupsRequest(Request[ListGroupsRequest_v5]):
    """The groups one broker coordinates, of the given types."""

    API_KEY = API_LIST_GROUPS

    def __init__(self, types: list[str]) -> None:
        self.types = types

    def build(self, request_struct_class: type[ListGroupsRequest_v5]) -> ListGroupsRequest_v5:
        return request_struct_class([], self.types, {})


# -- ShareGroupDescribe (77) v1 ----------------------------------------------------------------


class ShareGroupDescribeResponse_v1(Response):
    """ShareGroupDescribeResponse v1."""

    API_KEY = API_SHARE_GROUP_DESCRIBE
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "groups",
            CompactArray(
                ("error_code", Int16),
                ("error_message", _STRING),
                ("group_id", _STRING),
                ("group_state", _STRING),
                ("group_epoch", Int32),
                ("assignment_epoch", Int32),
                ("assignor_name", _STRING),
                (
                    "members",
                    CompactArray(
                        ("member_id", _STRING),
                        ("rack_id", _STRING),
                        ("member_epoch", Int32),
                        ("client_id", _STRING),
                        ("client_host", _STRING),
                        ("subscribed_topic_names", CompactArray(_STRING)),
                        (
                            "assignment",
                            Schema(
                                (
                                    "topic_partitions",
                                    CompactArray(
                                        ("topic_id", Uuid),
                                        ("topic_name", _STRING),
                                        ("partitions", CompactArray(Int32)),
                                        ("tags", TaggedFields),
                                    ),
                                ),
                                ("tags", TaggedFields),
                            ),
                        ),
                        ("tags", TaggedFields),
                    ),
                ),
                ("authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class ShareGroupDescribeRequest_v1(RequestStruct):
    """ShareGroupDescribeRequest v1."""

    FLEXIBLE_VERSION = True
    API_KEY = API_SHARE_GROUP_DESCRIBE
    API_VERSION = 1
    RESPONSE_TYPE = ShareGroupDescribeResponse_v1
    SCHEMA = Schema(
        ("group_ids", CompactArray(_STRING)),
        ("include_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class ShareGroupDescribeRequest(Request[ShareGroupDescribeRequest_v1]):
    """Members and assignments of share groups."""

    API_KEY = API_SHARE_GROUP_DESCRIBE

    def __init__(self, groups: list[str]) -> None:
        self.groups = groups

    def build(
        self, request_struct_class: type[ShareGroupDescribeRequest_v1]
    ) -> ShareGroupDescribeRequest_v1:
        return request_struct_class(self.groups, False, {})


# -- DescribeShareGroupOffsets (90) v0, v1 -----------------------------------------------------


def _offsets_response_schema(with_lag: bool) -> Schema:
    lag: list[tuple[str, Any]] = [("lag", Int64)] if with_lag else []
    return Schema(
        ("throttle_time_ms", Int32),
        (
            "groups",
            CompactArray(
                ("group_id", _STRING),
                (
                    "topics",
                    CompactArray(
                        ("topic_name", _STRING),
                        ("topic_id", Uuid),
                        (
                            "partitions",
                            CompactArray(
                                ("partition_index", Int32),
                                ("start_offset", Int64),
                                ("leader_epoch", Int32),
                                *lag,
                                ("error_code", Int16),
                                ("error_message", _STRING),
                                ("tags", TaggedFields),
                            ),
                        ),
                        ("tags", TaggedFields),
                    ),
                ),
                ("error_code", Int16),
                ("error_message", _STRING),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeShareGroupOffsetsResponse_v0(Response):
    """DescribeShareGroupOffsetsResponse v0 (no lag)."""

    API_KEY = API_DESCRIBE_SHARE_GROUP_OFFSETS
    API_VERSION = 0
    SCHEMA = _offsets_response_schema(with_lag=False)


class DescribeShareGroupOffsetsResponse_v1(Response):
    """DescribeShareGroupOffsetsResponse v1 (``Lag``, KIP-1226)."""

    API_KEY = API_DESCRIBE_SHARE_GROUP_OFFSETS
    API_VERSION = 1
    SCHEMA = _offsets_response_schema(with_lag=True)


_OFFSETS_REQUEST_SCHEMA = Schema(
    (
        "groups",
        CompactArray(
            ("group_id", _STRING),
            (
                "topics",
                CompactArray(
                    ("topic_name", _STRING),
                    ("partitions", CompactArray(Int32)),
                    ("tags", TaggedFields),
                ),
            ),
            ("tags", TaggedFields),
        ),
    ),
    ("tags", TaggedFields),
)


class DescribeShareGroupOffsetsRequest_v0(RequestStruct):
    """DescribeShareGroupOffsetsRequest v0."""

    FLEXIBLE_VERSION = True
    API_KEY = API_DESCRIBE_SHARE_GROUP_OFFSETS
    API_VERSION = 0
    RESPONSE_TYPE = DescribeShareGroupOffsetsResponse_v0
    SCHEMA = _OFFSETS_REQUEST_SCHEMA


class DescribeShareGroupOffsetsRequest_v1(RequestStruct):
    """DescribeShareGroupOffsetsRequest v1."""

    FLEXIBLE_VERSION = True
    API_KEY = API_DESCRIBE_SHARE_GROUP_OFFSETS
    API_VERSION = 1
    RESPONSE_TYPE = DescribeShareGroupOffsetsResponse_v1
    SCHEMA = _OFFSETS_REQUEST_SCHEMA


class DescribeShareGroupOffsetsRequest(
    Request[DescribeShareGroupOffsetsRequest_v0 | DescribeShareGroupOffsetsRequest_v1]
):
    """The start offsets (and lag) of every share-partition of one group."""

    API_KEY = API_DESCRIBE_SHARE_GROUP_OFFSETS

    def __init__(self, group: str) -> None:
        self.group = group

    def build(self, request_struct_class: type[Any]) -> Any:
        # Topics null: every topic-partition the group has state for.
        return request_struct_class([(self.group, None, {})], {})


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShareGroupListing:
    """One share group as ListGroups names it."""

    group: str
    state: str


@dataclass(frozen=True, slots=True)
class ShareMember:
    """A member of a share group and what it is assigned."""

    member_id: str
    client_id: str
    client_host: str
    epoch: int
    topics: list[str]
    assignment: list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class SharePartition:
    """A share-partition's progress as the broker reports it.

    Attributes:
        start_offset: the share-partition start offset (records below it are settled).
        lag: records from it to the end not acknowledged yet (None: broker without v1).
        end_offset: the log end offset (None when it could not be read).
        error: the broker's error for this partition, if any.
    """

    topic: str
    partition: int
    start_offset: int
    lag: int | None
    end_offset: int | None = None
    error: str | None = None

    @property
    def settled_above_start(self) -> int | None:
        """Records between the start and the end offset acknowledged or archived already."""
        if self.lag is None or self.end_offset is None or self.start_offset < 0:
            return None
        return max(0, self.end_offset - self.start_offset - self.lag)


@dataclass(frozen=True, slots=True)
class ShareGroupDescription:
    """A share group: state, epochs, members, and its share-partitions' offsets."""

    group: str
    state: str
    epoch: int
    assignment_epoch: int
    assignor: str
    members: list[ShareMember] = field(default_factory=list)
    partitions: list[SharePartition] = field(default_factory=list)


# -- calls -------------------------------------------------------------------------------------


def _error_name(code: int) -> str:
    cls = kafka_errors.for_code(code)
    return cls.__name__ if cls is not kafka_errors.UnknownError else f"error code {code}"


@asynccontextmanager
async def admin_client(settings: Settings, servers: str) -> AsyncIterator[AIOKafkaClient]:
    """A bootstrapped ``AIOKafkaClient`` on ``servers``, closed on exit.

    Raises:
        QueueUnavailable: the cluster cannot be reached.
    """
    client = AIOKafkaClient(bootstrap_servers=servers, **settings.kafka.connection_options())
    try:
        try:
            await client.bootstrap()
        except kafka_errors.KafkaError as exc:
            raise QueueUnavailable(f"cannot reach Kafka at {servers}: {exc}") from exc
        yield client
    finally:
        await client.close()


async def _send(client: AIOKafkaClient, node: int, request: Any, group: str | None) -> Any:
    try:
        return await client.send(node, request)
    except (kafka_errors.IncompatibleBrokerVersion, NotImplementedError) as exc:
        raise SharingUnsupported(
            f"node {node} cannot take {type(request).__name__} ({exc}): {_HINT}", group=group
        ) from exc
    except (kafka_errors.KafkaError, OSError) as exc:
        raise QueueUnavailable(
            f"{type(request).__name__} to node {node} failed: {type(exc).__name__}: {exc}",
            group=group,
        ) from exc


async def list_share_groups(client: AIOKafkaClient) -> list[ShareGroupListing]:
    """Every share group of the cluster (each broker lists the groups it coordinates).

    Raises:
        SharingUnsupported: a broker lacks ListGroups v5 (older than 4.0).
        QueueUnavailable: a broker cannot be reached.
        QueueError: a broker refused the request.
    """
    found: dict[str, ShareGroupListing] = {}
    for broker in client.cluster.brokers():
        response = await _send(client, broker.nodeId, ListGroupsRequest(["share"]), None)
        if response.error_code:
            raise QueueError(
                f"listing share groups on node {broker.nodeId} failed: "
                f"{_error_name(response.error_code)}"
            )
        for group_id, _protocol, state, _type, _tags in response.groups:
            found[group_id] = ShareGroupListing(group=group_id, state=state or "")
    return sorted(found.values(), key=lambda listing: listing.group)


async def describe_share_group(
    client: AIOKafkaClient,
    group: str,
    *,
    settings: Settings,
    servers: str,
    end_offsets: bool = True,
) -> ShareGroupDescription:
    """Members, assignment, start offsets and lag of share group ``group``.

    ``end_offsets=False`` skips reading the log end offsets (one more client), for callers
    that poll.

    Raises:
        QueueError: no such share group (or it is a consumer group), or the broker refused.
        SharingUnsupported: the cluster has no share-group admin APIs.
        QueueUnavailable: the coordinator cannot be reached.
    """
    try:
        coordinator = await client.coordinator_lookup(0, group)
    except kafka_errors.KafkaError as exc:
        raise QueueUnavailable(f"no coordinator for group {group!r}: {exc}", group=group) from exc
    response = await _send(client, coordinator, ShareGroupDescribeRequest([group]), group)
    (described,) = response.groups
    code, message = described[0], described[1]
    if code == _GROUP_ID_NOT_FOUND:
        raise QueueError(f"share group {group!r} does not exist on {servers}", group=group)
    if code:
        raise QueueError(
            f"describing share group {group!r} failed: {_error_name(code)}"
            + (f": {message}" if message else ""),
            group=group,
            error_code=code,
        )
    _code, _msg, _id, state, epoch, assignment_epoch, assignor, raw_members = described[:8]
    members = [
        ShareMember(
            member_id=member_id,
            client_id=client_id,
            client_host=client_host,
            epoch=member_epoch,
            topics=list(topics or []),
            assignment=sorted(
                (name, partition)
                for _tid, name, partitions, _tags in (assignment[0] or [])
                for partition in partitions
            ),
        )
        for member_id, _rack, member_epoch, client_id, client_host, topics, assignment, _t in (
            raw_members or []
        )
    ]
    offsets = await _send(client, coordinator, DescribeShareGroupOffsetsRequest(group), group)
    partitions: list[SharePartition] = []
    for _group, topics, group_code, group_message, _tags in offsets.groups:
        if group_code:
            raise QueueError(
                f"describing the offsets of share group {group!r} failed: "
                f"{_error_name(group_code)}" + (f": {group_message}" if group_message else ""),
                group=group,
                error_code=group_code,
            )
        for name, _tid, parts, _ttags in topics or []:
            for entry in parts:
                index, start, _epoch = entry[:3]
                lag = entry[3] if len(entry) == 7 else None
                part_code, part_message = entry[-3], entry[-2]
                error = None
                if part_code:
                    error = _error_name(part_code) + (f": {part_message}" if part_message else "")
                partitions.append(
                    SharePartition(
                        topic=name,
                        partition=index,
                        start_offset=start,
                        lag=lag if lag is None or lag >= 0 else None,
                        error=error,
                    )
                )
    if end_offsets:
        partitions = await _with_end_offsets(partitions, settings=settings, servers=servers)
    return ShareGroupDescription(
        group=group,
        state=state,
        epoch=epoch,
        assignment_epoch=assignment_epoch,
        assignor=assignor,
        members=sorted(members, key=lambda m: m.member_id),
        partitions=sorted(partitions, key=lambda p: (p.topic, p.partition)),
    )


async def _with_end_offsets(
    partitions: list[SharePartition], *, settings: Settings, servers: str
) -> list[SharePartition]:
    if not partitions:
        return partitions
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers, enable_auto_commit=False, **settings.kafka.connection_options()
    )
    try:
        await consumer.start()
        ends = await consumer.end_offsets(
            [TopicPartition(p.topic, p.partition) for p in partitions]
        )
    except kafka_errors.KafkaError:
        return partitions  # the offsets the group reported are still worth showing
    finally:
        await consumer.stop()
    return [
        SharePartition(
            topic=p.topic,
            partition=p.partition,
            start_offset=p.start_offset,
            lag=p.lag,
            end_offset=ends.get(TopicPartition(p.topic, p.partition)),
            error=p.error,
        )
        for p in partitions
    ]

# aiokafka ships no type information, so its protocol classes are Any to mypy.
# mypy: disallow-subclassing-any=False
"""The share-group RPCs (KIP-932) as aiokafka request and response structs.

aiokafka 0.14 speaks no share-group API, but its connection layer sends any
:class:`~aiokafka.protocol.api.RequestStruct` and negotiates the version per connection (a
:class:`~aiokafka.protocol.api.Request` picks the newest struct the broker accepts). The structs
here follow Apache Kafka's message definitions,
``clients/src/main/resources/common/message/<Name>{Request,Response}.json`` as shipped in the
4.4.0 ``kafka-clients`` jar (checked against it; older copies of the files differ):

===================================  =======  ===========================================
ShareGroupHeartbeat                  76       v1 (v0 was 4.0's early access, removed)
ShareFetch                           78       v1, v2 (KIP-1206 acquire mode, KIP-1222 renew)
ShareAcknowledge                     79       v1, v2 (``IsRenewAck``, lock timeout answered)
Metadata                             3        v12 (topic ids, which aiokafka's v5 lacks)
IncrementalAlterConfigs              44       v1 (GROUP resources, type 32, KIP-848/932)
===================================  =======  ===========================================

Every one is a *flexible* version (KIP-482): compact strings and arrays (length + 1 as an
unsigned varint, 0 for null), a tagged-field buffer closing each struct, and the request header
v2 / response header v1. Nullable structs (the heartbeat's ``Assignment``) are an int8 marker,
-1 for null and 1 before the struct. Topic ids are 16-byte UUIDs.

Nested structs decode to tuples in field order (aiokafka's convention); the consumer reads them
by position, and the unit tests pin those positions against bytes built from the JSON specs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from io import BytesIO
from typing import Any, TypeAlias

from aiokafka.errors import IncompatibleBrokerVersion
from aiokafka.protocol.abstract import AbstractType
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

__all__ = [
    "ACK_ACCEPT",
    "ACK_GAP",
    "ACK_REJECT",
    "ACK_RELEASE",
    "ACK_RENEW",
    "ACQUIRE_BATCH_OPTIMIZED",
    "ACQUIRE_RECORD_LIMIT",
    "API_INCREMENTAL_ALTER_CONFIGS",
    "API_METADATA",
    "API_SHARE_ACKNOWLEDGE",
    "API_SHARE_FETCH",
    "API_SHARE_GROUP_HEARTBEAT",
    "RESOURCE_GROUP",
    "ZERO_UUID",
    "IncrementalAlterConfigsRequest",
    "MetadataRequest",
    "NullableSchema",
    "ShareAcknowledgeRequest",
    "ShareFetchRequest",
    "ShareGroupHeartbeatRequest",
    "Uuid",
]

API_METADATA = 3
API_INCREMENTAL_ALTER_CONFIGS = 44
API_SHARE_GROUP_HEARTBEAT = 76
API_SHARE_FETCH = 78
API_SHARE_ACKNOWLEDGE = 79

#: Acknowledge types on the wire (ShareFetchRequest.json, ``AcknowledgeTypes``).
ACK_GAP = 0
ACK_ACCEPT = 1
ACK_RELEASE = 2
ACK_REJECT = 3
ACK_RENEW = 4  # KIP-1222, ShareAcknowledge v2+

#: ShareFetch v2 ``ShareAcquireMode`` (KIP-1206).
ACQUIRE_BATCH_OPTIMIZED = 0
ACQUIRE_RECORD_LIMIT = 1

#: ConfigResource type GROUP (KIP-848, used for share groups' dynamic configs by KIP-932).
RESOURCE_GROUP = 32

ZERO_UUID = uuid.UUID(int=0)


class Uuid(AbstractType[uuid.UUID]):
    """A 16-byte UUID (Kafka's ``uuid`` type: most then least significant 64 bits)."""

    @classmethod
    def encode(cls, value: uuid.UUID) -> bytes:
        return value.bytes

    @classmethod
    def decode(cls, data: BytesIO) -> uuid.UUID:
        raw = data.read(16)
        if len(raw) != 16:
            raise ValueError("Buffer underrun decoding a UUID")
        return uuid.UUID(bytes=raw)


class NullableSchema(Schema):
    """A nullable struct of a flexible version: int8 -1 for null, else 1 and the struct."""

    def encode(self, item: Sequence[Any] | None) -> bytes:
        if item is None:
            marker: bytes = Int8.encode(-1)
            return marker
        head: bytes = Int8.encode(1)
        body: bytes = super().encode(item)
        return head + body

    def decode(self, data: BytesIO) -> Any:
        if Int8.decode(data) < 0:
            return None
        return super().decode(data)


_STRING = CompactString("utf-8")

# -- ShareGroupHeartbeat (76) ------------------------------------------------------------------


class ShareGroupHeartbeatResponse_v1(Response):
    """ShareGroupHeartbeatResponse v1."""

    API_KEY = API_SHARE_GROUP_HEARTBEAT
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", _STRING),
        ("member_id", _STRING),
        ("member_epoch", Int32),
        ("heartbeat_interval_ms", Int32),
        (
            "assignment",
            NullableSchema(
                (
                    "topic_partitions",
                    CompactArray(
                        ("topic_id", Uuid),
                        ("partitions", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class ShareGroupHeartbeatRequest_v1(RequestStruct):
    """ShareGroupHeartbeatRequest v1: member epoch 0 joins, -1 leaves (KIP-932)."""

    FLEXIBLE_VERSION = True
    API_KEY = API_SHARE_GROUP_HEARTBEAT
    API_VERSION = 1
    RESPONSE_TYPE = ShareGroupHeartbeatResponse_v1
    SCHEMA = Schema(
        ("group_id", _STRING),
        ("member_id", _STRING),
        ("member_epoch", Int32),
        ("rack_id", _STRING),
        ("subscribed_topic_names", CompactArray(_STRING)),
        ("tags", TaggedFields),
    )


class ShareGroupHeartbeatRequest(Request[ShareGroupHeartbeatRequest_v1]):
    """A heartbeat; ``subscribed_topic_names`` None when unchanged since the last one."""

    API_KEY = API_SHARE_GROUP_HEARTBEAT

    def __init__(
        self,
        *,
        group_id: str,
        member_id: str,
        member_epoch: int,
        subscribed_topic_names: Sequence[str] | None,
        rack_id: str | None = None,
    ) -> None:
        self.fields: tuple[Any, ...] = (
            group_id,
            member_id,
            member_epoch,
            rack_id,
            list(subscribed_topic_names) if subscribed_topic_names is not None else None,
            {},
        )

    def build(
        self, request_struct_class: type[ShareGroupHeartbeatRequest_v1]
    ) -> ShareGroupHeartbeatRequest_v1:
        return request_struct_class(*self.fields)


# -- ShareFetch (78) ---------------------------------------------------------------------------

_ACK_BATCHES = CompactArray(
    ("first_offset", Int64),
    ("last_offset", Int64),
    ("acknowledge_types", CompactArray(Int8)),
    ("tags", TaggedFields),
)

_LEADER = Schema(("leader_id", Int32), ("leader_epoch", Int32), ("tags", TaggedFields))

_NODE_ENDPOINTS = CompactArray(
    ("node_id", Int32),
    ("host", _STRING),
    ("port", Int32),
    ("rack", _STRING),
    ("tags", TaggedFields),
)


class ShareFetchResponse_v1(Response):
    """ShareFetchResponse v1 (v2 has the same fields)."""

    API_KEY = API_SHARE_FETCH
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", _STRING),
        ("acquisition_lock_timeout_ms", Int32),
        (
            "responses",
            CompactArray(
                ("topic_id", Uuid),
                (
                    "partitions",
                    CompactArray(
                        ("partition_index", Int32),
                        ("error_code", Int16),
                        ("error_message", _STRING),
                        ("acknowledge_error_code", Int16),
                        ("acknowledge_error_message", _STRING),
                        ("current_leader", _LEADER),
                        ("records", CompactBytes),
                        (
                            "acquired_records",
                            CompactArray(
                                ("first_offset", Int64),
                                ("last_offset", Int64),
                                ("delivery_count", Int16),
                                ("tags", TaggedFields),
                            ),
                        ),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("node_endpoints", _NODE_ENDPOINTS),
        ("tags", TaggedFields),
    )


class ShareFetchResponse_v2(Response):
    """ShareFetchResponse v2."""

    API_KEY = API_SHARE_FETCH
    API_VERSION = 2
    SCHEMA = ShareFetchResponse_v1.SCHEMA


_FETCH_TOPICS = CompactArray(
    ("topic_id", Uuid),
    (
        "partitions",
        CompactArray(
            ("partition_index", Int32),
            ("acknowledgement_batches", _ACK_BATCHES),
            ("tags", TaggedFields),
        ),
    ),
    ("tags", TaggedFields),
)

_FORGOTTEN = CompactArray(
    ("topic_id", Uuid), ("partitions", CompactArray(Int32)), ("tags", TaggedFields)
)


class ShareFetchRequest_v1(RequestStruct):
    """ShareFetchRequest v1: fetch, and acknowledge what an earlier fetch delivered."""

    FLEXIBLE_VERSION = True
    API_KEY = API_SHARE_FETCH
    API_VERSION = 1
    RESPONSE_TYPE = ShareFetchResponse_v1
    SCHEMA = Schema(
        ("group_id", _STRING),
        ("member_id", _STRING),
        ("share_session_epoch", Int32),
        ("max_wait_ms", Int32),
        ("min_bytes", Int32),
        ("max_bytes", Int32),
        ("max_records", Int32),
        ("batch_size", Int32),
        ("topics", _FETCH_TOPICS),
        ("forgotten_topics_data", _FORGOTTEN),
        ("tags", TaggedFields),
    )


class ShareFetchRequest_v2(RequestStruct):
    """ShareFetchRequest v2: adds ``ShareAcquireMode`` (KIP-1206) and ``IsRenewAck`` (KIP-1222)."""

    FLEXIBLE_VERSION = True
    API_KEY = API_SHARE_FETCH
    API_VERSION = 2
    RESPONSE_TYPE = ShareFetchResponse_v2
    SCHEMA = Schema(
        ("group_id", _STRING),
        ("member_id", _STRING),
        ("share_session_epoch", Int32),
        ("max_wait_ms", Int32),
        ("min_bytes", Int32),
        ("max_bytes", Int32),
        ("max_records", Int32),
        ("batch_size", Int32),
        ("share_acquire_mode", Int8),
        ("is_renew_ack", Boolean),
        ("topics", _FETCH_TOPICS),
        ("forgotten_topics_data", _FORGOTTEN),
        ("tags", TaggedFields),
    )


#: ``(partition, [(first_offset, last_offset, [types]), …])``
AckPartition: TypeAlias = tuple[int, list[tuple[int, int, list[int]]]]
#: ``(topic_id, [AckPartition, …])``
AckTopic: TypeAlias = tuple[uuid.UUID, list[AckPartition]]


def _topics_wire(topics: Sequence[AckTopic]) -> list[Any]:
    return [
        (
            topic_id,
            [
                (partition, [(first, last, types, {}) for first, last, types in batches], {})
                for partition, batches in partitions
            ],
            {},
        )
        for topic_id, partitions in topics
    ]


ShareFetchRequestStruct: TypeAlias = ShareFetchRequest_v1 | ShareFetchRequest_v2


class ShareFetchRequest(Request[ShareFetchRequestStruct]):
    """A share fetch; ``topics`` lists partitions to add to the session or acknowledge in."""

    API_KEY = API_SHARE_FETCH

    def __init__(
        self,
        *,
        group_id: str,
        member_id: str,
        share_session_epoch: int,
        max_wait_ms: int,
        min_bytes: int,
        max_bytes: int,
        max_records: int,
        batch_size: int,
        topics: Sequence[AckTopic],
        forgotten: Sequence[tuple[uuid.UUID, list[int]]] = (),
        acquire_mode: int = ACQUIRE_BATCH_OPTIMIZED,
    ) -> None:
        self.head = (
            group_id,
            member_id,
            share_session_epoch,
            max_wait_ms,
            min_bytes,
            max_bytes,
            max_records,
            batch_size,
        )
        self.acquire_mode = acquire_mode
        self.topics = _topics_wire(topics)
        self.forgotten: list[Any] = [(topic_id, list(parts), {}) for topic_id, parts in forgotten]

    def build(self, request_struct_class: type[ShareFetchRequestStruct]) -> ShareFetchRequestStruct:
        if request_struct_class.API_VERSION >= 2:
            # Renewals go by ShareAcknowledge (whose v2 also answers the new lock timeout), so a
            # fetch never carries any: IsRenewAck is false.
            return request_struct_class(
                *self.head, self.acquire_mode, False, self.topics, self.forgotten, {}
            )
        return request_struct_class(*self.head, self.topics, self.forgotten, {})


# -- ShareAcknowledge (79) ---------------------------------------------------------------------

_ACK_RESPONSES = CompactArray(
    ("topic_id", Uuid),
    (
        "partitions",
        CompactArray(
            ("partition_index", Int32),
            ("error_code", Int16),
            ("error_message", _STRING),
            ("current_leader", _LEADER),
            ("tags", TaggedFields),
        ),
    ),
    ("tags", TaggedFields),
)


class ShareAcknowledgeResponse_v1(Response):
    """ShareAcknowledgeResponse v1."""

    API_KEY = API_SHARE_ACKNOWLEDGE
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", _STRING),
        ("responses", _ACK_RESPONSES),
        ("node_endpoints", _NODE_ENDPOINTS),
        ("tags", TaggedFields),
    )


class ShareAcknowledgeResponse_v2(Response):
    """ShareAcknowledgeResponse v2: adds the (renewed) acquisition lock timeout."""

    API_KEY = API_SHARE_ACKNOWLEDGE
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", _STRING),
        ("acquisition_lock_timeout_ms", Int32),
        ("responses", _ACK_RESPONSES),
        ("node_endpoints", _NODE_ENDPOINTS),
        ("tags", TaggedFields),
    )


_ACK_TOPICS = _FETCH_TOPICS  # same shape: topic id, partitions, acknowledgement batches


class ShareAcknowledgeRequest_v1(RequestStruct):
    """ShareAcknowledgeRequest v1."""

    FLEXIBLE_VERSION = True
    API_KEY = API_SHARE_ACKNOWLEDGE
    API_VERSION = 1
    RESPONSE_TYPE = ShareAcknowledgeResponse_v1
    SCHEMA = Schema(
        ("group_id", _STRING),
        ("member_id", _STRING),
        ("share_session_epoch", Int32),
        ("topics", _ACK_TOPICS),
        ("tags", TaggedFields),
    )


class ShareAcknowledgeRequest_v2(RequestStruct):
    """ShareAcknowledgeRequest v2: ``IsRenewAck`` marks renew acknowledgements (KIP-1222)."""

    FLEXIBLE_VERSION = True
    API_KEY = API_SHARE_ACKNOWLEDGE
    API_VERSION = 2
    RESPONSE_TYPE = ShareAcknowledgeResponse_v2
    SCHEMA = Schema(
        ("group_id", _STRING),
        ("member_id", _STRING),
        ("share_session_epoch", Int32),
        ("is_renew_ack", Boolean),
        ("topics", _ACK_TOPICS),
        ("tags", TaggedFields),
    )


ShareAcknowledgeRequestStruct: TypeAlias = ShareAcknowledgeRequest_v1 | ShareAcknowledgeRequest_v2


class ShareAcknowledgeRequest(Request[ShareAcknowledgeRequestStruct]):
    """Acknowledgements outside a fetch; epoch -1 closes the share session after them."""

    API_KEY = API_SHARE_ACKNOWLEDGE

    def __init__(
        self,
        *,
        group_id: str,
        member_id: str,
        share_session_epoch: int,
        topics: Sequence[AckTopic],
        is_renew_ack: bool = False,
    ) -> None:
        self.head = (group_id, member_id, share_session_epoch)
        self.is_renew_ack = is_renew_ack
        self.topics = _topics_wire(topics)

    def build(
        self, request_struct_class: type[ShareAcknowledgeRequestStruct]
    ) -> ShareAcknowledgeRequestStruct:
        if request_struct_class.API_VERSION >= 2:
            return request_struct_class(*self.head, self.is_renew_ack, self.topics, {})
        if self.is_renew_ack:
            raise IncompatibleBrokerVersion(
                "renewing a record's lock needs ShareAcknowledge v2 (KIP-1222, Kafka 4.2+)"
            )
        return request_struct_class(*self.head, self.topics, {})


# -- Metadata (3) v12: topic ids ---------------------------------------------------------------


class MetadataResponse_v12(Response):
    """MetadataResponse v12."""

    API_KEY = API_METADATA
    API_VERSION = 12
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            CompactArray(
                ("node_id", Int32),
                ("host", _STRING),
                ("port", Int32),
                ("rack", _STRING),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_id", _STRING),
        ("controller_id", Int32),
        (
            "topics",
            CompactArray(
                ("error_code", Int16),
                ("name", _STRING),
                ("topic_id", Uuid),
                ("is_internal", Boolean),
                (
                    "partitions",
                    CompactArray(
                        ("error_code", Int16),
                        ("partition_index", Int32),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("replica_nodes", CompactArray(Int32)),
                        ("isr_nodes", CompactArray(Int32)),
                        ("offline_replicas", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("topic_authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class MetadataRequest_v12(RequestStruct):
    """MetadataRequest v12 (topics by name or id)."""

    FLEXIBLE_VERSION = True
    API_KEY = API_METADATA
    API_VERSION = 12
    RESPONSE_TYPE = MetadataResponse_v12
    SCHEMA = Schema(
        (
            "topics",
            CompactArray(("topic_id", Uuid), ("name", _STRING), ("tags", TaggedFields)),
        ),
        ("allow_auto_topic_creation", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class MetadataRequest(Request[MetadataRequest_v12]):
    """Metadata of ``topics`` by name, with their topic ids and partition leaders."""

    API_KEY = API_METADATA

    def __init__(self, topics: Sequence[str]) -> None:
        self.topics: list[Any] = [(ZERO_UUID, name, {}) for name in topics]

    def build(self, request_struct_class: type[MetadataRequest_v12]) -> MetadataRequest_v12:
        return request_struct_class(self.topics, False, False, {})


# -- IncrementalAlterConfigs (44) v1 -----------------------------------------------------------


class IncrementalAlterConfigsResponse_v1(Response):
    """IncrementalAlterConfigsResponse v1."""

    API_KEY = API_INCREMENTAL_ALTER_CONFIGS
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "responses",
            CompactArray(
                ("error_code", Int16),
                ("error_message", _STRING),
                ("resource_type", Int8),
                ("resource_name", _STRING),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class IncrementalAlterConfigsRequest_v1(RequestStruct):
    """IncrementalAlterConfigsRequest v1."""

    FLEXIBLE_VERSION = True
    API_KEY = API_INCREMENTAL_ALTER_CONFIGS
    API_VERSION = 1
    RESPONSE_TYPE = IncrementalAlterConfigsResponse_v1
    SCHEMA = Schema(
        (
            "resources",
            CompactArray(
                ("resource_type", Int8),
                ("resource_name", _STRING),
                (
                    "configs",
                    CompactArray(
                        ("name", _STRING),
                        ("config_operation", Int8),
                        ("value", _STRING),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("validate_only", Boolean),
        ("tags", TaggedFields),
    )


_OP_SET = 0


class IncrementalAlterConfigsRequest(Request[IncrementalAlterConfigsRequest_v1]):
    """Set configs of one resource (operation SET)."""

    API_KEY = API_INCREMENTAL_ALTER_CONFIGS

    def __init__(self, *, resource_type: int, resource_name: str, configs: dict[str, str]) -> None:
        self.resources: list[Any] = [
            (
                resource_type,
                resource_name,
                [(name, _OP_SET, value, {}) for name, value in configs.items()],
                {},
            )
        ]

    def build(
        self, request_struct_class: type[IncrementalAlterConfigsRequest_v1]
    ) -> IncrementalAlterConfigsRequest_v1:
        return request_struct_class(self.resources, False, {})

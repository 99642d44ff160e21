"""The share-group structs against bytes built by hand from Apache Kafka's message specs.

Each expected byte string is written out field by field (compact string = unsigned varint of
length + 1 then UTF-8; compact array = varint count + 1; an empty tagged-field buffer = 0x00;
a nullable struct = int8 -1 or 1 before it; uuid = 16 bytes), independently of aiokafka's
encoders, so a struct with a field missing, extra or out of order fails here.
"""

from __future__ import annotations

import struct
import uuid
from io import BytesIO

import pytest
from aiokafka.errors import IncompatibleBrokerVersion
from aiokafka.protocol.types import Int32, TaggedFields

from eventplatform.queue import protocol as p

TOPIC_ID = uuid.UUID("513f1979-3861-48cb-b108-943fdf1eb62a")


def s(text: str | None) -> bytes:
    """A compact (nullable) string."""
    if text is None:
        return b"\x00"
    raw = text.encode()
    return bytes([len(raw) + 1]) + raw


def n(count: int) -> bytes:
    """The length prefix of a compact array of ``count`` items (all tests stay below 127)."""
    return bytes([count + 1])


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


TAGS = b"\x00"


def test_share_group_heartbeat_request_v1_bytes() -> None:
    request = p.ShareGroupHeartbeatRequest(
        group_id="g", member_id="m1", member_epoch=0, subscribed_topic_names=["jobs"]
    ).prepare({p.API_SHARE_GROUP_HEARTBEAT: (1, 1)})
    assert request.API_VERSION == 1
    assert request.FLEXIBLE_VERSION
    expected = s("g") + s("m1") + i32(0) + s(None) + n(1) + s("jobs") + TAGS
    assert request.encode() == expected


def test_share_group_heartbeat_leave_sends_null_topics() -> None:
    request = p.ShareGroupHeartbeatRequest(
        group_id="g", member_id="m1", member_epoch=-1, subscribed_topic_names=None
    ).prepare({p.API_SHARE_GROUP_HEARTBEAT: (1, 1)})
    assert request.encode() == s("g") + s("m1") + i32(-1) + s(None) + b"\x00" + TAGS


def test_share_group_heartbeat_response_v1_with_and_without_assignment() -> None:
    head = i32(0) + i16(0) + s(None) + s("m1") + i32(3) + i32(5000)
    assignment = i8(1) + n(1) + TOPIC_ID.bytes + n(2) + i32(0) + i32(2) + TAGS + TAGS
    response = p.ShareGroupHeartbeatRequest_v1.RESPONSE_TYPE.decode(head + assignment + TAGS)
    assert response.member_id == "m1"
    assert response.member_epoch == 3
    assert response.heartbeat_interval_ms == 5000
    assert response.assignment[0] == [(TOPIC_ID, [0, 2], {})]
    empty = p.ShareGroupHeartbeatRequest_v1.RESPONSE_TYPE.decode(head + i8(-1) + TAGS)
    assert empty.assignment is None


def _fetch(**overrides: object) -> p.ShareFetchRequest:
    options: dict[str, object] = {
        "group_id": "g",
        "member_id": "m1",
        "share_session_epoch": 2,
        "max_wait_ms": 500,
        "min_bytes": 1,
        "max_bytes": 1024,
        "max_records": 10,
        "batch_size": 10,
        "topics": [(TOPIC_ID, [(0, [(5, 7, [p.ACK_ACCEPT]), (8, 8, [p.ACK_RELEASE])])])],
        "forgotten": [(TOPIC_ID, [1])],
        "acquire_mode": p.ACQUIRE_RECORD_LIMIT,
    }
    options.update(overrides)
    return p.ShareFetchRequest(**options)  # type: ignore[arg-type]


_FETCH_HEAD = s("g") + s("m1") + i32(2) + i32(500) + i32(1) + i32(1024) + i32(10) + i32(10)
_FETCH_TOPICS = (
    n(1)
    + TOPIC_ID.bytes
    + n(1)
    + i32(0)
    + n(2)
    + (i64(5) + i64(7) + n(1) + i8(1) + TAGS)
    + (i64(8) + i64(8) + n(1) + i8(2) + TAGS)
    + TAGS
    + TAGS
)
_FORGOTTEN = n(1) + TOPIC_ID.bytes + n(1) + i32(1) + TAGS


def test_share_fetch_request_v2_bytes() -> None:
    request = _fetch().prepare({p.API_SHARE_FETCH: (1, 2)})
    assert request.API_VERSION == 2
    # v2: ShareAcquireMode (KIP-1206) and IsRenewAck (KIP-1222) follow BatchSize.
    expected = _FETCH_HEAD + i8(1) + b"\x00" + _FETCH_TOPICS + _FORGOTTEN + TAGS
    assert request.encode() == expected


def test_share_fetch_request_v1_bytes() -> None:
    request = _fetch().prepare({p.API_SHARE_FETCH: (1, 1)})
    assert request.API_VERSION == 1
    assert request.encode() == _FETCH_HEAD + _FETCH_TOPICS + _FORGOTTEN + TAGS


def test_share_fetch_response_bytes() -> None:
    records = b"\x01\x02\x03"
    partition = (
        i32(0)
        + i16(0)
        + s(None)
        + i16(0)
        + s(None)
        + (i32(1) + i32(4) + TAGS)
        + bytes([len(records) + 1])
        + records
        + n(1)
        + (i64(0) + i64(2) + i16(3) + TAGS)
        + TAGS
    )
    raw = (
        i32(0)
        + i16(0)
        + s(None)
        + i32(30000)
        + n(1)
        + TOPIC_ID.bytes
        + n(1)
        + partition
        + TAGS
        + n(1)
        + (i32(1) + s("127.0.0.1") + i32(9092) + s(None) + TAGS)
        + TAGS
    )
    buffer = BytesIO(raw)
    response = p.ShareFetchRequest_v2.RESPONSE_TYPE.decode(buffer)
    assert buffer.read() == b"", "bytes left over"
    assert response.acquisition_lock_timeout_ms == 30000
    topic_id, partitions, _ = response.responses[0]
    assert topic_id == TOPIC_ID
    index, error, _msg, ack_error, _ack_msg, leader, data, acquired, _tags = partitions[0]
    assert (index, error, ack_error) == (0, 0, 0)
    assert leader[:2] == (1, 4)
    assert data == records
    assert acquired == [(0, 2, 3, {})]
    assert response.node_endpoints == [(1, "127.0.0.1", 9092, None, {})]


def test_share_acknowledge_request_v2_renew_bytes() -> None:
    request = p.ShareAcknowledgeRequest(
        group_id="g",
        member_id="m1",
        share_session_epoch=-1,
        topics=[(TOPIC_ID, [(3, [(9, 9, [p.ACK_RENEW])])])],
        is_renew_ack=True,
    ).prepare({p.API_SHARE_ACKNOWLEDGE: (1, 2)})
    topics = n(1) + TOPIC_ID.bytes + n(1) + i32(3) + n(1)
    topics += i64(9) + i64(9) + n(1) + i8(4) + TAGS + TAGS + TAGS
    assert request.encode() == s("g") + s("m1") + i32(-1) + b"\x01" + topics + TAGS


def test_renewing_needs_share_acknowledge_v2() -> None:
    request = p.ShareAcknowledgeRequest(
        group_id="g", member_id="m1", share_session_epoch=1, topics=[], is_renew_ack=True
    )
    with pytest.raises(IncompatibleBrokerVersion, match="KIP-1222"):
        request.prepare({p.API_SHARE_ACKNOWLEDGE: (1, 1)})
    plain = p.ShareAcknowledgeRequest(
        group_id="g", member_id="m1", share_session_epoch=1, topics=[]
    ).prepare({p.API_SHARE_ACKNOWLEDGE: (1, 1)})
    assert plain.encode() == s("g") + s("m1") + i32(1) + n(0) + TAGS


def test_share_acknowledge_response_v2_bytes() -> None:
    partition = i32(3) + i16(121) + s("lock expired") + (i32(-1) + i32(-1) + TAGS) + TAGS
    raw = i32(0) + i16(0) + s(None) + i32(15000)
    raw += n(1) + TOPIC_ID.bytes + n(1) + partition + TAGS + n(0) + TAGS
    response = p.ShareAcknowledgeRequest_v2.RESPONSE_TYPE.decode(raw)
    assert response.acquisition_lock_timeout_ms == 15000
    assert response.responses[0][1][0][:3] == (3, 121, "lock expired")


def test_metadata_request_v12_and_alter_group_configs_bytes() -> None:
    metadata = p.MetadataRequest(["jobs"]).prepare({p.API_METADATA: (0, 13)})
    assert metadata.API_VERSION == 12
    assert metadata.encode() == n(1) + bytes(16) + s("jobs") + TAGS + b"\x00\x00" + TAGS
    alter = p.IncrementalAlterConfigsRequest(
        resource_type=p.RESOURCE_GROUP,
        resource_name="g",
        configs={"share.auto.offset.reset": "earliest"},
    ).prepare({p.API_INCREMENTAL_ALTER_CONFIGS: (0, 1)})
    config = s("share.auto.offset.reset") + i8(0) + s("earliest") + TAGS
    expected = n(1) + i8(32) + s("g") + n(1) + config + TAGS + b"\x00" + TAGS
    assert alter.encode() == expected


def test_nullable_schema_round_trip() -> None:
    schema = p.NullableSchema(("a", Int32), ("tags", TaggedFields))
    assert schema.encode(None) == i8(-1)
    assert schema.decode(BytesIO(schema.encode((7, {})))) == (7, {})
    assert schema.decode(BytesIO(i8(-1))) is None

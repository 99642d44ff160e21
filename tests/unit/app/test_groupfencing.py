"""KIP-447 structs: TxnOffsetCommit v3 as Apache Kafka's message definition lays it out."""

from __future__ import annotations

import struct
from io import BytesIO

from eventplatform.app import _groupfencing as groupfencing
from eventplatform.app._groupfencing import GroupMetadata, group_metadata_of


def compact(text: str | None) -> bytes:
    if text is None:
        return b"\x00"
    data = text.encode()
    return bytes([len(data) + 1]) + data


def test_v3_carries_the_group_metadata_in_flexible_encoding() -> None:
    group = GroupMetadata("grp", generation_id=3, member_id="m-1", group_instance_id="pod-0")
    request = groupfencing.FencingTxnOffsetCommitRequest(
        transactional_id="t",
        group=group,
        producer_id=7,
        producer_epoch=1,
        topics=[("orders", [(0, 42, "")])],
    ).prepare({28: (0, 5)})
    assert request.API_VERSION == 3
    assert request.FLEXIBLE_VERSION
    expected = (
        compact("t")
        + compact("grp")
        + struct.pack(">qhi", 7, 1, 3)
        + compact("m-1")
        + compact("pod-0")
        + b"\x02"  # one topic
        + compact("orders")
        + b"\x02"  # one partition
        + struct.pack(">iqi", 0, 42, -1)  # index, offset, leader epoch unknown
        + compact("")
        + b"\x00"  # partition tags
        + b"\x00"  # topic tags
        + b"\x00"  # request tags
    )
    assert request.encode() == expected


def test_a_broker_without_v3_gets_v0_with_the_group_id() -> None:
    group = GroupMetadata("grp", generation_id=3, member_id="m-1", group_instance_id=None)
    request = groupfencing.FencingTxnOffsetCommitRequest(
        transactional_id="t",
        group=group,
        producer_id=7,
        producer_epoch=1,
        topics=[("orders", [(0, 42, "")])],
    ).prepare({28: (0, 2)})
    assert request.API_VERSION == 0
    assert request.group_id == "grp"


def test_the_v3_response_decodes_into_per_partition_errors() -> None:
    body = (
        struct.pack(">i", 0)
        + b"\x02"
        + compact("orders")
        + b"\x02"
        + struct.pack(">ih", 0, 22)  # ILLEGAL_GENERATION
        + b"\x00\x00\x00"
    )
    response = groupfencing.TxnOffsetCommitResponse_v3.decode(BytesIO(body))
    assert response.errors == [("orders", [(0, 22, {})], {})]


def test_group_metadata_is_the_group_id_for_aiokafka() -> None:
    group = GroupMetadata("grp", generation_id=3, member_id="m-1", group_instance_id=None)
    assert group == "grp"
    assert isinstance(group, str)
    assert (group.generation_id, group.member_id, group.group_instance_id) == (3, "m-1", None)


def test_group_metadata_of_a_consumer_before_its_first_join() -> None:
    class Coordinator:
        generation = -1
        member_id = ""
        _group_instance_id = None

    class Consumer:
        _coordinator = Coordinator()

    group = group_metadata_of(Consumer(), "grp")
    assert (group, group.generation_id, group.member_id) == ("grp", -1, "")
    assert group_metadata_of(object(), "grp").generation_id == -1

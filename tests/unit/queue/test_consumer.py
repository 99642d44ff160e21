"""ShareConsumer's pure parts: acquired ranges and gaps, acknowledgement batches, version checks."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from eventplatform.errors import SharingUnsupported
from eventplatform.queue import protocol as p
from eventplatform.queue.consumer import ShareConsumer, _ack_batches, _Session, _wire
from eventplatform.settings import load_settings

TOPIC_ID = uuid.UUID(int=42)


def _consumer() -> ShareConsumer:
    settings = load_settings(kafka={"bootstrap_servers": "127.0.0.1:1"})
    consumer = ShareConsumer(group="g", topics=["jobs"], settings=settings)
    consumer._names[TOPIC_ID] = "jobs"
    return consumer


def _batch(offsets: list[int]) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for offset in offsets:
        builder.append(offset, timestamp=1000, key=None, value=b"v%d" % offset, headers=[])
    return bytes(builder.build())


def test_only_acquired_offsets_are_delivered_and_missing_ones_are_gaps() -> None:
    consumer = _consumer()
    session = _Session(node=1)
    # The batch holds offsets 0, 1, 3, 5 (2 and 4 compacted away); offsets 1-4 are ours.
    records = consumer._acquired(
        session, (TOPIC_ID, 0), _batch([0, 1, 3, 5]), [(1, 2, 1, {}), (3, 4, 2, {})]
    )
    assert [(r.offset, r.value, r.delivery_count) for r in records] == [
        (1, b"v1", 1),
        (3, b"v3", 2),
    ]
    assert all(r.topic == "jobs" and r.node == 1 for r in records)
    assert session.acquired[(TOPIC_ID, 0)] == {1, 3}
    assert session.pending[(TOPIC_ID, 0)] == {2: p.ACK_GAP, 4: p.ACK_GAP}


def test_fetches_of_one_batch_resume_its_decoding() -> None:
    consumer = _consumer()
    session = _Session(node=1)
    tp = (TOPIC_ID, 0)
    batch = _batch(list(range(10)))
    first = consumer._acquired(session, tp, batch, [(0, 3, 1, {})])
    assert [r.offset for r in first] == [0, 1, 2, 3]
    assert session.batches[tp].upto == 3  # decoded no further than asked
    # The next fetch carries the same batch: decoding resumes; a released record comes back.
    second = consumer._acquired(session, tp, batch, [(2, 2, 2, {}), (4, 6, 1, {})])
    assert [(r.offset, r.value, r.delivery_count) for r in second] == [
        (2, b"v2", 2),
        (4, b"v4", 1),
        (5, b"v5", 1),
        (6, b"v6", 1),
    ]
    assert session.batches[tp].upto == 6
    # Another batch replaces it.
    third = consumer._acquired(session, tp, _batch([10, 11]), [(10, 11, 1, {})])
    assert [r.offset for r in third] == [10, 11]
    assert session.batches[tp].last == 11
    assert tp not in session.pending  # no gaps


def test_acknowledgements_coalesce_into_runs_of_one_type() -> None:
    offsets = {5: 1, 6: 1, 7: 1, 8: 2, 10: 1, 11: 3, 12: 3}
    assert _ack_batches(offsets) == [
        (5, 7, [1]),
        (8, 8, [2]),
        (10, 10, [1]),
        (11, 12, [3]),
    ]
    assert _ack_batches({}) == []
    assert _wire({(TOPIC_ID, 0): {1: 1}, (TOPIC_ID, 2): {4: 2}}) == [
        (TOPIC_ID, [(0, [(1, 1, [1])]), (2, [(4, 4, [2])])])
    ]


class _StubClient:
    def get_random_node(self) -> int:
        return 1


class _Versions:
    def __init__(self, versions: list[tuple[int, int, int]]) -> None:
        self.api_versions = versions


async def _check(versions: list[tuple[int, int, int]]) -> ShareConsumer:
    consumer = _consumer()
    consumer._client = _StubClient()  # type: ignore[assignment]
    consumer._state = "started"

    async def send(node: int, request: Any, **kw: Any) -> _Versions:
        return _Versions(versions)

    consumer._client_send = send  # type: ignore[method-assign]
    await consumer._check_versions()
    return consumer


async def test_a_broker_without_share_groups_gets_a_clear_error() -> None:
    with pytest.raises(SharingUnsupported) as caught:
        await _check([(3, 0, 13), (18, 0, 4)])
    message = str(caught.value)
    assert "ShareGroupHeartbeat (76)" in message
    assert "ShareFetch (78)" in message
    assert "share.version" in message
    assert "Apache Kafka 4.1" in message


async def test_renewals_follow_share_acknowledge_v2() -> None:
    shared = [(3, 0, 13), (76, 1, 1), (78, 1, 2)]
    assert (await _check([*shared, (79, 1, 2)])).supports_renew
    assert not (await _check([*shared, (79, 1, 1)])).supports_renew

"""Chains: one key's deliveries in order, duplicates of an idempotency key together."""

from __future__ import annotations

from typing import Any

from eventplatform.app.delivery import Delivery, plan_chains
from eventplatform.cloudevents import EventMetadata
from tests.unit.app.records import record, tp


def delivery(offset: int, key: bytes | None, idempotency_key: str, partition: int = 0) -> Any:
    d = Delivery(record(offset, b"", key=key, partition=partition), tp(partition=partition))
    d.metadata = EventMetadata.new(source="/t", type="T", idempotency_key=idempotency_key)
    return d


def offsets(chains: list[Any]) -> list[list[tuple[int, int]]]:
    return [[(d.tp.partition, d.record.offset) for _, d in c.deliveries] for c in chains]


def test_each_kafka_key_is_one_chain_in_offset_order() -> None:
    ds = [delivery(0, b"a", "1"), delivery(1, b"b", "2"), delivery(2, b"a", "3")]
    assert offsets(plan_chains(ds)) == [[(0, 0), (0, 2)], [(0, 1)]]


def test_records_without_kafka_key_chain_by_idempotency_key() -> None:
    ds = [delivery(0, None, "x"), delivery(1, None, "y"), delivery(2, None, "x")]
    assert offsets(plan_chains(ds)) == [[(0, 0), (0, 2)], [(0, 1)]]


def test_the_same_kafka_key_in_two_partitions_is_two_chains() -> None:
    ds = [delivery(0, b"a", "1", partition=0), delivery(0, b"a", "2", partition=1)]
    assert offsets(plan_chains(ds)) == [[(0, 0)], [(1, 0)]]


def test_chains_sharing_an_idempotency_key_merge_in_poll_order() -> None:
    ds = [
        delivery(0, b"a", "dup"),
        delivery(1, b"b", "2"),
        delivery(2, b"a", "3"),
        delivery(3, b"b", "dup"),  # joins b's chain and a's (by "dup"): they merge
        delivery(4, b"c", "5"),
    ]
    chains = plan_chains(ds)
    assert offsets(chains) == [[(0, 0), (0, 1), (0, 2), (0, 3)], [(0, 4)]]

"""Workloads the proofs publish, and how far a consumer group got through them."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from eventplatform.producer import Outgoing
from tests.integration.proofs.events import Deposit


@dataclass(frozen=True)
class Workload:
    """Deposits to publish, in order, and what an exactly-once consumer must make of them.

    Attributes:
        items: the events, ``seq`` ascending.
        keys: the distinct idempotency keys, in first-seen order.
        duplicates: events that repeat an earlier event's idempotency key (with a new ce_id).
    """

    items: list[Outgoing]
    keys: list[str]
    duplicates: int

    def chunks(self, parts: int) -> list[list[Outgoing]]:
        """``items`` cut into ``parts`` consecutive slices of (nearly) equal size."""
        size = math.ceil(len(self.items) / parts)
        return [self.items[i : i + size] for i in range(0, len(self.items), size)]


def deposits(
    count: int, *, duplicate_ratio: float, rng: random.Random, accounts: int = 256
) -> Workload:
    """``count`` deposits of which ``duplicate_ratio`` repeat an earlier idempotency key.

    A duplicate is what a retrying publisher produces: the same idempotency key with a fresh
    event id. Half of them keep the original's Kafka key (same partition, usually a later
    poll), half take another account's key, so they may land on another partition and reach
    the group in another order, on another member, or in the same poll as their original.
    A third repeat one of the last 50 keys (close by, likely the same poll); the rest any
    earlier key (likely another incarnation of the app).
    """
    positions = set(rng.sample(range(1, count), k=math.ceil(count * duplicate_ratio)))
    originals: list[tuple[str, str]] = []
    items: list[Outgoing] = []
    for seq in range(count):
        if seq in positions:
            pool = originals[-50:] if rng.random() < 1 / 3 else originals
            key, account = rng.choice(pool)
            if rng.random() < 0.5:
                account = f"acct-{rng.randrange(accounts)}"
        else:
            key, account = f"dep-{seq:06d}", f"acct-{rng.randrange(accounts)}"
            originals.append((key, account))
        items.append(Outgoing(Deposit(seq=seq, account=account), key=account, idempotency_key=key))
    return Workload(items, [key for key, _ in originals], len(positions))


class GroupProgress:
    """A consumer group's committed offsets on a topic, against the topic's end offsets.

    An async context manager (it holds a group-less consumer for ``end_offsets``).
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        admin: AIOKafkaAdminClient,
        group: str,
        topic: str,
        partitions: int,
        **options: Any,
    ) -> None:
        self.group = group
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._admin = admin
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False, **options
        )

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._consumer.stop()

    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offset per partition (0 where it committed nothing yet)."""
        offsets = await self._admin.list_consumer_group_offsets(
            self.group, partitions=self.partitions
        )
        return {tp: max(offsets[tp].offset, 0) if tp in offsets else 0 for tp in self.partitions}

    async def lag(self) -> int:
        """Records of the topic the group has not committed past yet."""
        ends = await self._consumer.end_offsets(self.partitions)
        committed = await self.committed()
        return sum(ends[tp] - committed[tp] for tp in self.partitions)


async def read_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    partitions: int,
    isolation_level: str = "read_committed",
    **options: Any,
) -> list[Any]:
    """Every record of ``topic`` up to its end offsets now (the last stable offsets when
    ``read_committed``): no settling delay, no guess of how many to expect. ``options``:
    further consumer settings (a secured cluster's connection options)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **options,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            batch = await consumer.getmany(*left, timeout_ms=500)
            for rs in batch.values():
                records += rs
            # Transaction markers take offsets but are never returned: compare positions.
            for tp in list(left):
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return records

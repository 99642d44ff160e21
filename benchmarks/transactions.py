"""Transactions benchmark: what committing a Kafka transaction every 100 ms costs a producer.

Both sides are ``EventProducer`` with the same settings (``acks=all``, idempotent, linger 5 ms,
64 KiB batches) publishing ``OrderPlaced`` events in ``publish_batch`` calls of :data:`CHUNK`
events, one after another, for :data:`DURATION` seconds per round:

- transactional (KIP-98): ``async with producer.transaction()`` around the calls of each
  100 ms slice, so a transaction commits every :data:`COMMIT_EVERY` seconds;
- non-transactional: the same calls, no transaction.

Reported: events/s of each side and their ratio (transactional / plain).
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from benchmarks.broker import create_topic, kafka, unique
from benchmarks.harness import Comparison, Result, print_results
from benchmarks.workload import SOURCE, orders
from eventplatform.demo.events import OrderPlaced
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.settings import load_settings

__all__ = ["run"]

PARTITIONS = 3
#: Events per ``publish_batch`` call.
CHUNK = 500
#: Seconds between transaction commits.
COMMIT_EVERY = 0.1
#: Seconds each side publishes per round.
DURATION = 2.0


async def publish_for(
    producer: EventProducer, topic: str, events: list[OrderPlaced], *, transactional: bool
) -> tuple[float, int]:
    """Publish ``events`` round and round for :data:`DURATION`; (events/s, transactions)."""
    sent = transactions = 0
    position = 0

    async def publish_chunk() -> None:
        nonlocal sent, position
        chunk = events[position : position + CHUNK]
        position = (position + CHUNK) % len(events)
        await producer.publish_batch([Outgoing(e, key=e.customer_id) for e in chunk], topic=topic)
        sent += len(chunk)

    start = time.perf_counter()
    end = start + DURATION
    while time.perf_counter() < end:
        if transactional:
            async with producer.transaction():
                slice_end = time.perf_counter() + COMMIT_EVERY
                while time.perf_counter() < slice_end:
                    await publish_chunk()
            transactions += 1
        else:
            await publish_chunk()
    return sent / (time.perf_counter() - start), transactions


async def run(servers: str, *, rounds: int = 5) -> list[Comparison]:
    """Alternate the two sides for ``rounds`` rounds; print and return the comparison."""
    topic = await create_topic(servers, unique("transactions"), PARTITIONS)
    settings = load_settings(
        kafka={"bootstrap_servers": servers},
        producer={"source": SOURCE, "linger_ms": 5, "max_batch_size": 1 << 16},
    )
    events = orders(2 * CHUNK)
    plain = Result("EventProducer, acks=all, idempotent, no transaction", unit="events/s", scale=1)
    txn = Result(
        f"EventProducer, a transaction committed every {COMMIT_EVERY * 1000:.0f} ms",
        unit="events/s",
        scale=1,
    )
    counts: list[int] = []
    registry = MemoryRegistry()
    async with (
        registry,
        EventProducer(settings=settings, registry=registry) as producer,
        EventProducer(
            settings=settings, registry=registry, transactional_id=unique("txn")
        ) as transactional,
    ):
        await producer.publish_batch(events[:CHUNK], topic=topic)  # warm up both
        async with transactional.transaction():
            await transactional.publish_batch(events[:CHUNK], topic=topic)
        for _ in range(rounds):
            gc.collect()  # no collector debt carried over from the previous side
            rate, _ = await publish_for(producer, topic, events, transactional=False)
            plain.rounds.append(rate)
            gc.collect()
            rate, committed = await publish_for(transactional, topic, events, transactional=True)
            txn.rounds.append(rate)
            counts.append(committed)

    comparison = Comparison("publish_batch throughput", txn, plain, higher_is_better=True)
    print_results(
        f"transactions: publish_batch of {CHUNK} OrderPlaced, {DURATION:.0f} s per side and "
        f"round, {PARTITIONS} partitions; median of {rounds} rounds",
        [comparison],
        [
            f"{txn.name}: {txn.median:,.0f} events/s "
            f"({sorted(counts)[len(counts) // 2]} commits per {DURATION:.0f} s round)",
            f"{plain.name}: {plain.median:,.0f} events/s",
            f"ratio transactional / plain: {comparison.ratio:.2f}×",
        ],
    )
    return [comparison]


async def _main() -> Any:
    with kafka() as servers:
        return await run(servers)


def main() -> Any:
    """Run the transactions benchmark against a provisioned broker."""
    return asyncio.run(_main())


if __name__ == "__main__":
    main()

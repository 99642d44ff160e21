"""Consume benchmark: read and handle N typed events with a no-op handler.

The topic (3 partitions) is filled once with N ``OrderPlaced`` events by ``EventProducer``
(CloudEvents headers, customer ids as keys). Each side then reads it from the start in a fresh
consumer group, ``max_poll_records=500``, ``read_committed``, and is timed from its first
handler call to its N-th (steady-state throughput; joining the group is not counted).

Ours, ``EventApp`` with each idempotency store, defaults otherwise (SQLite and PostgreSQL run
handlers in the inbox transaction):

- memory store: goal ≥ 0.85×;
- SQLite store (a fresh file per round, WAL, ``synchronous=FULL``; one transaction per
  poll): goal ≥ 0.6×;
- PostgreSQL store (a throwaway server, a fresh table per round), one transaction per poll
  (``consumer.inbox_transactions="poll"``): goal ≥ 0.4×;
- the same with a transaction per event (``"event"``, what ``"auto"`` picks at the default
  ``max_concurrency`` of 16, made for handlers that wait on I/O): shown, no goal.

Reference: raw aiokafka ``getmany`` + fastavro ``schemaless_reader`` + ``model_validate`` per
record, the same no-op handler awaited, no deduplication, offsets committed after each poll.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from benchmarks.broker import create_topic, kafka, postgres, unique
from benchmarks.harness import Comparison, Result, print_results
from benchmarks.workload import SOURCE, RawCodec, orders
from eventplatform.app import Context, EventApp
from eventplatform.demo.events import OrderPlaced
from eventplatform.idempotency import IdempotencyStore, MemoryStore, SqliteStore
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.serde import AvroSerializer
from eventplatform.settings import Settings, load_settings

__all__ = ["run"]

PARTITIONS = 3
MAX_POLL_RECORDS = 500
#: Seconds a side may take to handle every event before the run is declared stuck.
DEADLINE = 120.0


class Stopwatch:
    """Counts handler calls and notes when the first and the last expected one happened."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.done = asyncio.Event()

    def tick(self) -> None:
        """One handler call."""
        now = time.perf_counter()
        self.count += 1
        if self.count == 1:
            self.first = now
        if self.count == self.expected:
            self.last = now
            self.done.set()

    @property
    def per_event(self) -> float:
        """Seconds per event between the first and the last call."""
        return (self.last - self.first) / (self.expected - 1)


async def fill(servers: str, topic: str, registry: MemoryRegistry, count: int) -> None:
    """Write ``count`` events to ``topic`` with EventProducer, in chunks."""
    settings = load_settings(kafka={"bootstrap_servers": servers}, producer={"source": SOURCE})
    async with EventProducer(settings=settings, registry=registry) as producer:
        for start in range(0, count, 5_000):
            chunk = orders(min(5_000, count - start), start=start)
            await producer.publish_batch(
                [Outgoing(e, key=e.customer_id) for e in chunk], topic=topic
            )


async def consume_raw(
    servers: str, topic: str, codec: RawCodec, watch: Stopwatch, group: str
) -> None:
    """The reference: getmany, decode by hand, await the handler, commit per poll."""

    async def handler(event: OrderPlaced) -> None:
        watch.tick()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=MAX_POLL_RECORDS,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(DEADLINE):
            while not watch.done.is_set():
                polled = await consumer.getmany(timeout_ms=200, max_records=MAX_POLL_RECORDS)
                for records in polled.values():
                    for record in records:
                        await handler(codec.decode(record.value))
                if polled:
                    await consumer.commit()
    finally:
        await consumer.stop()


async def consume_app(
    settings: Settings,
    topic: str,
    registry: MemoryRegistry,
    store: IdempotencyStore,
    watch: Stopwatch,
    group: str,
) -> None:
    """Ours: an EventApp with ``store``, stopped once every event was handled."""
    app = EventApp(
        "bench-consume", group_id=group, registry=registry, store=store, settings=settings
    )

    @app.handle(OrderPlaced, topic=topic)
    async def handler(event: OrderPlaced, ctx: Context) -> None:
        watch.tick()

    async with app:
        task = asyncio.create_task(app.run())
        try:
            async with asyncio.timeout(DEADLINE):
                await watch.done.wait()
        finally:
            app.stop()
            await task
    if app.stats.handled < watch.expected:
        raise RuntimeError(f"{app!r} handled {app.stats.handled} of {watch.expected}")


async def run(servers: str, dsn: str, *, rounds: int = 5, count: int = 20_000) -> list[Comparison]:
    """Consume ``count`` events per side per round; print and return the comparisons."""
    topic = await create_topic(servers, unique("consume"), PARTITIONS)
    registry = MemoryRegistry()
    await registry.start()
    try:
        writer = await AvroSerializer(registry).prepare(OrderPlaced, topic)
        codec = RawCodec(writer.schema_id)
        await fill(servers, topic, registry, count)
        settings = load_settings(
            kafka={"bootstrap_servers": servers},
            consumer={"max_poll_records": MAX_POLL_RECORDS},
        )
        with tempfile.TemporaryDirectory(prefix="bench-consume-") as tmp:
            stores: dict[str, Callable[[int], IdempotencyStore]] = {
                "memory": lambda n: MemoryStore(),
                "sqlite": lambda n: SqliteStore(path=Path(tmp) / f"keys-{n}.db"),
                "postgres": lambda n: _postgres_store(dsn, n),
                "postgres-event": lambda n: _postgres_store(dsn, n),
            }
            # The PostgreSQL inbox commits once per poll unless told to run handlers at once,
            # each in a transaction of its own ("event", what "auto" picks at the default
            # max_concurrency of 16): the goal is for the first; the second is shown beside.
            per_poll = settings.model_copy(
                update={
                    "consumer": settings.consumer.model_copy(update={"inbox_transactions": "poll"})
                }
            )
            per_event = settings.model_copy(
                update={
                    "consumer": settings.consumer.model_copy(update={"inbox_transactions": "event"})
                }
            )
            side_settings = {"postgres": per_poll, "postgres-event": per_event}
            labels = {
                "raw": "aiokafka getmany + fastavro + model_validate, commit per poll",
                "memory": "EventApp, memory store",
                "sqlite": "EventApp, SQLite store (inbox)",
                "postgres": "EventApp, PostgreSQL store (inbox, a transaction per poll)",
                "postgres-event": "EventApp, PostgreSQL store (inbox, a transaction per event)",
            }
            results = {name: Result(label, unit="µs/event") for name, label in labels.items()}
            for n in range(rounds):
                for name in labels:
                    watch = Stopwatch(count)
                    group = unique(f"{name}-{n}")
                    gc.collect()  # no collector debt carried over from the previous side
                    if name == "raw":
                        await consume_raw(servers, topic, codec, watch, group)
                    else:
                        store = stores[name](n)
                        await consume_app(
                            side_settings.get(name, settings), topic, registry, store, watch, group
                        )
                    results[name].rounds.append(watch.per_event)
    finally:
        await registry.close()

    raw = results["raw"]
    comparisons = [
        Comparison("consume + no-op handler", results["memory"], raw, goal=0.85),
        Comparison("consume + no-op handler", results["sqlite"], raw, goal=0.6),
        Comparison("consume + no-op handler", results["postgres"], raw, goal=0.4),
        Comparison("consume + no-op handler", results["postgres-event"], raw),
    ]
    notes = [
        f"{r.name}: {1 / r.median:,.0f} events/s ({r.median * 1e6:.1f} µs/event)"
        for r in results.values()
    ]
    print_results(
        f"consume: {count:,} OrderPlaced per round, {PARTITIONS} partitions, "
        f"max_poll_records {MAX_POLL_RECORDS}, fresh group per round; median of {rounds} rounds",
        comparisons,
        notes,
    )
    return comparisons


def _postgres_store(dsn: str, n: int) -> IdempotencyStore:
    from eventplatform.idempotency.postgres import PostgresStore

    return PostgresStore(dsn=dsn, table=f"bench_keys_{n}_{unique('t')[-8:]}")


async def _main() -> Any:
    with kafka() as servers, postgres() as dsn:
        return await run(servers, dsn)


def main() -> Any:
    """Run the consume benchmark against a provisioned broker and PostgreSQL."""
    return asyncio.run(_main())


if __name__ == "__main__":
    main()

"""Latency benchmark: publish → handler, end to end, at a fixed moderate rate.

One process publishes ``OrderPlaced`` events at :data:`RATE` events/s (one every 2 ms, each
send started on schedule without waiting for earlier acks) and consumes them in the same run;
each event's latency is the time from the publish call to its handler call. The first
:data:`WARMUP` seconds of every run are not counted (connections, metadata, first fetches).
Each side gets a fresh 3-partition topic and consumer group, and starts publishing only once
its consumer owns the partitions.

- ours: ``EventProducer.publish`` → ``EventApp`` with the memory store, and with the SQLite
  store (inbox; a store transaction per poll, ``synchronous=FULL``);
- reference: raw aiokafka ``send()`` of hand-encoded events → ``getmany`` + hand decoding,
  with aiokafka's default background auto-commit: the transport's floor. (Awaiting a commit
  after each poll, as the consume benchmark's reference does, adds its round trip to every
  following event's latency; EventApp commits in the background too.)

Reported: p50 and p99 of each side (median over rounds) and their ratios.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener

from benchmarks.broker import create_topic, kafka, unique
from benchmarks.harness import Comparison, Result, print_results
from benchmarks.workload import SOURCE, RawCodec, cloudevents_headers, orders
from eventplatform.app import Context, EventApp
from eventplatform.demo.events import OrderPlaced
from eventplatform.idempotency import IdempotencyStore, MemoryStore, SqliteStore
from eventplatform.producer import EventProducer
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.serde import AvroSerializer
from eventplatform.settings import Settings, load_settings

__all__ = ["run"]

PARTITIONS = 3
#: Events per second.
RATE = 500
#: Seconds measured per run.
DURATION = 10.0
#: Seconds published first and not counted.
WARMUP = 1.0
LINGER_MS = 5


class Probe:
    """Send times by sequence number, and the latencies of the events handled."""

    def __init__(self, total: int, skip: int) -> None:
        self.sent = [0.0] * total
        self.skip = skip
        self.total = total
        self.latencies: list[float] = []
        self.seen = 0
        self.done = asyncio.Event()

    def handled(self, event: OrderPlaced) -> None:
        """Called by the handler: note the event's latency."""
        now = time.perf_counter()
        sequence = int(event.note or "0")
        if sequence >= self.skip:
            self.latencies.append(now - self.sent[sequence])
        self.seen += 1
        if self.seen == self.total:
            self.done.set()

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the counted latencies, in seconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _events(total: int) -> list[OrderPlaced]:
    # The sequence number travels in the note, so both sides find their send time alike.
    return [e.model_copy(update={"note": str(n)}) for n, e in enumerate(orders(total))]


async def pace(
    events: list[OrderPlaced],
    probe: Probe,
    send: Callable[[int, OrderPlaced], Coroutine[Any, Any, None]],
) -> None:
    """Start ``send`` for event n at start + n / RATE; wait for every send to finish."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[Any]] = set()
    start = time.perf_counter()
    for n, event in enumerate(events):
        delay = start + n / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        probe.sent[n] = time.perf_counter()
        task = loop.create_task(send(n, event))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)


async def run_ours(
    settings: Settings,
    servers: str,
    registry: MemoryRegistry,
    store: IdempotencyStore,
    events: list[OrderPlaced],
    probe: Probe,
) -> None:
    """EventProducer.publish → EventApp."""
    topic = await create_topic(servers, unique("latency"), PARTITIONS)
    app = EventApp(
        "bench-latency",
        group_id=unique("latency"),
        registry=registry,
        store=store,
        settings=settings,
    )

    @app.handle(OrderPlaced, topic=topic)
    async def handler(event: OrderPlaced, ctx: Context) -> None:
        probe.handled(event)

    async with EventProducer(settings=settings, registry=registry) as producer, app:
        task = asyncio.create_task(app.run())
        try:
            # Publish once the partitions are ours (the app offers no event for it).
            while app.stats.rebalances == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

            async def send(n: int, event: OrderPlaced) -> None:
                await producer.publish(event, key=event.customer_id, topic=topic)

            await pace(events, probe, send)
            async with asyncio.timeout(30):
                await probe.done.wait()
        finally:
            app.stop()
            await task


async def run_raw(servers: str, codec: RawCodec, events: list[OrderPlaced], probe: Probe) -> None:
    """aiokafka send() → getmany + hand decoding, offsets auto-committed."""
    topic = await create_topic(servers, unique("latency"), PARTITIONS)
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks="all", enable_idempotence=True, linger_ms=LINGER_MS
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        group_id=unique("latency"),
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    assigned = asyncio.Event()

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            return None

        async def on_partitions_assigned(self, partitions: Any) -> None:
            assigned.set()

    consumer.subscribe([topic], listener=Listener())
    await producer.start()
    await consumer.start()

    async def handler(event: OrderPlaced) -> None:
        probe.handled(event)

    async def consume() -> None:
        while not probe.done.is_set():
            polled = await consumer.getmany(timeout_ms=200)
            for records in polled.values():
                for record in records:
                    await handler(codec.decode(record.value))

    async def send(n: int, event: OrderPlaced) -> None:
        future = await producer.send(
            topic,
            codec.encode(event),
            key=event.customer_id.encode(),
            headers=cloudevents_headers(),
        )
        await future

    try:
        consuming = asyncio.create_task(consume())
        await assigned.wait()
        await pace(events, probe, send)
        async with asyncio.timeout(30):
            await consuming
    finally:
        await consumer.stop()
        await producer.stop()


async def run(servers: str, *, rounds: int = 3) -> list[Comparison]:
    """Alternate the sides for ``rounds`` rounds; print and return the comparisons."""
    total = int((DURATION + WARMUP) * RATE)
    skip = int(WARMUP * RATE)
    events = _events(total)
    settings = load_settings(
        kafka={"bootstrap_servers": servers},
        producer={"source": SOURCE, "linger_ms": LINGER_MS},
    )
    sides = {
        "raw": "aiokafka send() → getmany + fastavro, auto-commit",
        "memory": "EventProducer.publish → EventApp, memory store",
        "sqlite": "EventProducer.publish → EventApp, SQLite store (inbox)",
    }
    p50 = {name: Result(label, unit="ms", scale=1e3) for name, label in sides.items()}
    p99 = {name: Result(label, unit="ms", scale=1e3) for name, label in sides.items()}
    async with MemoryRegistry() as registry:
        writer = await AvroSerializer(registry).prepare(OrderPlaced, "latency")
        codec = RawCodec(writer.schema_id)
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
            for n in range(rounds):
                for name in sides:
                    probe = Probe(total, skip)
                    if name == "raw":
                        await run_raw(servers, codec, events, probe)
                    else:
                        store: IdempotencyStore = (
                            MemoryStore()
                            if name == "memory"
                            else SqliteStore(path=Path(tmp) / f"keys-{n}.db")
                        )
                        await run_ours(settings, servers, registry, store, events, probe)
                    p50[name].rounds.append(probe.quantile(0.50))
                    p99[name].rounds.append(probe.quantile(0.99))

    comparisons = [
        Comparison(f"{q}, {name} store", results[name], results["raw"])
        for q, results in (("p50", p50), ("p99", p99))
        for name in ("memory", "sqlite")
    ]
    notes = [
        f"{label}: p50 {p50[name].median * 1e3:.1f} ms, p99 {p99[name].median * 1e3:.1f} ms "
        f"(rounds p99: {', '.join(f'{v * 1e3:.1f}' for v in p99[name].rounds)})"
        for name, label in sides.items()
    ]
    notes.append(
        f"{RATE} events/s for {DURATION:.0f} s after {WARMUP:.0f} s of warm-up; "
        f"{int(DURATION * RATE):,} latencies per side and round; "
        f"median p50 of the raw side over all rounds "
        f"{statistics.median(p50['raw'].rounds) * 1e3:.1f} ms"
    )
    print_results(
        f"latency: publish → handler at {RATE} events/s, {PARTITIONS} partitions, linger "
        f"{LINGER_MS} ms; median of {rounds} rounds",
        comparisons,
        notes,
    )
    return comparisons


async def _main() -> Any:
    with kafka() as servers:
        return await run(servers)


def main() -> Any:
    """Run the latency benchmark against a provisioned broker."""
    return asyncio.run(_main())


if __name__ == "__main__":
    main()

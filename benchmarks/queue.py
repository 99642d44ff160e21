"""Queue benchmark: ``@app.work`` on a Kafka share group.

1. **No-op handler**, one process: ``@app.work`` (memory store, ``concurrency=32``) against the
   raw :class:`~eventplatform.queue.ShareConsumer` it stands on, fetching 32 records at a time
   and accepting each. Both read the same 1-partition topic of N ``OrderPlaced`` events from
   the start in a fresh share group per round, timed from the first handled event to the N-th.
   Ours adds per event: decoding, the idempotency claim (a store batch), the handler's
   timeout (one re-armed timer per worker) and lock renewal bookkeeping. Goal ≥ 0.8×.
2. **Slow handler** (10 ms of ``asyncio.sleep``, ``concurrency=4`` per process): 1, 2 and 4
   ``eventplatform serve`` worker processes on one partition; each k-worker rate against
   k × the single-worker rate (goal ≥ 0.8×). Beside it ``@app.handle`` (one process, same
   handler, ``max_concurrency=4``; a partition has one consumer in a consumer group, so more
   processes would idle). Rates are steady state: events/s between the handler calls that
   ended 10 % and 90 % into the backlog, from the end times the processes write at exit
   (``QUEUE_TIMES``; the monotonic clock is the machine's). The share group's lag
   (DescribeShareGroupOffsets) or the consumer group's committed offset says when 90 % is
   settled and the workers are stopped; the rates it gives are printed too, but not compared:
   the lag moves in steps as the broker advances the start offset, which at one worker (fewer
   events in the same window) put a single process above the 400 events/s that 4 handlers of
   10 ms allow (457/s on 2026-12-06). The workers are assigned before the backlog is published.
   ``BENCH_QUEUE_CONCURRENCY`` and ``BENCH_QUEUE_PER_WORKER`` (events per worker) change it.
   With ``concurrency=2`` every fetch takes 2 records, and the broker acquires for one fetch
   of a share-partition at a time: 4 workers then reach ~0.6× of 4 × one (measured 520/s
   against 4 × 226/s); from 4 on, fetches are big enough (measured 0.89× at 4, 4 workers).
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from benchmarks.broker import create_topic, kafka, unique
from benchmarks.consume import Stopwatch, fill
from benchmarks.harness import Comparison, Result, print_results
from benchmarks.workload import SOURCE, RawCodec, orders
from eventplatform.app import Context, EventApp
from eventplatform.demo.events import OrderPlaced
from eventplatform.idempotency import MemoryStore
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.queue import AcknowledgeType, ShareConsumer
from eventplatform.queue.admin import admin_client, describe_share_group
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.serde import AvroSerializer
from eventplatform.settings import Settings, load_settings

__all__ = ["run"]

BATCH = 32
DEADLINE = 180.0
DELAY = 0.01
WORKER_CONCURRENCY = int(os.environ.get("BENCH_QUEUE_CONCURRENCY", "4"))
PER_WORKER = int(os.environ.get("BENCH_QUEUE_PER_WORKER", "2000"))
ROOT = Path(__file__).resolve().parents[1]
SERVICE = "benchmarks.queue_service:build"


# -- 1. no-op handler, in process ----------------------------------------------------------


async def raw_round(
    settings: Settings, topic: str, watch: Stopwatch, group: str, codec: RawCodec | None
) -> None:
    """The reference: ShareConsumer.fetch(32), decode by hand (unless ``codec`` is None), the
    no-op handler, accept each record."""

    async def handler(event: OrderPlaced | None) -> None:
        watch.tick()

    async with ShareConsumer(group=group, topics=[topic], settings=settings) as consumer:
        async with asyncio.timeout(DEADLINE):
            while not watch.done.is_set():
                for record in await consumer.fetch(BATCH):
                    assert record.value is not None
                    await handler(None if codec is None else codec.decode(record.value))
                    consumer.acknowledge(record, AcknowledgeType.ACCEPT)
        await consumer.flush()


async def app_round(
    settings: Settings, topic: str, registry: MemoryRegistry, watch: Stopwatch, group: str
) -> None:
    """Ours: an EventApp with one ``@app.work`` no-op handler, memory store."""
    app = EventApp("bench-queue", registry=registry, store=MemoryStore(), settings=settings)

    @app.work(OrderPlaced, topic=topic, group=group, concurrency=BATCH)
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


async def noop(servers: str, *, rounds: int, count: int) -> list[Comparison]:
    """Part 1; returns its comparison."""
    topic = await create_topic(servers, unique("queue"), 1)
    settings = load_settings(kafka={"bootstrap_servers": servers})
    registry = MemoryRegistry()
    await registry.start()
    ours = Result(f"@app.work, memory store, concurrency {BATCH}", unit="µs/event")
    raw = Result(
        f"ShareConsumer.fetch({BATCH}) + fastavro + model_validate, accept each",
        unit="µs/event",
    )
    raw_bytes = Result(f"ShareConsumer.fetch({BATCH}) on bytes, accept each", unit="µs/event")
    try:
        writer = await AvroSerializer(registry).prepare(OrderPlaced, topic)
        codec = RawCodec(writer.schema_id)
        await fill(servers, topic, registry, count)
        for n in range(rounds):
            for side, result in (("raw", raw), ("bytes", raw_bytes), ("app", ours)):
                watch = Stopwatch(count)
                group = unique(f"{side}-{n}")
                gc.collect()
                if side == "app":
                    await app_round(settings, topic, registry, watch, group)
                else:
                    await raw_round(settings, topic, watch, group, codec if side == "raw" else None)
                result.rounds.append(watch.per_event)
    finally:
        await registry.close()
    return [
        Comparison("share group + no-op handler", ours, raw, goal=0.8),
        Comparison("share group + no-op handler", ours, raw_bytes),
    ]


# -- 2. slow handler, worker processes -----------------------------------------------------


class Worker:
    """One ``eventplatform serve`` worker process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        args = ["-m", "eventplatform", "serve", SERVICE, "--factory", "--log-level", "WARNING"]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            "--stats-interval",
            "0",
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 90)
        if not line.startswith(b"ready "):
            raise RuntimeError("a benchmark worker did not start")

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _share_progress(client: Any, settings: Settings, group: str, count: int) -> int:
    described = await describe_share_group(
        client, group, settings=settings, servers="", end_offsets=False
    )
    lags = [p.lag for p in described.partitions]
    if not lags or any(lag is None for lag in lags):
        return 0
    return count - sum(lag for lag in lags if lag is not None)


async def _assigned(client: Any, settings: Settings, group: str) -> int:
    try:
        described = await describe_share_group(
            client, group, settings=settings, servers="", end_offsets=False
        )
    except Exception:
        return 0
    return sum(1 for member in described.members if member.assignment)


def handled_rate(times_prefix: str, count: int) -> float:
    """Events/s between the handler calls that ended 10 % and 90 % into ``count``, from the
    end times the worker processes wrote (``QUEUE_TIMES``)."""
    times = sorted(
        float(line)
        for path in Path(times_prefix).parent.glob(Path(times_prefix).name + ".*")
        for line in path.read_text().split()
    )
    low, high = int(count * 0.1), min(int(count * 0.9), len(times) - 1)
    if high <= low:
        raise RuntimeError(f"the workers reported {len(times)} handler calls of {count}")
    return (high - low) / (times[high] - times[low])


async def scale_round(servers: str, *, workers: int, mode: str) -> tuple[float, float]:
    """Events/s of ``workers`` processes between 10 % and 90 % of the backlog: as the
    handlers' end times give it, and as the group's lag / committed offset gave it."""
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        return await _scale_round(servers, workers=workers, mode=mode, times=f"{tmp}/times")


async def _scale_round(servers: str, *, workers: int, mode: str, times: str) -> tuple[float, float]:
    count = PER_WORKER * workers
    topic = await create_topic(servers, unique("queue-scale"), 1)
    group = unique(f"{mode}-{workers}")
    registry_topic = unique("registry")
    settings = load_settings(
        kafka={"bootstrap_servers": servers},
        registry={"topic": registry_topic},
        producer={"source": SOURCE},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")}
    env |= {
        "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": servers,
        "EVENTPLATFORM_REGISTRY__TOPIC": registry_topic,
        "EVENTPLATFORM_CONSUMER__MAX_CONCURRENCY": str(WORKER_CONCURRENCY),
        "EVENTPLATFORM_CONSUMER__MAX_POLL_RECORDS": "20",
        "QUEUE_TOPIC": topic,
        "QUEUE_GROUP": group,
        "QUEUE_MODE": mode,
        "QUEUE_DELAY": str(DELAY),
        "QUEUE_CONCURRENCY": str(WORKER_CONCURRENCY),
        "QUEUE_TIMES": times,
    }
    # Register the schema first, so that the workers' check at start finds the subject.
    async with EventProducer(settings=settings) as producer:
        await producer.publish_batch(
            [Outgoing(e, key=e.customer_id) for e in orders(1)], topic=topic
        )
        count += 1
        procs = [Worker(env) for _ in range(workers)]
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        try:
            for proc in procs:
                await proc.start()
            async with admin_client(settings, servers) as client:
                if mode == "work":
                    deadline = time.monotonic() + 60
                    while await _assigned(client, settings, group) < workers:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{workers} workers never all got the partition")
                        await asyncio.sleep(0.1)
                for start in range(0, count - 1, 2_000):
                    chunk = orders(min(2_000, count - 1 - start), start=start + 1)
                    await producer.publish_batch(
                        [Outgoing(e, key=e.customer_id) for e in chunk], topic=topic
                    )
                marks: dict[int, float] = {}
                low, high = int(count * 0.1), int(count * 0.9)
                deadline = time.monotonic() + DEADLINE
                while high not in marks:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{mode} x{workers} made no progress in time")
                    if mode == "work":
                        done = await _share_progress(client, settings, group, count)
                    else:
                        offsets = await admin.list_consumer_group_offsets(group)
                        found = offsets.get(TopicPartition(topic, 0))
                        done = found.offset if found is not None and found.offset > 0 else 0
                    now = time.monotonic()
                    for mark in (low, high):
                        if done >= mark and mark not in marks:
                            marks[mark] = now
                    await asyncio.sleep(0.05)
        finally:
            await admin.close()
            await asyncio.gather(*(proc.stop() for proc in procs))
    # The processes wrote their handlers' end times when they exited (stop() waits for it).
    return handled_rate(times, count), (high - low) / (marks[high] - marks[low])


async def scaling(servers: str, *, rounds: int) -> tuple[list[Comparison], list[str]]:
    """Part 2; returns its comparisons and notes."""
    rates: dict[str, list[float]] = {"1": [], "2": [], "4": [], "handle": []}
    lagged: dict[str, list[float]] = {name: [] for name in rates}
    for _ in range(rounds):
        sides = (("1", 1, "work"), ("2", 2, "work"), ("4", 4, "work"), ("handle", 1, "handle"))
        for name, workers, mode in sides:
            handled, by_lag = await scale_round(servers, workers=workers, mode=mode)
            rates[name].append(handled)
            lagged[name].append(by_lag)
    single = statistics.median(rates["1"])
    comparisons = []
    notes = []
    for workers in (2, 4):
        ours = Result(
            f"{workers} @app.work processes", rates[str(workers)], unit="events/s", scale=1
        )
        ideal = Result(
            f"{workers} × 1 process ({single:,.0f}/s)",
            [single * workers],
            unit="events/s",
            scale=1,
        )
        comparisons.append(
            Comparison(
                f"10 ms handler, 1 partition, {workers} workers",
                ours,
                ideal,
                goal=0.8,
                higher_is_better=True,
            )
        )
    for name, values in rates.items():
        label = "@app.handle, 1 process" if name == "handle" else f"@app.work × {name}"
        notes.append(
            f"{label}: "
            + ", ".join(f"{v:,.0f}" for v in values)
            + " events/s (by the group's lag/offsets: "
            + ", ".join(f"{v:,.0f}" for v in lagged[name])
            + ")"
        )
    return comparisons, notes


async def run(servers: str, *, rounds: int = 3, count: int = 10_000) -> list[Comparison]:
    """Both parts; print and return the comparisons."""
    comparisons = await noop(servers, rounds=rounds, count=count)
    notes = [
        f"{c.ours.name}: {1 / c.ours.median:,.0f} events/s; {c.reference.name}: "
        f"{1 / c.reference.median:,.0f} events/s"
        for c in comparisons
    ]
    scaled, scale_notes = await scaling(servers, rounds=max(1, rounds - 1))
    print_results(
        f"queue: no-op {count:,} OrderPlaced, 1 partition, median of {rounds} rounds; "
        f"10 ms handler, concurrency {WORKER_CONCURRENCY} per process",
        comparisons + scaled,
        notes + scale_notes,
    )
    return comparisons + scaled


async def _main() -> Any:
    with kafka() as servers:
        return await run(servers)


def main() -> Any:
    """Run the queue benchmark against a provisioned broker."""
    return asyncio.run(_main())


if __name__ == "__main__":
    main()

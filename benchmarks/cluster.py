"""Cluster benchmark: eventplatform on three replicated brokers, plaintext and SASL_SSL.

Starts a :class:`~eventplatform.devkafka.local.LocalCluster` of three KRaft brokers from the
cached Maven jars (as the ``kafka_cluster`` fixture does), runs every part on it, stops it,
then does the same on a second cluster with ``security="sasl_ssl"`` (TLS from a throwaway CA,
SCRAM-SHA-512, the standard authoriser; every client is the super user). Topics have
replication factor 3 and ``min.insync.replicas=2``; producers use ``acks=all`` and
idempotence. Each comparison is taken within one cluster, sides alternating round by round.

1. **Publish**: ``EventProducer.publish_batch`` of N typed ``OrderPlaced`` against raw
   aiokafka ``create_batch``/``send_batch`` + fastavro by hand (the reference of
   ``benchmarks/publish.py``; same records, linger 5 ms, 64 KiB batches, no compression),
   each round until every record is acknowledged. Goal ≥ 1.1×.
2. **Consume**: ``EventApp`` with the SQLite inbox (a fresh file per round) and a no-op
   handler against raw aiokafka ``getmany`` + decode, commit per poll (the reference of
   ``benchmarks/consume.py``), fresh group per round, timed from the first handled event to
   the N-th. Goal ≥ 0.6×.
3. The same two over SASL_SSL; the TLS cost of each side is its secure rate ÷ its plaintext
   rate.
4. **The limit**: Kafka's own ``kafka-producer-perf-test``
   (``org.apache.kafka.tools.ProducerPerformance``, the ``kafka-tools`` jar of the same Kafka
   version, resolved on demand into its own cache folder) on the same cluster, with the same
   acks, idempotence, linger, batch size and partitions, keys over the same 1,000 values and
   records of the same size (our framed Avro value plus the CloudEvents headers' bytes: the
   tool sends no headers). Its steady-state rate (after ``--warmup-records``) against our
   ``publish_batch`` rate: printed as a fraction.
5. **Scaling** (plaintext cluster): 1, 2 and 3 ``eventplatform serve`` processes
   (``benchmarks.cluster_service``: SQLite inbox, a file per process; a handler that awaits
   ``asyncio.sleep(0.002)`` as its I/O) in one consumer group on 6 partitions. Every process
   has joined before the backlog (``PER_WORKER`` × processes events) is published; the rate
   is taken between 10 % and 90 % of it committed (``max_poll_records`` 50, so commits come
   every ~0.1 s). A SQLite inbox runs a poll's handlers in one transaction, one after
   another (``eventplatform/app/inbox.py``), so one process handles at most ~500 events/s
   with this handler (~300 measured on a loaded machine): more processes are how it scales.

``--quick`` (``python -m benchmarks cluster --quick``, or ``BENCH_QUICK=1``) runs every part
with small counts and fewer rounds: a smoke run, its figures meaningless.
``BENCH_CLUSTER_SECURITY=plaintext`` (or ``sasl_ssl``) runs one cluster only.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from benchmarks.broker import unique
from benchmarks.consume import Stopwatch
from benchmarks.harness import Comparison, Result, console, print_results
from benchmarks.workload import SOURCE, RawCodec, cloudevents_headers, event_time, orders
from eventplatform.app import Context, EventApp
from eventplatform.demo.events import OrderPlaced
from eventplatform.devkafka.local import LocalCluster, Security, find_java, resolve_jars
from eventplatform.idempotency import SqliteStore
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.serde import AvroSerializer
from eventplatform.settings import KafkaSettings, Settings, load_settings

__all__ = ["run"]

QUICK = "--quick" in sys.argv or os.environ.get("BENCH_QUICK", "") not in ("", "0")
REPLICAS = 3
MIN_ISR = 2
PARTITIONS = 3
SCALE_PARTITIONS = 6
LINGER_MS = 5
BATCH_BYTES = 1 << 16
MAX_POLL_RECORDS = 500
#: Distinct events, sent round and round (see benchmarks/publish.py).
POOL = 1_000
#: Seconds of I/O the scaled handler waits per event.
DELAY = 0.002
PUBLISH_COUNT = 2_000 if QUICK else 20_000
PUBLISH_ROUNDS = 2 if QUICK else 5
CONSUME_COUNT = 2_000 if QUICK else 20_000
CONSUME_ROUNDS = 1 if QUICK else 3
PERF_ROUNDS = 1 if QUICK else 3
PER_WORKER = 300 if QUICK else 3_000
#: Records per poll of the scaled processes: a commit (the progress the rate is read from)
#: every ~0.1 s, not once per 500 records.
SCALE_POLL_RECORDS = 50
SCALE_ROUNDS = 1 if QUICK else 2
DEADLINE = 180.0
GOAL_PUBLISH = 1.1
GOAL_CONSUME = 0.6
ROOT = Path(__file__).resolve().parents[1]
SERVICE = "benchmarks.cluster_service:build"
_PERF_LINE = re.compile(r"(\d+) steady state records sent, ([\d.]+) records/sec")
_PERF_TOTAL = re.compile(r"(\d+) records sent, ([\d.]+) records/sec")


@dataclass
class Figures:
    """What one cluster measured (seconds per event, or events/s for the perf test)."""

    security: str
    publish_ours: Result
    publish_raw: Result
    consume_ours: Result
    consume_raw: Result
    perf_test: Result
    record_size: int = 0
    publish_cpu: dict[str, list[float]] = field(default_factory=dict)
    consume_cpu: dict[str, list[float]] = field(default_factory=dict)
    consume_polls: dict[str, list[int]] = field(default_factory=dict)
    scaling: dict[int, list[float]] = field(default_factory=dict)


# -- the cluster ---------------------------------------------------------------------------


@contextmanager
def started(security: Security) -> Iterator[LocalCluster]:
    """A running three-broker cluster with ``security``, stopped on exit."""
    dev = load_settings().devkafka
    console.print(f"starting a 3-broker {security} cluster …")
    began = time.monotonic()
    with LocalCluster(
        version=dev.version,
        brokers=3,
        cache_root=dev.cache_dir,
        start_timeout=max(dev.start_timeout, 240.0),
        resolve_timeout=dev.resolve_timeout,
        heap=dev.heap,
        security=security,
    ) as cluster:
        console.print(f"[dim]cluster up in {time.monotonic() - began:.0f} s[/]")
        yield cluster


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka keyword arguments that reach the cluster (TLS and SCRAM when it has them)."""
    return {"bootstrap_servers": kafka.bootstrap_servers, **kafka.connection_options()}


async def create_topic(kafka: KafkaSettings, name: str, partitions: int) -> str:
    """A topic of ``REPLICAS`` replicas, ``min.insync.replicas`` ``MIN_ISR``, leaders known."""
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        config = {"min.insync.replicas": str(MIN_ISR)}
        await admin.create_topics([NewTopic(name, partitions, REPLICAS, topic_configs=config)])
        for _ in range(200):
            described = await admin.describe_topics([name])
            found = described[0].get("partitions") or []
            if len(found) == partitions and all(
                p.get("leader", -1) >= 0 and len(p.get("isr") or []) >= REPLICAS for p in found
            ):
                break
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    return name


# -- 1. publish ----------------------------------------------------------------------------


class Publishers:
    """Ours and the raw aiokafka batch path, started once per cluster."""

    def __init__(self, kafka: KafkaSettings, topic: str, registry: MemoryRegistry) -> None:
        self.kafka = kafka
        self.topic = topic
        self.registry = registry
        self.ours: EventProducer | None = None
        self.raw: AIOKafkaProducer | None = None
        self.codec: RawCodec | None = None
        self.partitioner = DefaultPartitioner()
        self.partitions = list(range(PARTITIONS))

    async def start(self) -> None:
        settings = Settings(
            kafka=self.kafka,
            producer={
                "linger_ms": LINGER_MS,
                "max_batch_size": BATCH_BYTES,
                "compression_type": None,
                "source": SOURCE,
            },
        )
        self.ours = EventProducer(settings=settings, registry=self.registry)
        await self.ours.start()
        writer = await AvroSerializer(self.registry).prepare(OrderPlaced, self.topic)
        self.codec = RawCodec(writer.schema_id)
        self.raw = AIOKafkaProducer(
            **client_options(self.kafka),
            acks="all",
            enable_idempotence=True,
            linger_ms=LINGER_MS,
            max_batch_size=BATCH_BYTES,
            compression_type=None,
        )
        await self.raw.start()

    async def close(self) -> None:
        try:
            if self.raw is not None:
                await self.raw.stop()
        finally:
            if self.ours is not None:
                await self.ours.close()

    async def ours_batch(self, events: list[OrderPlaced]) -> None:
        assert self.ours is not None
        await self.ours.publish_batch(
            [Outgoing(e, key=e.customer_id) for e in events], topic=self.topic
        )

    async def raw_batch(self, events: list[OrderPlaced]) -> None:
        """``benchmarks.publish.Sides.raw_batch``: one aiokafka batch per partition at a time."""
        client, codec, topic = self.raw, self.codec, self.topic
        assert client is not None
        assert codec is not None
        builders: dict[int, Any] = {}
        futures = []
        timestamp = int(time.time() * 1000)
        stamp = event_time()
        for event in events:
            key = event.customer_id.encode()
            value = codec.encode(event)
            headers = cloudevents_headers(stamp)
            partition = int(self.partitioner(key, self.partitions, self.partitions))
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = client.create_batch()
            if builder.append(key=key, value=value, timestamp=timestamp, headers=headers) is None:
                futures.append(await client.send_batch(builder, topic, partition=partition))
                builder = builders[partition] = client.create_batch()
                builder.append(key=key, value=value, timestamp=timestamp, headers=headers)
        for partition, builder in builders.items():
            futures.append(await client.send_batch(builder, topic, partition=partition))
        await asyncio.gather(*futures)

    def record_size(self) -> int:
        """Bytes of one record's value and headers (what the perf test's payload stands for)."""
        assert self.codec is not None
        value = self.codec.encode(orders(1)[0])
        headers = sum(len(k) + len(v) for k, v in cloudevents_headers(event_time()))
        return len(value) + headers


async def publish(kafka: KafkaSettings, registry: MemoryRegistry, figures: Figures) -> int:
    """Part 1; fills ``figures``; returns the bytes of one record (:meth:`record_size`)."""
    topic = await create_topic(kafka, unique("cluster-publish"), PARTITIONS)
    sides = Publishers(kafka, topic, registry)
    await sides.start()
    results = {"ours_batch": figures.publish_ours, "raw_batch": figures.publish_raw}
    try:
        pool = orders(POOL)
        events = [pool[n % POOL] for n in range(PUBLISH_COUNT)]
        for name in results:  # warm-up: connections, metadata, producer ids
            await getattr(sides, name)(events[:2_000])
        for _ in range(PUBLISH_ROUNDS):
            for name, result in results.items():
                gc.collect()
                cpu_start, start = time.process_time(), time.perf_counter()
                await getattr(sides, name)(events)
                result.rounds.append((time.perf_counter() - start) / PUBLISH_COUNT)
                figures.publish_cpu.setdefault(name, []).append(
                    (time.process_time() - cpu_start) / PUBLISH_COUNT
                )
    finally:
        await sides.close()
    return sides.record_size()


# -- 2. consume ----------------------------------------------------------------------------


class CpuStopwatch(Stopwatch):
    """A :class:`~benchmarks.consume.Stopwatch` that also notes the process CPU time (all
    threads: SQLite's too) between the first and the last handler call."""

    def __init__(self, expected: int) -> None:
        super().__init__(expected)
        self.cpu_first = 0.0
        self.cpu_last = 0.0
        #: Polls that returned records (raw), or the app's polls.
        self.polls = 0

    def tick(self) -> None:
        """One handler call."""
        super().tick()
        if self.count == 1:
            self.cpu_first = time.process_time()
        if self.count == self.expected:
            self.cpu_last = time.process_time()

    @property
    def cpu_per_event(self) -> float:
        """Process CPU seconds per event between the first and the last call."""
        return (self.cpu_last - self.cpu_first) / (self.expected - 1)


async def fill(kafka: KafkaSettings, topic: str, registry: MemoryRegistry, count: int) -> None:
    """Write ``count`` events to ``topic`` with EventProducer, in chunks."""
    settings = Settings(kafka=kafka, producer={"source": SOURCE})
    async with EventProducer(settings=settings, registry=registry) as producer:
        for start in range(0, count, 5_000):
            chunk = orders(min(5_000, count - start), start=start)
            await producer.publish_batch(
                [Outgoing(e, key=e.customer_id) for e in chunk], topic=topic
            )


async def consume_raw(
    kafka: KafkaSettings, topic: str, codec: RawCodec, watch: CpuStopwatch, group: str
) -> None:
    """The reference: getmany, decode by hand, await the handler, commit per poll."""

    async def handler(event: OrderPlaced) -> None:
        watch.tick()

    consumer = AIOKafkaConsumer(
        topic,
        **client_options(kafka),
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
                        assert record.value is not None
                        await handler(codec.decode(record.value))
                if polled:
                    watch.polls += 1
                    await consumer.commit()
    finally:
        await consumer.stop()


async def consume_app(
    settings: Settings, topic: str, registry: MemoryRegistry, db: Path, watch: CpuStopwatch
) -> None:
    """Ours: an EventApp with a fresh SQLite inbox, stopped once every event was handled."""
    app = EventApp(
        "bench-cluster-consume",
        group_id=unique("app"),
        registry=registry,
        store=SqliteStore(path=db),
        settings=settings,
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
    watch.polls = app.stats.polls
    if app.stats.handled < watch.expected:
        raise RuntimeError(f"{app!r} handled {app.stats.handled} of {watch.expected}")


async def consume(kafka: KafkaSettings, registry: MemoryRegistry, figures: Figures) -> None:
    """Part 2; fills ``figures``."""
    topic = await create_topic(kafka, unique("cluster-consume"), PARTITIONS)
    writer = await AvroSerializer(registry).prepare(OrderPlaced, topic)
    codec = RawCodec(writer.schema_id)
    await fill(kafka, topic, registry, CONSUME_COUNT)
    settings = Settings(kafka=kafka, consumer={"max_poll_records": MAX_POLL_RECORDS})
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        for n in range(CONSUME_ROUNDS):
            for side in ("raw", "ours"):
                watch = CpuStopwatch(CONSUME_COUNT)
                gc.collect()
                if side == "raw":
                    await consume_raw(kafka, topic, codec, watch, unique(f"raw-{n}"))
                    figures.consume_raw.rounds.append(watch.per_event)
                else:
                    await consume_app(settings, topic, registry, Path(tmp) / f"{n}.db", watch)
                    figures.consume_ours.rounds.append(watch.per_event)
                figures.consume_cpu.setdefault(side, []).append(watch.cpu_per_event)
                figures.consume_polls.setdefault(side, []).append(watch.polls)


# -- 4. kafka-producer-perf-test -----------------------------------------------------------


def perf_command_config(cluster: LocalCluster, folder: Path) -> Path | None:
    """A producer config file (mode 0600) with the admin's SCRAM login and the CA (PEM), or
    None on a plaintext cluster. It holds the password: it lives in ``folder``, removed after.
    """
    kafka = cluster.kafka_settings()
    if kafka.security_protocol == "PLAINTEXT":
        return None
    assert kafka.sasl_password is not None
    password = kafka.sasl_password.get_secret_value()
    lines = [
        f"security.protocol={kafka.security_protocol}",
        f"sasl.mechanism={kafka.sasl_mechanism}",
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{kafka.sasl_username}" password="{password}";',
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={kafka.ssl_cafile}",
    ]
    path = folder / "producer.properties"
    path.touch(mode=0o600)
    path.write_text("\n".join(lines) + "\n")
    return path


def perf_test(
    cluster: LocalCluster, libs: Path, topic: str, record_size: int, config: Path | None
) -> float:
    """One ``ProducerPerformance`` run; its steady-state records/s.

    Raises:
        RuntimeError: the tool failed or printed no rate (its output's tail is quoted).
    """
    java = find_java()
    if java is None:
        raise RuntimeError("no java to run kafka-producer-perf-test")
    warmup = PUBLISH_COUNT
    command = [
        java,
        "-Xmx256m",
        "-cp",
        f"{libs}/*",
        "-Dlog4j2.level=WARN",
        "org.apache.kafka.tools.ProducerPerformance",
        "--bootstrap-server",
        cluster.bootstrap_servers,
        "--topic",
        topic,
        "--num-records",
        str(warmup + 2 * PUBLISH_COUNT),
        "--warmup-records",
        str(warmup),
        "--record-size",
        str(record_size),
        "--key-distribution",
        "random",
        "--record-key-range",
        "1000",
        "--throughput",
        "-1",
        "--reporting-interval",
        "60000",
        "--command-property",
        "acks=all",
        "enable.idempotence=true",
        f"linger.ms={LINGER_MS}",
        f"batch.size={BATCH_BYTES}",
        "compression.type=none",
    ]
    if config is not None:
        command += ["--command-config", str(config)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    match = _PERF_LINE.search(out.stdout)
    if out.returncode != 0 or match is None:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"kafka-producer-perf-test failed (exit {out.returncode}):\n{tail}")
    return float(match.group(2))


async def perf(
    cluster: LocalCluster, kafka: KafkaSettings, record_size: int, figures: Figures
) -> None:
    """Part 4; fills ``figures.perf_test`` (events/s, median of the runs)."""
    dev = load_settings().devkafka
    libs = await asyncio.to_thread(
        resolve_jars,
        dev.version,
        cache_root=dev.cache_dir,
        timeout=dev.resolve_timeout,
        progress=lambda m: console.print(f"[dim]{m}[/]"),
        tools=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        config = perf_command_config(cluster, Path(tmp))
        for _ in range(PERF_ROUNDS):
            topic = await create_topic(kafka, unique("cluster-perf"), PARTITIONS)
            figures.perf_test.rounds.append(
                await asyncio.to_thread(perf_test, cluster, libs, topic, record_size, config)
            )


# -- 5. serve processes --------------------------------------------------------------------


class Worker:
    """One ``eventplatform serve`` process of the scaled app."""

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
        line = await asyncio.wait_for(self.process.stdout.readline(), 120)
        if not line.startswith(b"ready "):
            raise RuntimeError("a benchmark serve process did not start")

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


async def _members(admin: AIOKafkaAdminClient, group: str) -> int:
    described = await admin.describe_consumer_groups([group])
    for response in described:
        for entry in response.groups:  # (error, group, state, …, members[, authorized ops])
            return next((len(part) for part in entry if isinstance(part, list)), 0)
    return 0


async def scale_round(cluster: LocalCluster, workers: int, tmp: Path) -> float:
    """Events/s of ``workers`` serve processes between 10 % and 90 % of the backlog."""
    kafka = cluster.kafka_settings()
    count = PER_WORKER * workers
    topic = await create_topic(kafka, unique("cluster-scale"), SCALE_PARTITIONS)
    group = unique(f"scale-{workers}")
    registry_topic = unique("cluster-registry")
    settings = Settings(
        kafka=kafka, registry={"topic": registry_topic}, producer={"source": SOURCE}
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")}
    base |= cluster.env() | {
        "EVENTPLATFORM_REGISTRY__TOPIC": registry_topic,
        "EVENTPLATFORM_CONSUMER__GROUP_ID": group,
        "EVENTPLATFORM_CONSUMER__MAX_POLL_RECORDS": str(SCALE_POLL_RECORDS),
        "CLUSTER_TOPIC": topic,
        "CLUSTER_DELAY": str(DELAY),
        "PYTHONPATH": str(ROOT),
    }
    async with EventProducer(settings=settings) as producer:
        # Register the schema first, so that the processes' check at start finds the subject.
        await producer.publish_batch(
            [Outgoing(e, key=e.customer_id) for e in orders(1)], topic=topic
        )
        count += 1
        procs = [
            Worker(base | {"EVENTPLATFORM_IDEMPOTENCY__STORE": f"sqlite:///{tmp / group}-{n}.db"})
            for n in range(workers)
        ]
        admin = AIOKafkaAdminClient(**client_options(kafka))
        await admin.start()
        try:
            for proc in procs:
                await proc.start()
            deadline = time.monotonic() + 90
            while await _members(admin, group) < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{workers} serve processes never all joined {group}")
                await asyncio.sleep(0.1)
            for start in range(0, count - 1, 2_000):
                chunk = orders(min(2_000, count - 1 - start), start=start + 1)
                await producer.publish_batch(
                    [Outgoing(e, key=e.customer_id) for e in chunk], topic=topic
                )
            marks: dict[int, float] = {}
            low, high = int(count * 0.1), int(count * 0.9)
            deadline = time.monotonic() + DEADLINE
            partitions = [TopicPartition(topic, p) for p in range(SCALE_PARTITIONS)]
            while high not in marks:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{workers} serve processes made no progress in time")
                offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
                done = sum(max(0, meta.offset) for meta in offsets.values())
                now = time.monotonic()
                for mark in (low, high):
                    if done >= mark and mark not in marks:
                        marks[mark] = now
                await asyncio.sleep(0.05)
        finally:
            await admin.close()
            await asyncio.gather(*(proc.stop() for proc in procs))
    return (high - low) / (marks[high] - marks[low])


async def scaling(cluster: LocalCluster, figures: Figures) -> None:
    """Part 5; fills ``figures.scaling`` (events/s per round, by process count)."""
    with tempfile.TemporaryDirectory(prefix="bench-cluster-scale-") as tmp:
        for _ in range(SCALE_ROUNDS):
            for workers in (1, 2, 3):
                rate = await scale_round(cluster, workers, Path(tmp))
                figures.scaling.setdefault(workers, []).append(rate)


# -- a cluster's run, and the report -------------------------------------------------------


async def on_cluster(cluster: LocalCluster, *, scale: bool) -> Figures:
    """Every part on ``cluster``."""
    kafka = cluster.kafka_settings()
    security = cluster.security
    figures = Figures(
        security=security,
        publish_ours=Result(f"EventProducer.publish_batch ({security})", unit="µs/event"),
        publish_raw=Result(
            f"aiokafka create_batch/send_batch + fastavro ({security})", unit="µs/event"
        ),
        consume_ours=Result(f"EventApp, SQLite inbox ({security})", unit="µs/event"),
        consume_raw=Result(
            f"aiokafka getmany + fastavro + model_validate, commit per poll ({security})",
            unit="µs/event",
        ),
        perf_test=Result(f"kafka-producer-perf-test ({security})", unit="events/s", scale=1),
    )
    registry = MemoryRegistry()
    await registry.start()
    try:
        figures.record_size = await publish(kafka, registry, figures)
        await consume(kafka, registry, figures)
        await perf(cluster, kafka, figures.record_size, figures)
        if scale:
            await scaling(cluster, figures)
    finally:
        await registry.close()
    report([figures])
    return figures


def _rate(result: Result) -> Result:
    """``result`` (seconds per event) as events/s, round by round."""
    return Result(result.name, [1 / r for r in result.rounds], unit="events/s", scale=1)


def report(all_figures: list[Figures]) -> list[Comparison]:
    """Print the tables of every cluster measured; return the comparisons."""
    comparisons: list[Comparison] = []
    notes: list[str] = []
    for f in all_figures:
        comparisons += [
            Comparison(
                "publish_batch, RF 3, acks=all", f.publish_ours, f.publish_raw, GOAL_PUBLISH
            ),
            Comparison("consume, no-op handler", f.consume_ours, f.consume_raw, GOAL_CONSUME),
            Comparison(
                "publish_batch: fraction of Kafka's own producer",
                _rate(f.publish_ours),
                f.perf_test,
                higher_is_better=True,
            ),
        ]
        cpu = {k: statistics.median(v) * 1e6 for k, v in f.publish_cpu.items()}
        notes.append(
            f"{f.security}: publish_batch {1 / f.publish_ours.median:,.0f} events/s "
            f"({cpu.get('ours_batch', 0):.1f} µs CPU/event; rounds "
            f"{', '.join(f'{1 / r:,.0f}' for r in f.publish_ours.rounds)}), raw batch path "
            f"{1 / f.publish_raw.median:,.0f} events/s ({cpu.get('raw_batch', 0):.1f} µs "
            f"CPU/event; rounds {', '.join(f'{1 / r:,.0f}' for r in f.publish_raw.rounds)}); "
            f"perf test ({f.record_size} B records) {f.perf_test.median:,.0f} events/s "
            f"(runs: {', '.join(f'{r:,.0f}' for r in f.perf_test.rounds)})"
        )
        ccpu = {k: statistics.median(v) * 1e6 for k, v in f.consume_cpu.items()}
        notes.append(
            f"{f.security}: consume ours {1 / f.consume_ours.median:,.0f} events/s "
            f"({ccpu.get('ours', 0):.1f} µs CPU/event; rounds "
            f"{', '.join(f'{1 / r:,.0f}' for r in f.consume_ours.rounds)}), raw "
            f"{1 / f.consume_raw.median:,.0f} events/s ({ccpu.get('raw', 0):.1f} µs CPU/event; "
            f"rounds {', '.join(f'{1 / r:,.0f}' for r in f.consume_raw.rounds)}); polls per "
            f"round: ours {f.consume_polls.get('ours')}, raw {f.consume_polls.get('raw')}"
        )
        if f.scaling:
            one = statistics.median(f.scaling[1])
            rates = ", ".join(
                f"{n} × serve {statistics.median(v):,.0f}/s ({statistics.median(v) / one:.2f}×; "
                f"rounds {', '.join(f'{r:,.0f}' for r in v)})"
                for n, v in sorted(f.scaling.items())
            )
            notes.append(
                f"{f.security}: {SCALE_PARTITIONS} partitions, {DELAY * 1e3:.0f} ms "
                f"handler, SQLite inbox: {rates}"
            )
    by_security = {f.security: f for f in all_figures}
    plain, secure = by_security.get("plaintext"), by_security.get("sasl_ssl")
    if plain is not None and secure is not None:
        for label, ours_p, ours_s, raw_p, raw_s in (
            (
                "publish_batch",
                plain.publish_ours,
                secure.publish_ours,
                plain.publish_raw,
                secure.publish_raw,
            ),
            (
                "consume",
                plain.consume_ours,
                secure.consume_ours,
                plain.consume_raw,
                secure.consume_raw,
            ),
        ):
            notes.append(
                f"TLS cost, {label}: ours keeps {ours_p.median / ours_s.median:.2f}× of its "
                f"plaintext rate over SASL_SSL, raw {raw_p.median / raw_s.median:.2f}×"
            )
        notes.append(
            f"TLS cost, kafka-producer-perf-test: "
            f"{secure.perf_test.median / plain.perf_test.median:.2f}× of its plaintext rate"
        )
    counts = f"{PUBLISH_COUNT:,} published × {PUBLISH_ROUNDS}, {CONSUME_COUNT:,} consumed × "
    counts += f"{CONSUME_ROUNDS}, perf test × {PERF_ROUNDS}"
    print_results(
        f"cluster: 3 brokers, RF {REPLICAS}, min ISR {MIN_ISR}, {PARTITIONS} partitions; "
        f"{counts}; medians{' (--quick: not figures)' if QUICK else ''}",
        comparisons,
        notes,
    )
    return comparisons


def securities() -> list[Security]:
    """The clusters to measure on: both, or ``$BENCH_CLUSTER_SECURITY``'s one."""
    chosen = os.environ.get("BENCH_CLUSTER_SECURITY", "").strip()
    if chosen in ("plaintext", "sasl_ssl"):
        return [chosen]  # type: ignore[list-item]
    if chosen:
        raise SystemExit(f"BENCH_CLUSTER_SECURITY={chosen!r}: choose plaintext or sasl_ssl")
    return ["plaintext", "sasl_ssl"]


def run() -> list[Comparison]:
    """Measure on each cluster in turn; print and return the comparisons."""
    all_figures = []
    for security in securities():
        with started(security) as cluster:
            all_figures.append(asyncio.run(on_cluster(cluster, scale=security == "plaintext")))
    if len(all_figures) > 1:
        console.rule("both clusters")
    return report(all_figures)


def main() -> Any:
    """Run the cluster benchmark (it starts its own clusters; Java and Maven needed)."""
    return run()


if __name__ == "__main__":
    main()

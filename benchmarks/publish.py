"""Publish benchmark: N typed ``OrderPlaced`` events into a real broker, until all are acked.

Every side sends the same records (see :mod:`benchmarks.workload`) to the same 3-partition
topic with the same producer configuration: ``acks=all``, idempotence on, ``linger_ms=5``,
64 KiB batches, no compression. A round ends when the broker acknowledged every record.

Ours:

- ``EventProducer.publish_batch``: serializes up front, fills one aiokafka ``BatchBuilder``
  per partition, awaits all acks once;
- ``EventProducer.publish`` per event, awaited concurrently with ``asyncio.gather`` in chunks
  of :data:`CHUNK` (each call returns once its record is durable; concurrent calls are
  coalesced into the batch path by the producer, issue 12).

References:

- raw aiokafka ``create_batch``/``send_batch`` with fastavro by hand (the same API as ours):
  goal ≥ 0.9×;
- raw aiokafka ``send()`` per message, its futures gathered per chunk (the per-message path;
  issue 4 puts its client CPU at ~14 µs);
- raw aiokafka ``send_and_wait()`` gathered per chunk (a call that returns once its record is
  durable, as ``publish()`` does): goal ≥ 1.5× for ``publish()``;
- confluent-kafka ``Producer`` + its ``AvroSerializer`` (``mock://`` registry): goal ≥ 1.3×
  for the batch path and ≥ 1.0× for ``publish()``; librdkafka does its batching in C
  threads, so its figure is wall time of a Python program that calls ``produce()`` per event
  and ``flush()`` at the end;
- FastStream's ``KafkaBroker.publish_batch`` (one call per partition chunk, no per-event
  headers: its batches take one header set) and ``KafkaBroker.publish`` gathered per chunk.

Figures are wall time per event (median of the rounds, sides interleaved); the notes add the
process CPU per event, librdkafka's threads included. Each side starts after a
``gc.collect()``, so that no side pays for a full collection the previous one made due, and
the events are :data:`POOL` distinct ones sent round and round, so that the fixture does not
swell the heap every full collection walks.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Producer as ConfluentProducer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer as ConfluentSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from faststream.kafka import KafkaBroker

from benchmarks.broker import create_topic, kafka, unique
from benchmarks.harness import Comparison, Result, print_results
from benchmarks.workload import RawCodec, cloudevents_headers, event_time, orders
from eventplatform.demo.events import OrderPlaced
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.serde import AvroSerializer
from eventplatform.settings import load_settings

__all__ = ["run"]

PARTITIONS = 3
#: Events per ``gather`` of the per-event paths.
CHUNK = 1_000
#: Distinct events, sent round and round.
POOL = 1_000
LINGER_MS = 5
BATCH_BYTES = 1 << 16

Run = Callable[[list[OrderPlaced]], Awaitable[None]]
ConfluentHeaders = list[tuple[str, str | bytes | None]]


class Sides:
    """The clients of one benchmark run, started once, each able to publish a list of events."""

    def __init__(self, servers: str, topic: str) -> None:
        self.servers = servers
        self.topic = topic
        self.registry = MemoryRegistry()
        self.ours: EventProducer | None = None
        self.raw: AIOKafkaProducer | None = None
        self.faststream: KafkaBroker | None = None
        self.codec: RawCodec | None = None
        self.partitioner = DefaultPartitioner()
        self.partitions: list[int] = list(range(PARTITIONS))
        self.confluent = ConfluentProducer(
            {
                "bootstrap.servers": servers,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": LINGER_MS,
                "batch.size": BATCH_BYTES,
                "compression.type": "none",
            }
        )
        registry = SchemaRegistryClient.new_client({"url": "mock://bench-publish"})
        self.confluent_serializer = ConfluentSerializer(
            registry, OrderPlaced.avro_schema_json(), to_dict=lambda e, ctx: e.model_dump()
        )
        self.confluent_context = SerializationContext(topic, MessageField.VALUE)
        self.fs_chunk = 0

    async def start(self) -> None:
        await self.registry.start()
        settings = load_settings(
            kafka={"bootstrap_servers": self.servers},
            producer={
                "linger_ms": LINGER_MS,
                "max_batch_size": BATCH_BYTES,
                "compression_type": None,
                "source": "/benchmarks",
            },
        )
        self.ours = EventProducer(settings=settings, registry=self.registry)
        await self.ours.start()
        # The schema id ours registers frames the raw references' values too.
        writer = await AvroSerializer(self.registry).prepare(OrderPlaced, self.topic)
        self.codec = RawCodec(writer.schema_id)
        options: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": LINGER_MS,
            "max_batch_size": BATCH_BYTES,
            "compression_type": None,
        }
        self.raw = AIOKafkaProducer(**options)
        await self.raw.start()
        self.faststream = KafkaBroker(
            self.servers, **{k: v for k, v in options.items() if k != "bootstrap_servers"}
        )
        await self.faststream.connect()
        self.fs_chunk = self._faststream_chunk()

    async def close(self) -> None:
        try:
            if self.faststream is not None:
                await self.faststream.stop()
            if self.raw is not None:
                await self.raw.stop()
            if self.ours is not None:
                await self.ours.close()
        finally:
            await self.registry.close()
            self.confluent.flush(30)

    def _faststream_chunk(self) -> int:
        # FastStream raises when a batch overflows; find how many records fit, with margin.
        assert self.raw is not None
        assert self.codec is not None
        builder = self.raw.create_batch()
        value = self.codec.encode(orders(1)[0])
        headers = [(k, v) for k, v in cloudevents_headers() if k != "ce_id"]
        count = 0
        while builder.append(key=b"customer-000000", value=value, timestamp=None, headers=headers):
            count += 1
        return max(1, int(count * 0.9))

    def _partition(self, key: bytes) -> int:
        return int(self.partitioner(key, self.partitions, self.partitions))

    # -- ours ------------------------------------------------------------------------------

    async def ours_batch(self, events: list[OrderPlaced]) -> None:
        assert self.ours is not None
        await self.ours.publish_batch(
            [Outgoing(e, key=e.customer_id) for e in events], topic=self.topic
        )

    async def ours_publish(self, events: list[OrderPlaced]) -> None:
        assert self.ours is not None
        publish, topic = self.ours.publish, self.topic
        for start in range(0, len(events), CHUNK):
            chunk = events[start : start + CHUNK]
            await asyncio.gather(*(publish(e, key=e.customer_id, topic=topic) for e in chunk))

    # -- raw aiokafka ----------------------------------------------------------------------

    async def raw_batch(self, events: list[OrderPlaced]) -> None:
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
            partition = self._partition(key)
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

    async def raw_send(self, events: list[OrderPlaced]) -> None:
        client, codec, topic = self.raw, self.codec, self.topic
        assert client is not None
        assert codec is not None
        for start in range(0, len(events), CHUNK):
            futures = [
                await client.send(
                    topic,
                    codec.encode(e),
                    key=e.customer_id.encode(),
                    headers=cloudevents_headers(),
                )
                for e in events[start : start + CHUNK]
            ]
            await asyncio.gather(*futures)

    async def raw_send_and_wait(self, events: list[OrderPlaced]) -> None:
        client, codec, topic = self.raw, self.codec, self.topic
        assert client is not None
        assert codec is not None
        send = client.send_and_wait
        for start in range(0, len(events), CHUNK):
            await asyncio.gather(
                *(
                    send(
                        topic,
                        codec.encode(e),
                        key=e.customer_id.encode(),
                        headers=cloudevents_headers(),
                    )
                    for e in events[start : start + CHUNK]
                )
            )

    # -- confluent-kafka -------------------------------------------------------------------

    async def confluent_produce(self, events: list[OrderPlaced]) -> None:
        producer, serialize, context = (
            self.confluent,
            self.confluent_serializer,
            self.confluent_context,
        )
        failures: list[Any] = []
        stamp = event_time()

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(err)

        for event in events:
            value = serialize(event, context)
            while True:
                try:
                    producer.produce(
                        self.topic,
                        value=value,
                        key=event.customer_id,
                        headers=cast(ConfluentHeaders, cloudevents_headers(stamp)),
                        on_delivery=delivered,
                    )
                    break
                except BufferError:  # the local queue is full: serve callbacks, then retry
                    producer.poll(0.01)
            producer.poll(0)
        remaining = producer.flush(60)
        if remaining or failures:
            raise RuntimeError(f"confluent-kafka: {remaining} undelivered, errors {failures[:3]}")

    # -- FastStream ------------------------------------------------------------------------

    async def faststream_batch(self, events: list[OrderPlaced]) -> None:
        broker, codec, topic = self.faststream, self.codec, self.topic
        assert broker is not None
        assert codec is not None
        by_partition: dict[int, list[bytes]] = {}
        for event in events:
            partition = self._partition(event.customer_id.encode())
            by_partition.setdefault(partition, []).append(codec.encode(event))
        headers = {k: v.decode() for k, v in cloudevents_headers() if k not in ("ce_id", "ce_time")}
        futures = []
        for partition, values in by_partition.items():
            for start in range(0, len(values), self.fs_chunk):
                futures.append(
                    await broker.publish_batch(
                        *values[start : start + self.fs_chunk],
                        topic=topic,
                        partition=partition,
                        headers=headers,
                        no_confirm=True,
                    )
                )
        await asyncio.gather(*futures)

    async def faststream_publish(self, events: list[OrderPlaced]) -> None:
        broker, codec, topic = self.faststream, self.codec, self.topic
        assert broker is not None
        assert codec is not None
        for start in range(0, len(events), CHUNK):
            await asyncio.gather(
                *(
                    broker.publish(
                        codec.encode(e),
                        topic=topic,
                        key=e.customer_id.encode(),
                        headers={k: v.decode() for k, v in cloudevents_headers()},
                    )
                    for e in events[start : start + CHUNK]
                )
            )


async def run(servers: str, *, rounds: int = 7, count: int = 20_000) -> list[Comparison]:
    """Publish ``count`` events per side per round; print and return the comparisons."""
    topic = await create_topic(servers, unique("publish"), PARTITIONS)
    sides = Sides(servers, topic)
    await sides.start()
    names = {
        "ours_batch": "EventProducer.publish_batch",
        "ours_publish": f"EventProducer.publish, gathered by {CHUNK:,}",
        "raw_batch": "aiokafka create_batch/send_batch + fastavro",
        "raw_send": f"aiokafka send() + fastavro, futures gathered by {CHUNK:,}",
        "raw_send_and_wait": f"aiokafka send_and_wait() + fastavro, gathered by {CHUNK:,}",
        "confluent_produce": "confluent-kafka Producer + AvroSerializer (mock://)",
        "faststream_batch": "FastStream KafkaBroker.publish_batch (bytes)",
        "faststream_publish": f"FastStream KafkaBroker.publish (bytes), gathered by {CHUNK:,}",
    }
    results = {name: Result(label, unit="µs/event") for name, label in names.items()}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    try:
        # POOL distinct events, sent over and over: a fixture of `count` ready events would
        # add ~11 tracked objects each to the heap that every full garbage collection walks.
        pool = orders(POOL)
        events = [pool[n % POOL] for n in range(count)]
        for name in names:
            await getattr(sides, name)(events[:2_000])
        for _ in range(rounds):
            for name in names:
                publish: Run = getattr(sides, name)
                # Start each side with no collector debt: a full collection that the previous
                # side's garbage made due would otherwise be paid by this one.
                gc.collect()
                cpu_start, start = time.process_time(), time.perf_counter()
                await publish(events)
                elapsed = time.perf_counter() - start
                results[name].rounds.append(elapsed / count)
                cpu[name].append((time.process_time() - cpu_start) / count)
    finally:
        await sides.close()

    r = results
    comparisons = [
        Comparison("publish_batch", r["ours_batch"], r["raw_batch"], goal=0.9),
        Comparison("publish_batch", r["ours_batch"], r["raw_send"]),
        Comparison("publish_batch", r["ours_batch"], r["confluent_produce"], goal=1.3),
        Comparison("publish_batch", r["ours_batch"], r["faststream_batch"]),
        Comparison("publish() gathered", r["ours_publish"], r["raw_send_and_wait"], goal=1.5),
        Comparison("publish() gathered", r["ours_publish"], r["raw_send"]),
        Comparison("publish() gathered", r["ours_publish"], r["confluent_produce"], goal=1.0),
        Comparison("publish() gathered", r["ours_publish"], r["faststream_publish"]),
    ]
    notes = [
        f"{results[n].name}: {1 / results[n].median:,.0f} events/s, "
        f"{results[n].median * 1e6:.1f} µs/event wall, "
        f"{sorted(cpu[n])[len(cpu[n]) // 2] * 1e6:.1f} µs/event process CPU"
        for n in names
    ]
    print_results(
        f"publish: {count:,} OrderPlaced per round, {PARTITIONS} partitions, acks=all, "
        f"idempotent, linger {LINGER_MS} ms; median of {rounds} rounds",
        comparisons,
        notes,
    )
    return comparisons


async def _main() -> list[Comparison]:
    with kafka() as servers:
        return await run(servers)


def main() -> Any:
    """Run the publish benchmark against a provisioned broker."""
    return asyncio.run(_main())


if __name__ == "__main__":
    main()

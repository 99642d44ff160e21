"""Telemetry benchmark: ``publish`` and ``consume`` with OpenTelemetry traces and metrics on
against the same paths with them off, in the same run (issue 15: goal ≥ 0.9× on both).

"On" is the SDK as a deployment configures it, minus the network: a ``TracerProvider`` with a
``BatchSpanProcessor`` into an exporter that drops every batch, and a ``MeterProvider`` whose
reader is never collected (the instruments still aggregate every measurement). Every span
and instrument of :mod:`eventplatform.observability.otel` is then recorded: a ``send`` span per
``publish()`` call, one per ``publish_batch`` call, a ``receive`` span per poll, a ``process``
span per handler call, and the four messaging metrics.

A third side, "sampled", is "on" with a ``ParentBased(TraceIdRatioBased(0.01))`` sampler: a
deployment's usual answer to span cost at high rates (metrics stay complete).

The floor: what the SDK alone takes per event for what the conventions ask per event, timed
in the same rounds on the "on" providers -- per ``publish()`` call one PRODUCER span with the
``send`` span's attributes (ended with partition and offset); per handler call one CONSUMER
span with the ``process`` span's attributes and one ``messaging.process.duration`` record.
"off + floor" is the best "on" could be if eventplatform's own hooks cost nothing, so its
ratio to "off" is the ceiling of "on vs off"; "on vs floor" says how close the hooks come.
A bare span (no attributes, no parent) is printed too.

Sides alternate round by round (off, on, sampled, off…), each after a ``gc.collect()``:

- ``publish_batch`` of 20,000 events and ``publish()`` gathered by 1,000, on the producer of
  :mod:`benchmarks.publish`;
- an EventApp with the memory store and a no-op handler over 20,000 events, as in
  :mod:`benchmarks.consume` (fresh group per round; time from its first handler call to its
  last).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from benchmarks.broker import create_topic, kafka, unique
from benchmarks.consume import Stopwatch, consume_app, fill
from benchmarks.harness import Comparison, Result, print_results
from benchmarks.publish import PARTITIONS, POOL, Sides
from benchmarks.workload import orders
from eventplatform.idempotency import MemoryStore
from eventplatform.observability import events
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.settings import load_settings

__all__ = ["run"]

#: The share of root traces the "sampled" side records (its metrics are all recorded).
SAMPLED = 0.01
#: The span processor's queue: large enough that no span is dropped (the default 2,048
#: overflows in a burst of 1,000 concurrent publishes, and a dropped span is a cheaper one).
QUEUE = 1 << 17
#: Floor spans between two returns to the event loop (a poll's worth, as in the consume side).
STRIDE = 500


class DroppingExporter(SpanExporter):
    """Takes every batch of spans and drops it (the "no-op exporter")."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Switch:
    """OpenTelemetry on or off for a side, with providers made once for the run."""

    def __init__(self, servers: str, sampler: Sampler | None = None) -> None:
        self.servers = servers
        self.tracer_provider = TracerProvider(sampler=sampler)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(DroppingExporter(), max_queue_size=QUEUE)
        )
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def on(self) -> None:
        events.instrument(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            bootstrap_servers=self.servers,
        )

    def close(self) -> None:
        events.instrument(False)
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


class Floor:
    """The SDK's own per-event cost for the spans and records the conventions ask per event."""

    def __init__(self, switch: Switch, servers: str, topic: str) -> None:
        self.tracer = switch.tracer_provider.get_tracer("benchmarks.floor")
        meter = switch.meter_provider.get_meter("benchmarks.floor")
        self.histogram = meter.create_histogram("benchmarks.floor.process.duration", unit="s")
        host, _, port = servers.split(",", maxsplit=1)[0].rpartition(":")
        base = {
            "messaging.system.name": "kafka",
            "server.address": host,
            "server.port": int(port),
            "messaging.destination.name": topic,
        }
        self.send = {
            **base,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
        }
        self.metric = {
            **base,
            "messaging.operation.name": "process",
            "messaging.consumer.group.name": "bench-group",
            "messaging.destination.partition.id": "1",
        }
        self.process = {**self.metric, "messaging.operation.type": "process"}
        self.name = topic

    async def publish(self, count: int) -> float:
        """Seconds per event: a ``send`` span per call."""
        start_span, name, base = self.tracer.start_span, f"send {self.name}", self.send
        gc.collect()
        start = time.perf_counter()
        for n in range(count):
            if n % STRIDE == 0:  # let the span processor's thread drain, as between polls
                await asyncio.sleep(0)
            attributes = {**base, "messaging.message.id": f"id-{n}", "kafka.message.key": "k"}
            span = start_span(name, None, SpanKind.PRODUCER, attributes, record_exception=False)
            span.set_attributes({"messaging.destination.partition.id": "1", "kafka.offset": n})
            span.end()
        return (time.perf_counter() - start) / count

    async def consume(self, count: int) -> float:
        """Seconds per event: a ``process`` span and a process-duration record per call."""
        start_span, name, base = self.tracer.start_span, f"process {self.name}", self.process
        record, metric = self.histogram.record, self.metric
        gc.collect()
        start = time.perf_counter()
        for n in range(count):
            if n % STRIDE == 0:
                await asyncio.sleep(0)
            attributes = {**base, "messaging.message.id": f"id-{n}", "kafka.offset": n}
            start_span(name, None, SpanKind.CONSUMER, attributes, record_exception=False).end()
            record(0.0001, metric)
        return (time.perf_counter() - start) / count

    def bare(self, count: int) -> float:
        """Seconds per span of a span without attributes."""
        start_span = self.tracer.start_span
        gc.collect()
        start = time.perf_counter()
        for _ in range(count):
            start_span("bare").end()
        return (time.perf_counter() - start) / count


async def run(servers: str, *, rounds: int = 5, count: int = 20_000) -> list[Comparison]:
    """Publish and consume ``count`` events per side per round; print and return the ratios."""
    switches = {
        "off": None,
        "on": Switch(servers),
        "sampled": Switch(servers, ParentBased(TraceIdRatioBased(SAMPLED))),
    }
    results = {
        (what, side): Result(f"{what}, telemetry {side}", unit="µs/event")
        for what in ("publish_batch", "publish", "consume")
        for side in switches
    }
    floors = {
        what: Result(f"{what}, telemetry off + the SDK's floor", unit="µs/event")
        for what in ("publish", "consume")
    }
    bare = Result("a bare SDK span (start + end)", unit="µs/span")

    def switch(side: str) -> None:
        chosen = switches[side]
        if chosen is None:
            events.instrument(False)
        else:
            chosen.on()

    publish_topic = await create_topic(servers, unique("telemetry-publish"), PARTITIONS)
    consume_topic = await create_topic(servers, unique("telemetry-consume"), PARTITIONS)
    sides = Sides(servers, publish_topic)
    await sides.start()
    registry = MemoryRegistry()
    await registry.start()
    try:
        pool = orders(POOL)
        events_ = [pool[n % POOL] for n in range(count)]
        for side in switches:  # warm every path up
            switch(side)
            await sides.ours_batch(events_[:2_000])
            await sides.ours_publish(events_[:2_000])
        switch("off")
        await fill(servers, consume_topic, registry, count)
        settings = load_settings(
            kafka={"bootstrap_servers": servers}, consumer={"max_poll_records": 500}
        )
        on = switches["on"]
        assert on is not None
        floor = Floor(on, servers, consume_topic)
        for n in range(rounds):
            for side in switches:
                for what, publish in (
                    ("publish_batch", sides.ours_batch),
                    ("publish", sides.ours_publish),
                ):
                    switch(side)
                    gc.collect()
                    start = time.perf_counter()
                    await publish(events_)
                    results[(what, side)].rounds.append((time.perf_counter() - start) / count)
                switch(side)
                watch = Stopwatch(count)
                gc.collect()
                await consume_app(
                    settings,
                    consume_topic,
                    registry,
                    MemoryStore(),
                    watch,
                    unique(f"telemetry-{side}-{n}"),
                )
                results[("consume", side)].rounds.append(watch.per_event)
            switch("off")
            floors["publish"].rounds.append(
                results[("publish", "off")].rounds[-1] + await floor.publish(count)
            )
            floors["consume"].rounds.append(
                results[("consume", "off")].rounds[-1] + await floor.consume(count)
            )
            bare.rounds.append(floor.bare(count))
        switch("off")
    finally:
        for chosen in switches.values():
            if chosen is not None:
                chosen.close()
        await sides.close()
        await registry.close()

    comparisons = [
        Comparison(
            f"{what}: {side} vs off",
            results[(what, side)],
            results[(what, "off")],
            goal=0.9 if side == "on" else None,
        )
        for what in ("publish_batch", "publish", "consume")
        for side in ("on", "sampled")
    ]
    for what in ("publish", "consume"):
        comparisons.append(
            Comparison(
                f"{what}: off + SDK floor vs off (the ceiling of on vs off)",
                floors[what],
                results[(what, "off")],
            )
        )
        comparisons.append(
            Comparison(f"{what}: on vs off + SDK floor", results[(what, "on")], floors[what])
        )
    load = os.getloadavg()
    notes = [
        f"{r.name}: {r.median * 1e6:.1f} µs/event (rounds: "
        + ", ".join(f"{x * 1e6:.1f}" for x in r.rounds)
        + ")"
        for r in [*results.values(), *floors.values(), bare]
    ]
    notes.append(f"load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print_results(
        f"telemetry: OpenTelemetry traces + metrics on (no-op exporter) vs off, {count:,} "
        f"events per side per round, median of {rounds} rounds",
        comparisons,
        notes,
    )
    return comparisons


async def _main() -> Any:
    with kafka() as servers:
        return await run(servers)


def main() -> Any:
    """Run the telemetry benchmark against a provisioned broker."""
    return asyncio.run(_main())


if __name__ == "__main__":
    main()

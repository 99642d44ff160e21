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


class DroppingExporter(SpanExporter):
    """Takes every batch of spans and drops it (the "no-op exporter")."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Switch:
    """OpenTelemetry on or off for a side, with providers made once for the run."""

    def __init__(self, servers: str, sampler: Sampler | None = None) -> None:
        self.servers = servers
        self.tracer_provider = TracerProvider(sampler=sampler)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
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
    load = os.getloadavg()
    notes = [
        f"{r.name}: {r.median * 1e6:.1f} µs/event (rounds: "
        + ", ".join(f"{x * 1e6:.1f}" for x in r.rounds)
        + ")"
        for r in results.values()
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

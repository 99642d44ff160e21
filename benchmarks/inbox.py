"""Inbox benchmark: concurrency inside a PostgreSQL inbox, one process, one partition.

A 1-partition topic holds ``OrderPlaced`` events over 64 Kafka keys (64 chains per poll).
Every handler writes one effect row through ``ctx.transaction`` (it commits with the event's
idempotency key), and the I/O-bound one then waits 10 ms (``asyncio.sleep``: a call to
another service). Each side reads from the start in a fresh consumer group and is
timed from its first handler call to its last (steady-state rate; joining is not counted).

- **10 ms I/O handler, concurrency 16 vs serial**: ``max_concurrency=16`` (each event in its
  own transaction, ``inbox_transactions=auto``) against ``max_concurrency=1`` (the serial
  rate). Goal: ≥ 0.8 × 16 × the serial rate, i.e. a ratio ≥ 12.8×.
- beside it, the same handler at ``max_concurrency=16`` with one transaction per poll
  (``inbox_transactions=poll``, the only mode before): the handlers take turns, ~1×.
- **no-op handler** (the row only): one transaction per event vs per poll at concurrency 16,
  to show what the per-event transactions cost when handlers do not wait (why ``poll`` stays
  available; see docs/decisions.md, "Concurrency inside the inbox").
- **the reference, raw asyncpg**: the same statements by hand, no Kafka and no library: 16
  tasks (and 1), each on its own connection, each event ``BEGIN`` and a claim ``INSERT``, the
  handler's ``INSERT``, the 10 ms wait, then ``COMMIT`` sent with the next event's ``BEGIN``
  and claim in one message, as the key units do. Its concurrent/serial ratio is what this
  machine allows the pattern; eventplatform's concurrent rate is also shown against it.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import uuid
from typing import Any

import asyncpg

from benchmarks.broker import create_topic, kafka, postgres, unique
from benchmarks.consume import Stopwatch
from benchmarks.harness import Comparison, Result, print_results
from benchmarks.workload import SOURCE, orders
from eventplatform.app import Context, EventApp
from eventplatform.demo.events import OrderPlaced
from eventplatform.idempotency.postgres import PostgresStore
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.settings import load_settings

__all__ = ["run"]

KEYS = 64  # Kafka keys: 64 chains of one key per poll
IO_SECONDS = 0.010
CONCURRENCY = 16
MAX_POLL_RECORDS = 500
DEADLINE = 180.0


async def fill(servers: str, topic: str, registry: MemoryRegistry, count: int) -> None:
    """Write ``count`` events to ``topic``, keyed round-robin over :data:`KEYS` keys."""
    settings = load_settings(kafka={"bootstrap_servers": servers}, producer={"source": SOURCE})
    async with EventProducer(settings=settings, registry=registry) as producer:
        for start in range(0, count, 5_000):
            chunk = orders(min(5_000, count - start), start=start)
            await producer.publish_batch(
                [Outgoing(e, key=f"key-{(start + n) % KEYS}") for n, e in enumerate(chunk)],
                topic=topic,
            )


async def side(
    servers: str,
    dsn: str,
    topic: str,
    registry: MemoryRegistry,
    *,
    count: int,
    concurrency: int,
    transactions: str,
    io: float,
) -> float:
    """Seconds per event of one EventApp run over the first ``count`` events of ``topic``."""
    watch = Stopwatch(count)
    effects = f"bench_effects_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE TABLE {effects} (ik text, customer text)")
    finally:
        await conn.close()
    settings = load_settings(
        kafka={"bootstrap_servers": servers},
        consumer={
            "max_poll_records": MAX_POLL_RECORDS,
            "max_concurrency": concurrency,
            "inbox_transactions": transactions,
        },
    )
    store = PostgresStore(
        dsn=dsn,
        table=f"bench_keys_{uuid.uuid4().hex[:8]}",
        max_connections=concurrency + 1,
        purge_interval=None,
    )
    app = EventApp(
        "bench-inbox", group_id=unique("inbox"), registry=registry, store=store, settings=settings
    )
    insert = f"INSERT INTO {effects} VALUES ($1, $2)"

    @app.handle(OrderPlaced, topic=topic)
    async def handler(event: OrderPlaced, ctx: Context) -> None:
        await ctx.transaction.execute(insert, ctx.idempotency_key, event.customer_id)
        if io:
            await asyncio.sleep(io)
        watch.tick()

    gc.collect()
    async with app:
        task = asyncio.create_task(app.run())
        try:
            async with asyncio.timeout(DEADLINE):
                await watch.done.wait()
        finally:
            app.stop()
            await task
    return watch.per_event


async def raw_side(dsn: str, *, count: int, concurrency: int, io: float) -> float:
    """Seconds per event of the key-unit statements run by hand with asyncpg (no Kafka)."""
    name = f"bench_raw_{uuid.uuid4().hex[:8]}"
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    assert pool is not None
    try:
        await pool.execute(f"CREATE TABLE {name}_keys (k text PRIMARY KEY, done boolean)")
        await pool.execute(f"CREATE TABLE {name}_effects (ik text, customer text)")
        insert = f"INSERT INTO {name}_effects VALUES ($1, $2)"
        per_task = count // concurrency

        def claim(worker: int, n: int) -> str:
            return f"BEGIN; INSERT INTO {name}_keys VALUES ('{worker}-{n}', true)"

        async def worker(w: int) -> None:
            async with pool.acquire() as conn:
                await conn.execute(claim(w, 0))
                for n in range(per_task):
                    await conn.execute(insert, f"{w}-{n}", "customer")
                    await asyncio.sleep(io)
                    await conn.execute(f"SELECT 1; COMMIT; {claim(w, n + 1)}")
                await conn.execute("ROLLBACK")

        began = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - began
        await pool.execute(f"DROP TABLE {name}_keys, {name}_effects")
    finally:
        await pool.close()
    return elapsed / (per_task * concurrency)


async def run(servers: str, dsn: str, *, rounds: int = 3) -> list[Comparison]:
    """Run every side ``rounds`` times, interleaved; print and return the comparisons."""
    topic = await create_topic(servers, unique("inbox"), 1)
    registry = MemoryRegistry()
    await registry.start()
    sides: dict[str, dict[str, Any]] = {
        "serial": {"count": 300, "concurrency": 1, "transactions": "auto", "io": IO_SECONDS},
        "events": {
            "count": 3_000,
            "concurrency": CONCURRENCY,
            "transactions": "auto",
            "io": IO_SECONDS,
        },
        "poll": {
            "count": 300,
            "concurrency": CONCURRENCY,
            "transactions": "poll",
            "io": IO_SECONDS,
        },
        "noop-events": {
            "count": 10_000,
            "concurrency": CONCURRENCY,
            "transactions": "event",
            "io": 0.0,
        },
        "noop-poll": {
            "count": 10_000,
            "concurrency": CONCURRENCY,
            "transactions": "poll",
            "io": 0.0,
        },
    }
    labels = {
        "serial": "10 ms I/O handler, max_concurrency=1 (serial)",
        "events": f"10 ms I/O handler, max_concurrency={CONCURRENCY}, a transaction per event",
        "poll": f"10 ms I/O handler, max_concurrency={CONCURRENCY}, a transaction per poll",
        "noop-events": f"no-op handler, max_concurrency={CONCURRENCY}, a transaction per event",
        "noop-poll": f"no-op handler, max_concurrency={CONCURRENCY}, a transaction per poll",
    }
    raw_sides = {"raw-serial": (300, 1), "raw-concurrent": (3_000, CONCURRENCY)}
    labels["raw-serial"] = "raw asyncpg, the same statements, 1 task (the reference)"
    labels["raw-concurrent"] = f"raw asyncpg, the same statements, {CONCURRENCY} tasks"
    results = {name: Result(label, unit="events/s", scale=1.0) for name, label in labels.items()}
    try:
        await fill(servers, topic, registry, max(s["count"] for s in sides.values()))
        for _ in range(rounds):
            for name, options in sides.items():
                per_event = await side(servers, dsn, topic, registry, **options)
                results[name].rounds.append(1 / per_event)
            for name, (count, concurrency) in raw_sides.items():
                per_event = await raw_side(dsn, count=count, concurrency=concurrency, io=IO_SECONDS)
                results[name].rounds.append(1 / per_event)
    finally:
        await registry.close()
    comparisons = [
        Comparison(
            "PostgreSQL inbox, 10 ms I/O, 64 keys, 1 partition: concurrent vs serial "
            f"(goal 0.8 × {CONCURRENCY})",
            results["events"],
            results["serial"],
            goal=0.8 * CONCURRENCY,
            higher_is_better=True,
        ),
        Comparison(
            f"the reference: raw asyncpg, {CONCURRENCY} tasks vs 1, the same statements, no Kafka",
            results["raw-concurrent"],
            results["raw-serial"],
            higher_is_better=True,
        ),
        Comparison(
            f"eventplatform at concurrency {CONCURRENCY} vs raw asyncpg with {CONCURRENCY} tasks",
            results["events"],
            results["raw-concurrent"],
            higher_is_better=True,
        ),
        Comparison(
            "the same, one transaction per poll (before) vs serial",
            results["poll"],
            results["serial"],
            higher_is_better=True,
        ),
        Comparison(
            "no-op handler: a transaction per event vs per poll",
            results["noop-events"],
            results["noop-poll"],
            higher_is_better=True,
        ),
    ]
    notes = [
        f"{r.name}: median {r.median:,.0f} events/s, rounds "
        + ", ".join(f"{x:,.0f}" for x in r.rounds)
        for r in results.values()
    ]
    # The sides of a round ran back to back: their ratio is the least disturbed by the load.
    ratios = [
        e / s for e, s in zip(results["events"].rounds, results["serial"].rounds, strict=True)
    ]
    notes.append(
        f"concurrent/serial per round: {', '.join(f'{x:.1f}×' for x in ratios)} "
        f"(median {statistics.median(ratios):.1f}×, goal {0.8 * CONCURRENCY:.1f}×)"
    )
    raw = [
        c / s
        for c, s in zip(results["raw-concurrent"].rounds, results["raw-serial"].rounds, strict=True)
    ]
    notes.append(
        f"raw asyncpg, {CONCURRENCY} tasks/1 per round: {', '.join(f'{x:.1f}×' for x in raw)} "
        f"(median {statistics.median(raw):.1f}×): what this machine allows the pattern"
    )
    print_results(
        f"inbox: PostgreSQL store, 1 partition, {KEYS} keys, max_poll_records "
        f"{MAX_POLL_RECORDS}, fresh group per side; median of {rounds} rounds (events/s)",
        comparisons,
        notes,
    )
    return comparisons


async def _main() -> Any:
    with kafka() as servers, postgres() as dsn:
        return await run(servers, dsn)


def main() -> Any:
    """Run the inbox benchmark against a provisioned broker and PostgreSQL."""
    return asyncio.run(_main())


if __name__ == "__main__":
    main()

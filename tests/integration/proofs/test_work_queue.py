"""Work-queue proofs: ``@app.work`` processes (``eventplatform serve``) on a Kafka share group.

- **Sharing**: three workers on a one-partition topic, each handler waiting 20 ms on I/O: all
  three take part (each at least 20 % of 3,000 deposits), every deposit applied once.
- **Crash**: 4,000 deposits (the issue asks for 10,000; 4,000 keeps the proof within CI time,
  the ~15 s lock expiries after each kill being most of it), 5 % of them repeating an earlier
  idempotency key; two workers, SIGKILLed five times while holding acquired records and
  restarted; the inbox (SQLite, PostgreSQL) ends with one row per distinct key.
- **Poison**: a deposit whose handler always raises is delivered exactly the group's delivery
  limit times, then dead-lettered once with ``__connect.errors.*`` headers; garbage bytes and
  unknown schema ids are dead-lettered at once; the others are applied once.
- **Release with delay**: a worker whose downstream is down releases each deposit for 2 s; the
  deposits come back no sooner, and the healthy worker applies them, once each.
- **Lock expiry**: a worker hangs (its process blocked) past the 15 s lock on a deposit; the
  broker hands the deposit to the other worker; the hung one's late success commits the effect
  and the other finds the key done: one row.

Effects are rows of an effect table without a unique constraint, written through
``ctx.transaction`` (see :mod:`tests.integration.proofs.effects`). Attempts are lines of a file
each handler call appends to (``seq pid delivery time``), outside the transaction.
"""

from __future__ import annotations

import functools
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from eventplatform.app.dlq import H_ATTEMPTS, H_EXCEPTION_CLASS_NAME, H_STAGE, H_TOPIC
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.queue.admin import admin_client, describe_share_group
from eventplatform.settings import Settings
from tests.integration.proofs.conftest import Names, app_environment
from tests.integration.proofs.effects import EffectTable, exactly_once, explain
from tests.integration.proofs.events import Deposit
from tests.integration.proofs.processes import AppProcess, until
from tests.integration.proofs.streams import deposits, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The broker's lowest ``share.record.lock.duration.ms`` (group.share.min.record.lock.duration.ms).
LOCK_MS = 15_000


def work_environment(
    kafka_bootstrap_servers: str, names: Names, effects: EffectTable, **extra: str
) -> dict[str, str]:
    """The environment of the proofs' worker processes (short backoffs)."""
    return app_environment(
        kafka_bootstrap_servers,
        names,
        effects.store_url,
        PROOF_EFFECTS_TABLE=effects.name,
        PROOF_WORK_GROUP=f"{names.group}.work",
        EVENTPLATFORM_CONSUMER__RETRY__INITIAL_BACKOFF="0.05",
        EVENTPLATFORM_CONSUMER__RETRY__MAX_BACKOFF="0.5",
        **extra,
    )


class ShareGroupView:
    """The proof's share group as the brokers describe it (members, lag)."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.settings = settings
        self.group = group
        self.servers = settings.kafka.bootstrap_servers or ""

    async def assigned_members(self) -> int:
        """Members with a non-empty assignment (0 before the group exists)."""
        async with admin_client(self.settings, self.servers) as client:
            try:
                described = await describe_share_group(
                    client, self.group, settings=self.settings, servers=self.servers
                )
            except Exception:
                return 0
        return sum(1 for member in described.members if member.assignment)

    async def lag(self) -> int | None:
        """Records not acknowledged yet, over the group's share-partitions."""
        async with admin_client(self.settings, self.servers) as client:
            described = await describe_share_group(
                client, self.group, settings=self.settings, servers=self.servers
            )
        lags = [p.lag for p in described.partitions]
        if not lags or any(lag is None for lag in lags):
            return None
        return sum(lag for lag in lags if lag is not None)


def attempts(path: Path) -> list[tuple[int, int, int, float]]:
    """``(seq, pid, delivery, time)`` of every handler call so far."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:
            out.append((int(parts[0]), int(parts[1]), int(parts[2]), float(parts[3])))
    return out


def effects_fixture(request: pytest.FixtureRequest, kind: str) -> EffectTable:
    table: EffectTable = request.getfixturevalue(f"{kind}_effects")
    return table


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def effects(request: pytest.FixtureRequest) -> EffectTable:
    """The effect table, in the SQLite store's file or in the PostgreSQL store's database."""
    return effects_fixture(request, request.param)


async def _all_applied(effects: EffectTable, view: ShareGroupView, keys: int) -> bool:
    return await effects.count() >= keys and await view.lag() == 0


@pytest.mark.postgres
@pytest.mark.timeout(240)
async def test_three_workers_share_one_partition(
    postgres_effects: EffectTable,
    names: Names,
    producer: EventProducer,
    settings: Settings,
    create_topic: Callable[..., Awaitable[str]],
    kafka_bootstrap_servers: str,
    logs: Path,
    rng: random.Random,
    report: Callable[[str], None],
) -> None:
    events = 3_000
    effects = postgres_effects
    await create_topic(names.topic, partitions=1)
    env = work_environment(
        kafka_bootstrap_servers,
        names,
        effects,
        PROOF_HANDLER_DELAY="0.02",
        PROOF_CONCURRENCY="4",
    )
    workers = [AppProcess("worker", instance_id=f"share-{n}", env=env, logs=logs) for n in range(3)]
    view = ShareGroupView(settings, f"{names.group}.work")
    work = deposits(events, duplicate_ratio=0.0, rng=rng)
    started = time.monotonic()
    try:
        for worker in workers:
            await worker.start()

        async def three_assigned() -> bool:
            return await view.assigned_members() == 3

        # Every worker holds the partition before there is work, so that none starts late.
        await until(three_assigned, within=60, what="three assigned members", watch=(*workers,))
        await producer.publish_batch(work.items, topic=names.topic)
        await until(
            functools.partial(_all_applied, effects, view, len(work.keys)),
            within=120,
            what="every deposit applied and acknowledged",
            watch=(*workers,),
            interval=0.2,
        )
        elapsed = time.monotonic() - started
        for worker in workers:
            assert await worker.stop() == 0, worker.tail()
    finally:
        for worker in workers:
            await worker.kill()
    rows, offenders = await exactly_once(effects, work.keys)
    per_pid = await effects.per_pid()
    report(
        f"sharing: events={events} rows={rows} per worker={sorted(per_pid.values())} "
        f"lost+duplicated={len(offenders)} in {elapsed:.1f}s"
    )
    assert not offenders, await explain(effects, offenders)
    assert len(per_pid) == 3, per_pid
    assert all(n >= 0.2 * events for n in per_pid.values()), per_pid


@pytest.mark.timeout(420)
async def test_workers_killed_holding_records_apply_every_key_once(
    effects: EffectTable,
    names: Names,
    producer: EventProducer,
    settings: Settings,
    create_topic: Callable[..., Awaitable[str]],
    kafka_bootstrap_servers: str,
    logs: Path,
    tmp_path: Path,
    rng: random.Random,
    report: Callable[[str], None],
) -> None:
    events, kills = 10_000, 5
    started = time.monotonic()
    await create_topic(names.topic, partitions=2)
    tried = tmp_path / "attempts.txt"
    env = work_environment(
        kafka_bootstrap_servers,
        names,
        effects,
        PROOF_HANDLER_DELAY="0.005",
        PROOF_CONCURRENCY="16",
        PROOF_LOCK_MS=str(LOCK_MS),
        PROOF_ATTEMPTS_FILE=str(tried),
        # A kill strands a worker's records for a lock each; the delivery limit must outlast
        # several kills in a row on the same records.
        PROOF_DELIVERY_LIMIT="10",
    )
    workers = [AppProcess("worker", instance_id=f"crash-{n}", env=env, logs=logs) for n in range(2)]
    view = ShareGroupView(settings, f"{names.group}.work")
    work = deposits(events, duplicate_ratio=0.05, rng=rng)
    done: list[str] = []

    async def applied_at_least(target: int) -> bool:
        return await effects.count() >= target

    slices = work.chunks(kills + 1)
    published: set[str] = set()
    try:
        for worker in workers:
            await worker.start()
        for number, chunk in enumerate(slices[:kills], start=1):
            # A slice per kill, so that each kill lands with a backlog: the victim holds
            # acquired records (its prefetch) and handlers in flight.
            await producer.publish_batch(chunk, topic=names.topic)
            published.update(item.idempotency_key or "" for item in chunk)
            before = await effects.count()
            target = before + max(1, int(rng.uniform(0.1, 0.6) * (len(published) - before)))
            await until(
                functools.partial(applied_at_least, target),
                within=120,
                what=f"{target} keys applied before kill {number}",
                watch=(*workers,),
            )
            victim = rng.choice(workers)
            await victim.kill()
            after = await effects.count()
            done.append(f"{victim.instance_id}@{after}/{len(published)}")
            await victim.start()
        await producer.publish_batch(slices[kills], topic=names.topic)
        await until(
            functools.partial(_all_applied, effects, view, len(work.keys)),
            within=240,
            what="every key applied and every record acknowledged",
            watch=(*workers,),
            interval=0.25,
        )
        for worker in workers:
            assert await worker.stop() == 0, worker.tail()
    finally:
        for worker in workers:
            await worker.kill()
    rows, offenders = await exactly_once(effects, work.keys)
    redelivered = {seq for seq, _pid, delivery, _t in attempts(tried) if delivery >= 2}
    report(
        f"work crash[{effects.store_url.split(':', 1)[0]}]: events={events} "
        f"distinct_keys={len(work.keys)} duplicates={work.duplicates} "
        f"kills={sum(w.kills for w in workers)} ({', '.join(done)}) "
        f"redelivered deposits={len(redelivered)} rows={rows} lost+duplicated={len(offenders)} "
        f"in {time.monotonic() - started:.0f}s"
    )
    assert sum(w.kills for w in workers) >= kills
    # Records a killed worker held came back (delivery 2+) once their locks expired.
    assert len(redelivered) >= kills, redelivered
    assert not offenders, f"{await explain(effects, offenders)}\n" + "\n".join(
        w.tail() for w in workers
    )
    assert rows == len(work.keys)


async def _publish_raw(servers: str, topic: str, values: list[bytes]) -> None:
    raw = AIOKafkaProducer(bootstrap_servers=servers)
    await raw.start()
    try:
        for value in values:
            await raw.send_and_wait(topic, value, partition=0)
    finally:
        await raw.stop()


@pytest.mark.timeout(180)
async def test_poison_is_delivered_the_limit_then_dead_lettered_once(
    sqlite_effects: EffectTable,
    names: Names,
    producer: EventProducer,
    settings: Settings,
    create_topic: Callable[..., Awaitable[str]],
    kafka_bootstrap_servers: str,
    logs: Path,
    tmp_path: Path,
    rng: random.Random,
    report: Callable[[str], None],
) -> None:
    effects = sqlite_effects
    good, poison, limit = 200, 8, 4
    await create_topic(names.topic, partitions=1)
    tried = tmp_path / "attempts.txt"
    env = work_environment(
        kafka_bootstrap_servers,
        names,
        effects,
        PROOF_ATTEMPTS_FILE=str(tried),
        PROOF_DELIVERY_LIMIT=str(limit),
    )
    items = [Outgoing(Deposit(seq=n, account="a"), idempotency_key=f"dep-{n}") for n in range(good)]
    items += [
        Outgoing(Deposit(seq=good + n, account="a", poison=True), idempotency_key=f"bad-{n}")
        for n in range(poison)
    ]
    rng.shuffle(items)
    garbage = [b"not avro at all", b"\x00\x7f\xff\xff\x00unknown schema id", b"{}"]
    await _publish_raw(kafka_bootstrap_servers, names.topic, garbage)
    await producer.publish_batch(items, topic=names.topic)
    worker = AppProcess("worker", instance_id="poison-1", env=env, logs=logs)
    view = ShareGroupView(settings, f"{names.group}.work")
    async with worker:
        await worker.start()
        await until(
            functools.partial(_all_applied, effects, view, good),
            within=120,
            what="the good deposits applied and everything acknowledged",
            watch=(worker,),
            interval=0.2,
        )
        assert await worker.stop() == 0, worker.tail()
    letters = await read_topic(kafka_bootstrap_servers, f"{names.topic}.dlq", partitions=1)
    rows, offenders = await exactly_once(effects, [f"dep-{n}" for n in range(good)])
    per_seq: defaultdict[int, list[int]] = defaultdict(list)
    for seq, _pid, delivery, _t in attempts(tried):
        per_seq[seq].append(delivery)
    headers = [{k: (v or b"").decode(errors="replace") for k, v in r.headers} for r in letters]
    kinds = Counter((h[H_STAGE], h[H_EXCEPTION_CLASS_NAME]) for h in headers)
    report(f"work poison: good={good} poison={poison} garbage={len(garbage)} dlq={dict(kinds)}")
    assert not offenders, await explain(effects, offenders)
    assert rows == good
    for n in range(poison):
        assert sorted(per_seq[good + n]) == list(range(1, limit + 1)), per_seq[good + n]
    assert all(len(per_seq[n]) == 1 for n in range(good))
    assert kinds[("TASK_PUT", "tests.integration.proofs.services.PoisonDeposit")] == poison
    assert sum(n for (stage, _), n in kinds.items() if stage == "VALUE_CONVERTER") == 3
    assert len(letters) == poison + len(garbage)
    failed = [h for h in headers if h[H_STAGE] == "TASK_PUT"]
    assert all(h[H_ATTEMPTS] == str(limit) and h[H_TOPIC] == names.topic for h in failed)
    dead_values = {bytes(r.value) for r in letters}
    assert set(garbage) <= dead_values


@pytest.mark.timeout(180)
async def test_a_released_deposit_comes_back_after_its_delay_to_another_worker(
    sqlite_effects: EffectTable,
    names: Names,
    producer: EventProducer,
    settings: Settings,
    create_topic: Callable[..., Awaitable[str]],
    kafka_bootstrap_servers: str,
    logs: Path,
    tmp_path: Path,
    report: Callable[[str], None],
) -> None:
    effects = sqlite_effects
    count, delay, failing = 20, 2.0, 3
    await create_topic(names.topic, partitions=1)
    tried = tmp_path / "attempts.txt"
    base = {"PROOF_ATTEMPTS_FILE": str(tried), "PROOF_RETRY_AFTER": str(delay)}
    # One worker's downstream is down: it releases every deposit it gets (for 2 s) on its
    # first three deliveries; the other worker is healthy.
    down = AppProcess(
        "worker",
        instance_id="release-down",
        env=work_environment(
            kafka_bootstrap_servers,
            names,
            effects,
            PROOF_FAIL="retry",
            PROOF_FAIL_UNTIL=str(failing),
            **base,
        ),
        logs=logs,
    )
    healthy = AppProcess(
        "worker",
        instance_id="release-up",
        env=work_environment(kafka_bootstrap_servers, names, effects, **base),
        logs=logs,
    )
    view = ShareGroupView(settings, f"{names.group}.work")
    items = [
        Outgoing(Deposit(seq=n, account="a"), idempotency_key=f"dep-{n}") for n in range(count)
    ]
    async with down, healthy:
        await down.start()
        await producer.publish_batch(items, topic=names.topic)
        await healthy.start()
        await until(
            functools.partial(_all_applied, effects, view, count),
            within=120,
            what="every deposit applied",
            watch=(down, healthy),
            interval=0.2,
        )
        down_pid, healthy_pid = down.pid, healthy.pid
        assert await healthy.stop() == 0, healthy.tail()
        assert await down.stop() == 0, down.tail()
    rows, offenders = await exactly_once(effects, [f"dep-{n}" for n in range(count)])
    assert not offenders, await explain(effects, offenders)
    assert rows == count
    rows_by_seq = {row[2]: row for row in await effects.rows_of([f"dep-{n}" for n in range(count)])}
    by_seq: defaultdict[int, list[tuple[float, int, int]]] = defaultdict(list)
    for seq, pid, delivery, at in attempts(tried):
        by_seq[seq].append((at, delivery, pid))
    gaps: list[float] = []
    came_back_elsewhere = 0
    for seq, calls in by_seq.items():
        calls.sort()
        assert [d for _, d, _ in calls] == list(range(1, len(calls) + 1)), calls
        # Released, it came back no sooner than the delay (each failed call released it).
        gaps += [b[0] - a[0] for a, b in itertools.pairwise(calls)]
        applied_by = rows_by_seq[seq][5]
        if calls[0][2] == down_pid and applied_by == healthy_pid:
            came_back_elsewhere += 1
    released = sum(1 for calls in by_seq.values() if len(calls) > 1)
    report(
        f"work release: deposits={count} delay={delay}s released={released} came back to the "
        f"other worker={came_back_elsewhere} calls={sum(map(len, by_seq.values()))} "
        f"shortest gap between deliveries={min(gaps, default=0):.2f}s"
    )
    assert released > 0, "the failing worker released nothing"
    assert came_back_elsewhere > 0, "no released deposit came back to the other worker"
    assert min(gaps) >= delay - 0.1, sorted(gaps)[:5]
    assert max(len(calls) for calls in by_seq.values()) <= failing + 1


@pytest.mark.timeout(180)
async def test_a_worker_hung_past_its_lock_loses_the_deposit_without_duplicating_it(
    effects: EffectTable,
    names: Names,
    producer: EventProducer,
    settings: Settings,
    create_topic: Callable[..., Awaitable[str]],
    kafka_bootstrap_servers: str,
    logs: Path,
    tmp_path: Path,
    report: Callable[[str], None],
) -> None:
    hang = 22.0
    await create_topic(names.topic, partitions=1)
    tried = tmp_path / "attempts.txt"
    # Whichever worker takes the deposit first hangs on it (its first delivery) for longer
    # than the lock; the deposit's second delivery does not hang.
    env = work_environment(
        kafka_bootstrap_servers,
        names,
        effects,
        PROOF_ATTEMPTS_FILE=str(tried),
        PROOF_LOCK_MS=str(LOCK_MS),
        PROOF_HANG_SEQ="0",
        PROOF_HANG_SECONDS=str(hang),
    )
    workers = [AppProcess("worker", instance_id=f"lock-{n}", env=env, logs=logs) for n in range(2)]
    view = ShareGroupView(settings, f"{names.group}.work")
    started = time.monotonic()
    try:
        for worker in workers:
            await worker.start()

        async def both_assigned() -> bool:
            return await view.assigned_members() == 2

        await until(both_assigned, within=60, what="two assigned members", watch=(*workers,))
        await producer.publish(
            Deposit(seq=0, account="a"), idempotency_key="dep-0", topic=names.topic
        )

        async def taken() -> bool:
            return bool(attempts(tried))

        await until(taken, within=60, what="a worker to take the deposit", watch=(*workers,))
        first_taken = time.monotonic()
        [(_seq, hung_pid, _delivery, _at)] = attempts(tried)
        await until(
            functools.partial(_all_applied, effects, view, 1),
            within=90,
            what="the deposit applied and acknowledged",
            watch=(*workers,),
            interval=0.2,
        )
        elapsed = time.monotonic() - first_taken
        hung = next(w for w in workers if w.pid == hung_pid)
        other = next(w for w in workers if w is not hung)
        assert await other.stop() == 0, other.tail()
        assert await hung.stop() == 0, hung.tail()
    finally:
        for worker in workers:
            await worker.kill()
    stopped, hung_log = other.tail(5), hung.tail(40)
    rows, offenders = await exactly_once(effects, ["dep-0"])
    per_pid = await effects.per_pid()
    report(
        f"work lock expiry[{effects.store_url.split(':', 1)[0]}]: lock={LOCK_MS / 1000:g}s "
        f"hang={hang:g}s applied {elapsed:.1f}s after it was taken, rows={rows} "
        f"by the hung worker={per_pid[hung_pid] == 1} in {time.monotonic() - started:.0f}s"
    )
    assert not offenders, await explain(effects, offenders)
    # The hung worker's late success is the one effect; its acknowledgement came too late.
    assert per_pid == Counter({hung_pid: 1}), per_pid
    assert "INVALID_RECORD_STATE" in hung_log, hung_log
    # The other worker got the deposit when the lock expired, and found its key done.
    assert "'skipped_duplicates': 1" in stopped, stopped
    assert "'handled': 0" in stopped, stopped

"""Crash proof: an inbox app SIGKILLed at random points mid-stream applies each key once.

20,000 deposits (6 % of them repeating an earlier idempotency key with a new event id) go to
a 4-partition topic in seven slices. Before each slice's incarnation of the app starts, the
slice is published; the incarnation is SIGKILLed at a random point of its backlog (a random
share of it applied, then a random delay into the next poll), six times, and the seventh runs
until the group's lag is 0. The handler inserts one row per event into an effect table
without a unique constraint, through ``ctx.transaction``: the row commits with the key or not
at all. Exactly once means one row per distinct key: none lost, none doubled.

It runs on SQLite, on PostgreSQL with one store transaction per poll, and on PostgreSQL with
a transaction per event and 16 handlers at once per partition (``postgres-concurrent``), where
a kill lands among many open transactions at once.

A killed member leaves no LeaveGroup behind, so each restart waits for the broker to expel it
(the 6 s session timeout the proofs use); that wait is most of the runtime.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from eventplatform.producer import EventProducer
from tests.integration.proofs.conftest import Names, app_environment
from tests.integration.proofs.effects import EffectTable, exactly_once, explain
from tests.integration.proofs.processes import AppProcess, until
from tests.integration.proofs.streams import GroupProgress, deposits

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 20_000
DUPLICATE_RATIO = 0.06
KILLS = 6
PARTITIONS = 4


#: How the app runs its inbox, per parameter: the settings it gets on top of the proof's.
INBOX_MODES: dict[str, dict[str, str]] = {
    "sqlite": {},
    # One store transaction per poll, handlers taking turns in it.
    "postgres": {"EVENTPLATFORM_CONSUMER__INBOX_TRANSACTIONS": "poll"},
    # A transaction per event, 16 handlers at once per partition (issue 14 item 4).
    "postgres-concurrent": {
        "EVENTPLATFORM_CONSUMER__INBOX_TRANSACTIONS": "event",
        "EVENTPLATFORM_CONSUMER__MAX_CONCURRENCY": "16",
    },
}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres-concurrent", marks=pytest.mark.postgres),
    ]
)
def inbox_mode(request: pytest.FixtureRequest) -> str:
    """The store and the way the app runs its inbox (see :data:`INBOX_MODES`)."""
    mode: str = request.param
    return mode


@pytest.fixture
def effects(request: pytest.FixtureRequest, inbox_mode: str) -> EffectTable:
    """The effect table, in the SQLite store's file or in the PostgreSQL store's database."""
    table: EffectTable = request.getfixturevalue(f"{inbox_mode.partition('-')[0]}_effects")
    return table


@pytest.mark.timeout(240)
async def test_an_inbox_app_killed_mid_stream_applies_every_key_exactly_once(
    inbox_mode: str,
    effects: EffectTable,
    names: Names,
    producer: EventProducer,
    create_topic: Callable[..., Awaitable[str]],
    kafka_admin: AIOKafkaAdminClient,
    kafka_bootstrap_servers: str,
    logs: Path,
    rng: random.Random,
    report: Callable[[str], None],
) -> None:
    started = time.monotonic()
    await create_topic(names.topic, partitions=PARTITIONS)
    work = deposits(EVENTS, duplicate_ratio=DUPLICATE_RATIO, rng=rng)
    slices = work.chunks(KILLS + 1)
    env = app_environment(
        kafka_bootstrap_servers,
        names,
        effects.store_url,
        PROOF_EFFECTS_TABLE=effects.name,
        **INBOX_MODES[inbox_mode],
    )
    published: set[str] = set()
    kills: list[str] = []

    async def applied_at_least(target: int) -> bool:
        return await effects.count() >= target

    app = AppProcess("inbox", instance_id="crash-1", env=env, logs=logs)
    group = GroupProgress(
        bootstrap_servers=kafka_bootstrap_servers,
        admin=kafka_admin,
        group=names.group,
        topic=names.topic,
        partitions=PARTITIONS,
    )
    async with app, group:
        for number, chunk in enumerate(slices[:KILLS], start=1):
            await producer.publish_batch(chunk, topic=names.topic)
            published.update(item.idempotency_key or "" for item in chunk)
            before = await effects.count()
            await app.start()
            # A random point of the backlog: a share of it applied, then a random delay so
            # that the kill lands anywhere in the next poll (handlers, store commit, offset
            # commit), not only right after a store commit.
            target = before + max(1, int(rng.uniform(0.1, 0.7) * (len(published) - before)))
            await until(
                functools.partial(applied_at_least, target),
                within=60,
                what=f"incarnation {number} to apply {target - before} keys",
                watch=(app,),
            )
            await asyncio.sleep(rng.uniform(0, 0.05))
            await app.kill()
            after = await effects.count()
            kills.append(f"{before}→{after} of {len(published)}")
            assert after > before, f"incarnation {number} made no progress:\n{app.tail()}"
            assert after < len(published), f"incarnation {number} was killed after the stream"

        await producer.publish_batch(slices[KILLS], topic=names.topic)
        await app.start()

        async def drained() -> bool:
            return await group.lag() == 0 and await effects.count() >= len(work.keys)

        await until(drained, within=120, what="the group to consume everything", watch=(app,))
        code = await app.stop()
        assert code == 0, f"the last incarnation did not stop cleanly:\n{app.tail()}"

    rows, offenders = await exactly_once(effects, work.keys)
    report(
        f"crash[{inbox_mode}]: events={EVENTS} "
        f"distinct_keys={len(work.keys)} duplicates={work.duplicates} kills={app.kills} "
        f"rows={rows} lost+duplicated={len(offenders)} "
        f"progress per kill (rows before→after of published keys): {', '.join(kills)} "
        f"in {time.monotonic() - started:.0f}s"
    )
    assert app.kills == KILLS
    assert not offenders, f"{await explain(effects, offenders)}\n{app.tail()}"
    assert rows == len(work.keys)

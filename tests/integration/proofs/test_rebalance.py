"""Rebalance proof: two members share a group; one is SIGKILLed; each key is applied once.

Two inbox app processes consume a 4-partition topic in one group with the PostgreSQL store
(the store instances share). The second joins while the first is busy (a rebalance with a poll
in flight: the first commits in ``on_partitions_revoked``); both then work the stream until
the second is SIGKILLed at a random point of its backlog. It sends no LeaveGroup: its
partitions stall until the broker expels it after the session timeout (6 s), then the
survivor takes them over from their last committed offsets, where some keys are applied
already (effects committed, offsets not). Duplicated keys also land on partitions of different
members, so the two members race for the same key: the store's row lock decides.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from eventplatform.producer import EventProducer, Outgoing
from tests.integration.proofs.conftest import Names, app_environment
from tests.integration.proofs.effects import EffectTable, exactly_once, explain
from tests.integration.proofs.processes import AppProcess, until
from tests.integration.proofs.streams import GroupProgress, deposits

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]

EVENTS = 9_000
DUPLICATE_RATIO = 0.08
PARTITIONS = 4


@pytest.mark.timeout(180)
async def test_a_member_killed_mid_stream_is_taken_over_and_every_key_applied_once(
    postgres_effects: EffectTable,
    names: Names,
    producer: EventProducer,
    create_topic: Callable[..., Awaitable[str]],
    kafka_admin: AIOKafkaAdminClient,
    kafka_bootstrap_servers: str,
    logs: Path,
    rng: random.Random,
    report: Callable[[str], None],
) -> None:
    effects = postgres_effects
    started = time.monotonic()
    await create_topic(names.topic, partitions=PARTITIONS)
    work = deposits(EVENTS, duplicate_ratio=DUPLICATE_RATIO, rng=rng)
    first_slice, second_slice, third_slice = work.chunks(3)
    env = app_environment(
        kafka_bootstrap_servers, names, effects.store_url, PROOF_EFFECTS_TABLE=effects.name
    )
    survivor = AppProcess("inbox", instance_id="member-a", env=env, logs=logs)
    victim = AppProcess("inbox", instance_id="member-b", env=env, logs=logs)
    group = GroupProgress(
        bootstrap_servers=kafka_bootstrap_servers,
        admin=kafka_admin,
        group=names.group,
        topic=names.topic,
        partitions=PARTITIONS,
    )
    published: set[str] = set()

    async def publish(chunk: list[Outgoing]) -> None:
        await producer.publish_batch(chunk, topic=names.topic)
        published.update(item.idempotency_key or "" for item in chunk)

    async with survivor, victim, group:
        await survivor.start()
        await publish(first_slice)
        await until(
            lambda: _applied(effects, 1), within=60, what="the first member", watch=(survivor,)
        )
        await victim.start()  # joins while the first member works: a rebalance mid-poll

        await publish(second_slice)
        before = await effects.count()
        target = before + int(rng.uniform(0.1, 0.6) * (len(published) - before))

        async def both_working() -> bool:
            per_pid = await effects.per_pid()
            return (
                per_pid[survivor.pid] > 0
                and per_pid[victim.pid] > 0
                and sum(per_pid.values()) >= target
            )

        await until(
            both_working, within=60, what="both members to apply keys", watch=(survivor, victim)
        )
        await asyncio.sleep(rng.uniform(0, 0.05))
        await victim.kill()
        killed_at = time.monotonic()
        at_kill = await effects.per_pid()
        published_at_kill = len(published)
        assert sum(at_kill.values()) < published_at_kill, "the member was killed after the stream"

        await publish(third_slice)

        async def drained() -> bool:
            return await group.lag() == 0 and await effects.count() >= len(work.keys)

        await until(drained, within=90, what="the survivor to take over", watch=(survivor,))
        drained_after = time.monotonic() - killed_at
        code = await survivor.stop()
        assert code == 0, f"the survivor did not stop cleanly:\n{survivor.tail()}"

    final = await effects.per_pid()
    rows, offenders = await exactly_once(effects, work.keys)
    report(
        f"rebalance[postgresql]: events={EVENTS} distinct_keys={len(work.keys)} "
        f"duplicates={work.duplicates} kills={victim.kills} rows={rows} "
        f"lost+duplicated={len(offenders)}; at the kill: survivor={at_kill[survivor.pid]} "
        f"victim={at_kill[victim.pid]} of {published_at_kill} published keys; "
        f"survivor after the kill: {final[survivor.pid] - at_kill[survivor.pid]} rows, drained "
        f"{drained_after:.1f}s after the kill; {time.monotonic() - started:.0f}s in all"
    )
    assert not offenders, f"{await explain(effects, offenders)}\n{survivor.tail()}\n{victim.tail()}"
    assert rows == len(work.keys)
    assert set(final) == {survivor.pid, victim.pid}
    assert final[victim.pid] == at_kill[victim.pid]  # a killed process writes nothing more


async def _applied(effects: EffectTable, at_least: int) -> bool:
    return await effects.count() >= at_least

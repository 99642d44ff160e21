"""Leader failover under exactly-once-style consumption, on the three-broker cluster.

20,000 deposits (6 % of them repeating an earlier idempotency key with a new event id) are
published with ``publish_batch`` (500 a call) to a six-partition topic with three replicas and
``min.insync.replicas=2``, and consumed by three ``serve`` processes in one group with an inbox
(one effect row per handled event, in the store's transaction; no unique constraint, so a key
applied twice shows as two rows). Along the way:

1. after a fifth of the stream is published, the leader of a random partition is SIGKILLed,
   and the publisher goes on at once (its next calls wait for the new leader);
2. once a quarter of the keys is applied, one ``serve`` process is SIGKILLed and started
   again with the same instance id (static membership: it takes its partitions back);
3. once a new leader took over and most of the stream is published, the killed broker is
   restarted; the last fifth of the stream is published only after it is back.

Afterwards every event whose ``publish_batch`` returned is in the topic exactly once (read
back by ``ce_id``), and the effect table holds exactly one row per distinct key.

The inbox store is shared by the three processes: one SQLite file (WAL; the store takes the
write lock with ``BEGIN IMMEDIATE``, so members serialise their polls' transactions), or one
PostgreSQL database. The SQLite variant also runs on the SASL_SSL cluster with ACLs on
(``secure_kafka_cluster``, every process authenticating as the cluster's admin).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from eventplatform.devkafka.local import LocalCluster
from eventplatform.errors import PublishError
from eventplatform.producer import EventProducer, Outgoing
from tests import waiting
from tests.integration.cluster.conftest import create_replicated
from tests.integration.cluster.proofs.support import (
    ClusterGroup,
    app_environment,
    client_settings,
    event_ids,
    patient,
    read_records,
)
from tests.integration.proofs.conftest import Names
from tests.integration.proofs.effects import EffectTable, explain
from tests.integration.proofs.processes import AppProcess, until
from tests.integration.proofs.streams import deposits

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 20_000
DUPLICATE_RATIO = 0.06
PARTITIONS = 6
MEMBERS = 3
BATCH = 500
KILL_LEADER_AFTER = 8  # batches (of 40)
RESTART_BEFORE = 32  # the batches from here on wait for the broker's return

#: The inbox settings per store (on top of the proof's), as the single-broker crash proof.
STORES: dict[str, dict[str, str]] = {
    "sqlite": {},
    "postgres": {"EVENTPLATFORM_CONSUMER__INBOX_TRANSACTIONS": "poll"},
}


@pytest.fixture(
    params=[
        pytest.param(("plaintext", "sqlite"), id="plaintext-sqlite"),
        pytest.param(
            ("plaintext", "postgres"), id="plaintext-postgres", marks=pytest.mark.postgres
        ),
        pytest.param(("sasl_ssl", "sqlite"), id="sasl_ssl-sqlite"),
    ]
)
def variant(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(the cluster's security, the inbox store)."""
    chosen: tuple[str, str] = request.param
    return chosen


@pytest.fixture
def cluster(request: pytest.FixtureRequest, variant: tuple[str, str]) -> LocalCluster:
    """The session's PLAINTEXT cluster, or its SASL_SSL one."""
    name = "kafka_cluster" if variant[0] == "plaintext" else "secure_kafka_cluster"
    chosen: LocalCluster = request.getfixturevalue(name)
    return chosen


@pytest.fixture
def effects(request: pytest.FixtureRequest, variant: tuple[str, str]) -> EffectTable:
    """The effect table, in the SQLite store's file or in the PostgreSQL store's database."""
    table: EffectTable = request.getfixturevalue(f"{variant[1]}_effects")
    return table


@pytest.mark.timeout(300)
async def test_publish_and_consume_across_a_leader_sigkill_apply_every_key_once(
    variant: tuple[str, str],
    cluster: LocalCluster,
    effects: EffectTable,
    names: Names,
    logs: Path,
    rng: random.Random,
    report: Callable[[str], None],
) -> None:
    security, store = variant
    started = time.monotonic()
    settings = client_settings(cluster, names)
    kafka = settings.kafka
    await create_replicated(kafka, names.topic, PARTITIONS)
    work = deposits(EVENTS, duplicate_ratio=DUPLICATE_RATIO, rng=rng)
    batches = [work.items[i : i + BATCH] for i in range(0, EVENTS, BATCH)]
    env = app_environment(
        cluster, names, effects.store_url, PROOF_EFFECTS_TABLE=effects.name, **STORES[store]
    )
    members = [
        AppProcess("inbox", instance_id=f"member-{n}", env=env, logs=logs)
        for n in range(1, MEMBERS + 1)
    ]
    returned_ids: list[str] = []
    returned_keys: set[str] = set()
    failed: list[Outgoing] = []
    leader_killed, broker_back = asyncio.Event(), asyncio.Event()
    sent = 0

    async def publish(producer: EventProducer) -> None:
        nonlocal sent
        for number, batch in enumerate(batches):
            if number == KILL_LEADER_AFTER:
                await leader_killed.wait()
            if number == RESTART_BEFORE:
                await broker_back.wait()
            try:
                results = await producer.publish_batch(batch, topic=names.topic)
            except PublishError:  # not retried: its events may or may not be in the topic
                failed.extend(batch)
            else:
                returned_ids.extend(result.event_id for result in results)
                returned_keys.update(item.idempotency_key or "" for item in batch)
            sent = number + 1

    async def applied_at_least(target: int) -> bool:
        return await effects.count() >= target

    async with (
        members[0],
        members[1],
        members[2],
        ClusterGroup(kafka, group=names.group, topic=names.topic, partitions=PARTITIONS) as group,
        EventProducer(settings=settings, source="/proofs") as producer,
    ):
        await asyncio.gather(*(member.start() for member in members))
        publisher = asyncio.create_task(publish(producer))
        try:
            await waiting.until(
                lambda: sent >= KILL_LEADER_AFTER or publisher.done(),
                within=60,
                what="the first batches",
            )
            partition = rng.randrange(PARTITIONS)
            leader = await cluster.leader(names.topic, partition)
            assert leader in cluster.node_ids, f"partition {partition} has no leader"
            await asyncio.to_thread(cluster.kill, leader)
            leader_killed.set()
            killed_at = time.monotonic()

            target = len(work.keys) // 4
            await until(
                lambda: applied_at_least(target),
                within=120,
                what=f"{target} keys applied",
                watch=tuple(members),
                interval=0.05,
            )
            victim = rng.choice(members)
            await victim.kill()
            at_member_kill = await effects.count()
            assert at_member_kill < len(work.keys), "the member was killed after the stream"
            await victim.start()

            async def moved() -> bool:
                return await cluster.leader(names.topic, partition) not in (None, leader)

            await until(
                patient(moved), within=60, what=f"a new leader of {partition}", interval=0.25
            )
            await waiting.until(
                lambda: sent >= RESTART_BEFORE or publisher.done(),
                within=120,
                what="publishing across the failover",
            )
            await asyncio.to_thread(cluster.restart, leader)
            restarted_after = time.monotonic() - killed_at
            broker_back.set()
            await publisher
        finally:
            leader_killed.set()
            broker_back.set()
            if not publisher.done():
                publisher.cancel()
                await asyncio.gather(publisher, return_exceptions=True)
        at_restart = await effects.count()

        expected = returned_keys

        async def drained() -> bool:
            return await group.lag() == 0 and await effects.count() >= len(expected)

        await until(
            patient(drained),
            within=120,
            what="the group to drain",
            watch=tuple(members),
            interval=0.2,
        )
        for member in members:
            code = await member.stop()
            assert code == 0, f"{member!r} did not stop cleanly:\n{member.tail()}"

    in_topic = event_ids(await read_records(kafka, names.topic, partitions=PARTITIONS))
    per_key = await effects.per_key()
    failed_keys = {item.idempotency_key or "" for item in failed} - returned_keys
    lost_events = [i for i in returned_ids if in_topic[i] == 0]
    doubled_events = [i for i, n in in_topic.items() if n > 1]
    lost_keys = [k for k in expected if per_key[k] == 0]
    doubled_keys = [k for k, n in per_key.items() if n > 1]
    unexpected = [k for k in per_key if k not in expected and k not in failed_keys]
    rows = sum(per_key.values())
    summary = (
        f"failover[{security}-{store}]: events={EVENTS} returned={len(returned_ids)} "
        f"failed_calls={len(failed) // BATCH} in_topic={sum(in_topic.values())} "
        f"distinct_keys={len(expected)} duplicates={work.duplicates} effect_rows={rows} "
        f"lost_events={len(lost_events)} duplicated_events={len(doubled_events)} "
        f"lost_keys={len(lost_keys)} duplicated_keys={len(doubled_keys)}; killed broker "
        f"{leader} (leader of partition {partition}), back after {restarted_after:.0f}s; "
        f"killed {victim.label} at {at_member_kill} rows; {at_restart} rows at the broker's "
        f"return; {time.monotonic() - started:.0f}s in all"
    )
    report(summary)
    assert not lost_events, f"{summary}: e.g. {lost_events[:5]}"
    assert not doubled_events, f"{summary}: e.g. {doubled_events[:5]}"
    offenders = [f"{k}: {per_key[k]} rows" for k in lost_keys + doubled_keys]
    assert not offenders, f"{summary}\n{await explain(effects, offenders)}"
    assert not unexpected, f"{summary}: unexpected keys {unexpected[:5]}"
    # Keys of failed calls are each applied at most once (checked above) and make up the rest.
    assert rows == len(expected) + sum(1 for k in failed_keys if per_key[k]), summary
    assert victim.kills == 1

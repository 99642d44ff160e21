"""Scaled services: three ``serve`` processes share a six-partition topic; members come and go.

Three inbox processes (static members, ``--instance-id``) consume one six-partition topic
(three replicas) in one group on the three-broker cluster, the SQLite inbox in one file shared
by all three. The proof scales the group up and down while deposits keep coming:

1. two members start and share the six partitions (3 each, read from the group's own
   description, DescribeGroups); the first half of the stream is published and both work;
2. a third member joins while they work: the group rebalances to 2 partitions each, and
   with the next quarter published all three apply events;
3. while the group works through that quarter, one member is stopped for good (SIGTERM: it
   finishes its poll and commits) and the last quarter is published; as a static member the
   leaver sent no LeaveGroup, so its partitions move when its session expires (6 s here),
   and the two left hold 3 each and drain the stream.

Each key is applied exactly once throughout: a rebalance moves partitions only between
polls (the revoking member finishes its poll and commits first), and the inbox holds the
line where a poll's effects committed but its offsets did not.

Assignment is **eager**: aiokafka (0.14) implements only the classic eager rebalance protocol
(every member revokes all its partitions at each rebalance and is assigned anew; its
assignors are range, round-robin, the default here, and sticky, none cooperative), and neither
KIP-429's incremental cooperative protocol nor KIP-848's broker-side ``consumer`` protocol.
The proof checks it: when the third member joins, the two others are assigned again too.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from eventplatform.devkafka.local import LocalCluster
from eventplatform.producer import EventProducer
from tests.integration.cluster.conftest import create_replicated
from tests.integration.cluster.proofs.support import (
    ClusterGroup,
    app_environment,
    client_settings,
    patient,
)
from tests.integration.proofs.conftest import Names
from tests.integration.proofs.effects import EffectTable, exactly_once, explain
from tests.integration.proofs.processes import AppProcess, until
from tests.integration.proofs.streams import deposits

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 3_000
PARTITIONS = 6


def assignments(process: AppProcess) -> int:
    """How often the process was assigned partitions (its log's ``assigned`` lines)."""
    log = process.tail(10_000)
    return sum(1 for line in log.splitlines() if "eventplatform.app: assigned " in line)


@pytest.mark.timeout(240)
async def test_three_members_share_six_partitions_and_scaling_applies_each_key_once(
    kafka_cluster: LocalCluster,
    sqlite_effects: EffectTable,
    names: Names,
    logs: Path,
    rng: random.Random,
    report: Callable[[str], None],
) -> None:
    cluster, effects = kafka_cluster, sqlite_effects
    started = time.monotonic()
    settings = client_settings(cluster, names)
    kafka = settings.kafka
    await create_replicated(kafka, names.topic, PARTITIONS)
    work = deposits(EVENTS, duplicate_ratio=0.05, rng=rng)
    # Half of it before the third member joins, so that it joins while the two work.
    first, second, third = work.items[:1500], work.items[1500:2250], work.items[2250:]
    env = app_environment(cluster, names, effects.store_url, PROOF_EFFECTS_TABLE=effects.name)
    a, b, c = (AppProcess("inbox", instance_id=f"scaled-{n}", env=env, logs=logs) for n in "abc")
    shares: dict[str, dict[str, list[int]]] = {}

    async with (
        a,
        b,
        c,
        ClusterGroup(kafka, group=names.group, topic=names.topic, partitions=PARTITIONS) as group,
        EventProducer(settings=settings, source="/proofs") as producer,
    ):

        def shared_by(members: tuple[AppProcess, ...], label: str) -> Callable[[], Awaitable[bool]]:
            each = PARTITIONS // len(members)

            async def check() -> bool:
                held = await group.assignment()
                if held is None or set(held) != {m.instance_id for m in members}:
                    return False
                if sorted(p for ps in held.values() for p in ps) != list(range(PARTITIONS)):
                    return False
                shares[label] = held
                return all(len(ps) == each for ps in held.values())

            return patient(check)

        await a.start()
        await b.start()
        await until(
            shared_by((a, b), "two"), within=60, what="a and b to share", watch=(a, b), interval=0.2
        )

        async def applied_by(members: tuple[AppProcess, ...]) -> bool:
            per_pid = await effects.per_pid()
            return all(per_pid[m.pid] >= 1 for m in members)

        await producer.publish_batch(first, topic=names.topic)
        await until(lambda: applied_by((a, b)), within=60, what="a and b to work", watch=(a, b))
        before_join = {m.instance_id: assignments(m) for m in (a, b)}
        await c.start()  # joins while a and b work through the first half
        at_join = await effects.count()
        await until(
            shared_by((a, b, c), "three"),
            within=60,
            what="three members with two partitions each",
            watch=(a, b, c),
            interval=0.2,
        )
        await producer.publish_batch(second, topic=names.topic)
        await until(
            lambda: applied_by((a, b, c)), within=60, what="all three to work", watch=(a, b, c)
        )
        # Eager: the members that were there were assigned anew (all revoked, all assigned).
        rejoined = {m.instance_id: assignments(m) - before_join[m.instance_id] for m in (a, b)}
        assert all(n >= 1 for n in rejoined.values()), rejoined

        leaving = rng.choice((a, b, c))
        staying = tuple(m for m in (a, b, c) if m is not leaving)
        assert await leaving.stop() == 0, f"{leaving!r} did not stop cleanly:\n{leaving.tail()}"
        at_leave = await effects.count()
        # Published after the leave: some of it is on the partitions the leaver held, which
        # stay unconsumed until its session expires and the two left take them over.
        await producer.publish_batch(third, topic=names.topic)
        await until(
            shared_by(staying, "after"),
            within=60,
            what="the two left to take over",
            watch=staying,
            interval=0.2,
        )

        async def drained() -> bool:
            return await group.lag() == 0 and await effects.count() >= len(work.keys)

        await until(patient(drained), within=90, what="draining", watch=staying, interval=0.2)
        for member in staying:
            assert await member.stop() == 0, f"{member!r} did not stop cleanly:\n{member.tail()}"

    rows, offenders = await exactly_once(effects, work.keys)
    per_pid = await effects.per_pid()
    summary = (
        f"scaled services: events={EVENTS} distinct_keys={len(work.keys)} rows={rows} "
        f"lost+duplicated={len(offenders)}; assignments: two={shares.get('two')} "
        f"three={shares.get('three')} after {leaving.instance_id} left={shares.get('after')}; "
        f"rows per process={sorted(per_pid.values())}; rows at c's join={at_join} of "
        f"{len(first)} events published, at the leave={at_leave} (of "
        f"{len(first) + len(second)} events published); "
        f"{time.monotonic() - started:.0f}s in all"
    )
    report(summary)
    assert not offenders, f"{summary}\n{await explain(effects, offenders)}"
    assert rows == len(work.keys), summary

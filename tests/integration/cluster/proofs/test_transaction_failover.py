"""Transactions across failover: the transaction coordinator's broker SIGKILLed mid-stream.

A relay app (``transactional=True``: each poll's receipts and its input offsets commit in one
Kafka transaction) turns deposits into receipts on the three-broker cluster; input and output
topics have three replicas and ``min.insync.replicas=2``, like the transaction log. The
broker that coordinates the relay's transactional id (``<group>.relay-1``; FindCoordinator)
is SIGKILLed while the relay works through its backlog, and more deposits are published after
it. The relay must find the new coordinator (the leader of its ``__transaction_state``
partition elsewhere) and go on; the transaction that was open at the kill is aborted or
committed as a whole, never half. The broker is then restarted and the relay drains the rest.

Its idempotency store is ``memory://``: exactly-once here rests on the Kafka transactions
alone. A ``read_committed`` reader of the receipts sees each deposit's receipt exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from eventplatform.devkafka.local import LocalCluster
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.serde import AvroDeserializer
from tests.integration.cluster.conftest import create_replicated
from tests.integration.cluster.proofs.support import (
    ClusterGroup,
    app_environment,
    client_settings,
    patient,
    read_records,
)
from tests.integration.proofs.conftest import Names
from tests.integration.proofs.events import Receipt
from tests.integration.proofs.processes import AppProcess, until
from tests.integration.proofs.streams import deposits

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 4_000
PARTITIONS = 4


@pytest.mark.timeout(240)
async def test_a_relay_rides_out_the_sigkill_of_its_transaction_coordinator(
    kafka_cluster: LocalCluster,
    names: Names,
    logs: Path,
    rng: random.Random,
    report: Callable[[str], None],
) -> None:
    cluster = kafka_cluster
    started = time.monotonic()
    settings = client_settings(cluster, names)
    kafka = settings.kafka
    await create_replicated(kafka, names.topic, PARTITIONS)
    await create_replicated(kafka, names.output, PARTITIONS)
    before_kill, after_kill = deposits(EVENTS, duplicate_ratio=0.0, rng=rng).chunks(2)
    env = app_environment(cluster, names, "memory://")
    relay = AppProcess("relay", instance_id="relay-1", env=env, logs=logs)
    transactional_id = f"{names.group}.relay-1"
    inputs: list[str] = []

    async def publish(producer: EventProducer, chunk: list[Outgoing]) -> None:
        results = await producer.publish_batch(chunk, topic=names.topic)
        inputs.extend(result.event_id for result in results)

    async with (
        relay,
        ClusterGroup(kafka, group=names.group, topic=names.topic, partitions=PARTITIONS) as group,
        EventProducer(settings=settings, source="/proofs") as producer,
    ):
        await publish(producer, before_kill)
        await relay.start()
        coordinator = await cluster.transaction_coordinator(transactional_id)
        # Offsets commit in the poll's transaction: committed input is relayed input.
        target = max(1, int(rng.uniform(0.15, 0.5) * len(inputs)))

        async def consumed_at_least(count: int) -> bool:
            return await group.consumed() >= count

        await until(
            patient(lambda: consumed_at_least(target)),
            within=60,
            what="the relay's progress",
            watch=(relay,),
            interval=0.1,
        )
        await asyncio.sleep(rng.uniform(0, 0.05))  # anywhere in the next poll's transaction
        at_kill = await group.consumed()
        assert at_kill < len(inputs), "the kill did not land mid-stream"
        await asyncio.to_thread(cluster.kill, coordinator)
        killed_at = time.monotonic()
        await publish(producer, after_kill)

        async def moved() -> bool:
            return await cluster.transaction_coordinator(transactional_id) != coordinator

        await until(patient(moved), within=60, what="a new coordinator", interval=0.25)
        # Past every deposit published before the kill: a transaction that committed input
        # published after it (while the coordinator is moving, offsets may read as 0).
        await until(
            patient(lambda: consumed_at_least(len(before_kill) + 1)),
            within=90,
            what="the relay to commit a transaction after the failover",
            watch=(relay,),
            interval=0.1,
        )
        resumed_after = time.monotonic() - killed_at
        # The broker comes back while the relay drains (the fixture restarts it anyway).
        restart = asyncio.create_task(asyncio.to_thread(cluster.restart, coordinator))

        async def drained() -> bool:
            return await group.lag() == 0

        await until(
            patient(drained), within=90, what="the relay to drain", watch=(relay,), interval=0.2
        )
        await restart
        code = await relay.stop()
        assert code == 0, f"the relay did not stop cleanly:\n{relay.tail()}"

        committed = await read_records(
            kafka, names.output, partitions=PARTITIONS, isolation_level="read_committed"
        )
        everything = await read_records(kafka, names.output, partitions=PARTITIONS)
        deserializer = AvroDeserializer(producer.registry)
        receipts = Counter(
            [(await deserializer.deserialize(r.value, Receipt)).input_id for r in committed]
        )
    lost = [event_id for event_id in inputs if receipts[event_id] == 0]
    doubled = {event_id: n for event_id, n in receipts.items() if n > 1}
    unexpected = set(receipts) - set(inputs)
    summary = (
        f"transactions across failover: events={EVENTS} "
        f"receipts(read_committed)={len(committed)} "
        f"aborted(read_uncommitted extra)={len(everything) - len(committed)} "
        f"lost={len(lost)} duplicated={len(doubled)}; killed coordinator {coordinator} at "
        f"{at_kill} of {len(before_kill)} consumed, first commit of later input "
        f"{resumed_after:.1f}s after it; {time.monotonic() - started:.0f}s in all"
    )
    report(summary)
    assert not lost, f"{summary}: e.g. {lost[:10]}"
    assert not doubled, f"{summary}: {list(doubled.items())[:10]}"
    assert not unexpected, f"{summary}: receipts of unknown deposits {sorted(unexpected)[:10]}"
    assert len(committed) == EVENTS, summary

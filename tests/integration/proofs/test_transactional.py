"""Transactional proof: consume-transform-produce survives a SIGKILL and fences a zombie.

A relay app (``transactional=True``: each poll's receipts and its input offsets commit in one
Kafka transaction, KIP-98) turns deposits into receipts that carry the deposit's ``ce_id``.
Its idempotency store is ``memory://``, which a restart forgets: exactly-once here rests on
the Kafka transactions alone. Three incarnations share the instance id ``relay-1``, hence the
transactional id ``<group>.relay-1``:

1. SIGKILLed at a random point of its backlog; its open transaction is aborted when
2. the next incarnation starts with the same transactional id (``InitProducerId`` bumps the
   epoch). That one is then frozen (SIGSTOP) mid-stream: a zombie that still believes it
   owns its partitions and its open transaction.
3. The third takes over (after the zombie's session expired) and fences the zombie; thawed,
   the zombie's next transactional request is refused and it exits with an error, without
   having committed anything. The third drains the topic.

A ``read_committed`` reader of the receipts then sees each deposit's receipt exactly once,
while a ``read_uncommitted`` reader also sees the aborted attempts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from eventplatform.producer import EventProducer, Outgoing
from eventplatform.serde import AvroDeserializer
from tests.integration.proofs.conftest import Names, app_environment
from tests.integration.proofs.events import Receipt
from tests.integration.proofs.processes import AppProcess, until
from tests.integration.proofs.streams import GroupProgress, deposits, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 6_000
PARTITIONS = 4


@pytest.mark.timeout(180)
async def test_a_killed_relay_and_a_fenced_zombie_leave_each_receipt_once(
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
    await create_topic(names.output, partitions=PARTITIONS)
    slices = deposits(EVENTS, duplicate_ratio=0.0, rng=rng).chunks(3)
    env = app_environment(kafka_bootstrap_servers, names, "memory://")
    relay = AppProcess("relay", instance_id="relay-1", env=env, logs=logs)
    successor = AppProcess("relay", instance_id="relay-1", env=env, logs=logs, label="successor")
    group = GroupProgress(
        bootstrap_servers=kafka_bootstrap_servers,
        admin=kafka_admin,
        group=names.group,
        topic=names.topic,
        partitions=PARTITIONS,
    )
    inputs: list[str] = []

    async def publish(chunk: list[Outgoing]) -> None:
        results = await producer.publish_batch(chunk, topic=names.topic)
        inputs.extend(result.event_id for result in results)

    async def consumed() -> int:
        # Offsets commit in the poll's transaction: committed input is relayed input.
        return sum((await group.committed()).values())

    async def random_point_of_backlog(process: AppProcess, what: str) -> tuple[int, int]:
        before = await consumed()
        target = before + max(1, int(rng.uniform(0.1, 0.6) * (len(inputs) - before)))

        async def reached() -> bool:
            return await consumed() >= target

        await until(reached, within=60, what=what, watch=(process,))
        await asyncio.sleep(rng.uniform(0, 0.05))
        return before, target

    async with relay, successor, group:
        await publish(slices[0])
        await relay.start()
        before, _ = await random_point_of_backlog(relay, "the first incarnation's progress")
        await relay.kill()
        after_kill = await consumed()
        assert before < after_kill < len(inputs), "the kill did not land mid-stream"

        await publish(slices[1])
        await relay.start()  # same transactional id: aborts what the killed one left open
        await random_point_of_backlog(relay, "the second incarnation's progress")
        relay.freeze()
        at_freeze = await consumed()
        assert at_freeze < len(inputs), "the freeze did not land mid-stream"

        await publish(slices[2])
        await successor.start()  # fences the frozen one

        async def successor_working() -> bool:
            return await consumed() > at_freeze

        await until(successor_working, within=60, what="the successor", watch=(successor,))
        relay.thaw()
        zombie_status = await relay.exit_status(within=60)
        zombie_log = relay.tail(200)
        assert zombie_status not in (0, -9), f"the zombie was not refused:\n{zombie_log}"
        assert "fenced" in zombie_log.lower(), zombie_log

        async def drained() -> bool:
            return await group.lag() == 0

        await until(drained, within=90, what="the successor to drain", watch=(successor,))
        code = await successor.stop()
        assert code == 0, f"the successor did not stop cleanly:\n{successor.tail()}"

    committed = await read_topic(kafka_bootstrap_servers, names.output, partitions=PARTITIONS)
    everything = await read_topic(
        kafka_bootstrap_servers,
        names.output,
        partitions=PARTITIONS,
        isolation_level="read_uncommitted",
    )
    deserializer = AvroDeserializer(producer.registry)
    receipts = Counter(
        [(await deserializer.deserialize(r.value, Receipt)).input_id for r in committed]
    )
    lost = [event_id for event_id in inputs if receipts[event_id] == 0]
    doubled = {event_id: n for event_id, n in receipts.items() if n > 1}
    unexpected = set(receipts) - set(inputs)
    report(
        f"transactional: events={EVENTS} receipts(read_committed)={len(committed)} "
        f"aborted_records(read_uncommitted extra)={len(everything) - len(committed)} "
        f"kills=1 zombie_exit={zombie_status} lost={len(lost)} duplicated={len(doubled)} "
        f"in {time.monotonic() - started:.0f}s"
    )
    assert not lost, f"{len(lost)} deposits without a receipt, e.g. {lost[:10]}"
    assert not doubled, (
        f"{len(doubled)} deposits with several receipts: {list(doubled.items())[:10]}"
    )
    assert not unexpected, f"receipts of unknown deposits: {sorted(unexpected)[:10]}"
    assert len(committed) == EVENTS

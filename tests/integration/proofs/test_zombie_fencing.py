"""KIP-447 proof: an expelled member's transaction is refused, though its transactional id
is its own.

Two relay instances with *different* instance ids (so different transactional ids: the KIP-98
fencing of the transactional proof does not apply) share a topic. The first is frozen
(SIGSTOP) in the middle of a poll's transaction, longer than its session timeout; the group
expels it and the second takes all partitions over and relays everything, including what the
frozen one had in flight. Thawed, the zombie goes on with its poll and tries to commit it: its
``TxnOffsetCommit`` carries a generation the group has left behind, the coordinator refuses it,
and the transaction is aborted. A ``read_committed`` reader sees each deposit's receipt once;
without KIP-447 the zombie's transaction would commit and duplicate its receipts.
"""

from __future__ import annotations

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

EVENTS = 3_000
PARTITIONS = 2


@pytest.mark.timeout(240)
async def test_an_expelled_members_transaction_is_refused_and_aborted(
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
    work = deposits(EVENTS, duplicate_ratio=0.0, rng=rng)
    # 4 ms of I/O per deposit: a poll of 250 takes a second, so the freeze lands inside one.
    env = app_environment(kafka_bootstrap_servers, names, "memory://", PROOF_HANDLER_DELAY="0.004")
    zombie = AppProcess("relay", instance_id="relay-a", env=env, logs=logs)
    heir = AppProcess("relay", instance_id="relay-b", env=env, logs=logs)
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
        return sum((await group.committed()).values())

    async with zombie, heir, group:
        await publish(work.items)
        await zombie.start()

        async def progressed() -> bool:
            return await consumed() >= rng.randint(300, 900)

        await until(progressed, within=60, what="the first relay's progress", watch=(zombie,))
        zombie.freeze()
        at_freeze = await consumed()
        await heir.start()  # its join expels the frozen member after the session timeout

        async def drained() -> bool:
            return await group.lag() == 0

        await until(drained, within=120, what="the heir to relay everything", watch=(heir,))
        zombie.thaw()

        async def refused() -> bool:
            return "refused the offsets" in zombie.tail(400)

        await until(refused, within=60, what="the zombie's commit to be refused", watch=(zombie,))
        # Back in the group as a member of a new generation, it stops cleanly like the heir
        # (a killed one would leave a transaction open and hold read_committed readers back).
        zombie_log = zombie.tail(400)
        assert await zombie.stop() == 0, zombie.tail()
        assert await heir.stop() == 0, heir.tail()

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
    report(
        f"zombie fencing (KIP-447): events={EVENTS} committed at freeze={at_freeze} "
        f"receipts(read_committed)={len(committed)} aborted={len(everything) - len(committed)} "
        f"lost={len(lost)} duplicated={len(doubled)} in {time.monotonic() - started:.0f}s"
    )
    assert "Traceback" not in zombie_log, zombie_log
    assert "(KIP-447)" in zombie_log, zombie_log
    assert len(everything) > len(committed), "the zombie's aborted receipts are not there"
    assert not lost, f"{len(lost)} deposits without a receipt, e.g. {lost[:10]}"
    assert not doubled, f"{len(doubled)} deposits with several receipts: {list(doubled)[:10]}"
    assert len(committed) == EVENTS

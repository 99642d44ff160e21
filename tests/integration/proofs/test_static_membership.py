"""Static membership (KIP-345): a restart takes its partitions back at once; a twin is fenced.

The app processes run with a 45 s session timeout. A dynamic member SIGKILLed without a
LeaveGroup keeps its partitions until that timeout expires, and a newcomer's join waits for
the rebalance it triggers; a static member's next incarnation (same ``--instance-id``) is
handed the same partitions on its first join. The proof waits for the restarted instance's
work with a deadline shorter than the session timeout, which only static membership meets,
and checks that the other member was not rebalanced at all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from eventplatform.producer import EventProducer
from tests.integration.proofs.conftest import Names, app_environment
from tests.integration.proofs.effects import EffectTable, exactly_once, explain
from tests.integration.proofs.processes import AppProcess, until
from tests.integration.proofs.streams import deposits

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4
SESSION_TIMEOUT_S = 45


def static_environment(
    kafka_bootstrap_servers: str, names: Names, effects: EffectTable
) -> dict[str, str]:
    env = app_environment(
        kafka_bootstrap_servers, names, effects.store_url, PROOF_EFFECTS_TABLE=effects.name
    )
    env["EVENTPLATFORM_CONSUMER__SESSION_TIMEOUT_MS"] = str(SESSION_TIMEOUT_S * 1000)
    env["EVENTPLATFORM_CONSUMER__HEARTBEAT_INTERVAL_MS"] = "1000"
    return env


def assignments(log: str) -> int:
    return sum(1 for line in log.splitlines() if "eventplatform.app: assigned " in line)


@pytest.mark.timeout(240)
async def test_a_sigkilled_static_member_takes_its_partitions_back_before_its_session_expires(
    sqlite_effects: EffectTable,
    names: Names,
    producer: EventProducer,
    create_topic: Callable[..., Awaitable[str]],
    kafka_bootstrap_servers: str,
    logs: Path,
    rng: random.Random,
    report: Callable[[str], None],
) -> None:
    effects = sqlite_effects
    await create_topic(names.topic, partitions=PARTITIONS)
    work = deposits(2_000, duplicate_ratio=0.05, rng=rng)
    first, second = work.chunks(2)
    env = static_environment(kafka_bootstrap_servers, names, effects)
    restarted = AppProcess("inbox", instance_id="static-a", env=env, logs=logs)
    bystander = AppProcess("inbox", instance_id="static-b", env=env, logs=logs)

    async with restarted, bystander:
        await producer.publish_batch(first, topic=names.topic)
        await restarted.start()
        await bystander.start()
        first_keys = {item.idempotency_key for item in first}

        async def first_applied() -> bool:
            return await effects.count() >= len(first_keys)

        await until(first_applied, within=60, what="the first half", watch=(restarted, bystander))
        await restarted.kill()
        await producer.publish_batch(second, topic=names.topic)
        killed_at = time.monotonic()
        await restarted.start()

        async def all_applied() -> bool:
            return await effects.count() >= len(work.keys)

        # Shorter than the session timeout: the killed member's partitions were not waited
        # out, they went straight to its next incarnation.
        await until(
            all_applied,
            within=SESSION_TIMEOUT_S - 15,
            what="the restarted instance to resume its partitions",
            watch=(restarted, bystander),
        )
        resumed = time.monotonic() - killed_at
        # The restart moved nothing: the bystander was assigned once, at its own start.
        bystander_log = bystander.tail(400)
        assert assignments(bystander_log) == 1, bystander_log
        assert await restarted.stop() == 0, restarted.tail()
        assert await bystander.stop() == 0, bystander.tail()

    rows, offenders = await exactly_once(effects, work.keys)
    assert not offenders, await explain(effects, offenders)
    report(
        f"static restart: keys={len(work.keys)} rows={rows} all applied {resumed:.1f}s after "
        f"the restart began (session timeout {SESSION_TIMEOUT_S}s)"
    )


@pytest.mark.timeout(240)
async def test_a_second_process_with_the_same_instance_id_fences_the_first(
    sqlite_effects: EffectTable,
    names: Names,
    producer: EventProducer,
    create_topic: Callable[..., Awaitable[str]],
    kafka_bootstrap_servers: str,
    logs: Path,
    rng: random.Random,
) -> None:
    effects = sqlite_effects
    await create_topic(names.topic, partitions=PARTITIONS)
    work = deposits(1_000, duplicate_ratio=0.05, rng=rng)
    first, second = work.chunks(2)
    env = static_environment(kafka_bootstrap_servers, names, effects)
    original = AppProcess("inbox", instance_id="twin", env=env, logs=logs)
    twin = AppProcess("inbox", instance_id="twin", env=env, logs=logs, label="twin-2")

    async with original, twin:
        await producer.publish_batch(first, topic=names.topic)
        await original.start()
        await twin.start()

        async def one_stopped() -> bool:
            return not (original.alive and twin.alive)

        await until(one_stopped, within=60, what="one of the twins to stop")
        loser, winner = (original, twin) if not original.alive else (twin, original)
        code = await loser.exit_status(within=5)
        loser_log = loser.tail(200)
        assert code not in (0, -9), loser_log
        assert "another process joined consumer group" in loser_log, loser_log
        assert "'twin'" in loser_log, loser_log
        assert "Traceback" not in loser_log, loser_log

        await producer.publish_batch(second, topic=names.topic)

        async def all_applied() -> bool:
            return await effects.count() >= len(work.keys)

        await until(all_applied, within=60, what="the winner to apply everything", watch=(winner,))
        assert winner.alive
        assert await winner.stop() == 0, winner.tail()

    _, offenders = await exactly_once(effects, work.keys)
    assert not offenders, await explain(effects, offenders)

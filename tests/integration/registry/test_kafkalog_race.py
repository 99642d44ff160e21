"""Two OS processes registering concurrently on one Kafka-log registry end in identical states.

Each process (``_race_worker.py``) registers, in the same subjects at the same time, schemas
both of them register and schemas only it registers, changes subject and global levels, tries
an incompatible schema and deletes a version. Their commands interleave in the log and some are
void; afterwards both processes, and a fresh replay of the raw log, must hold the same state,
with one id per distinct schema and gap-free versions.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from eventplatform.registry.commands import MalformedCommand, decode
from eventplatform.registry.state import RegistryState, Voided
from tests.integration.registry.lineworker import STEP_TIMEOUT, LineWorker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKER = Path(__file__).with_name("_race_worker.py")


async def spawn(servers: str, topic: str, number: int) -> LineWorker:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        servers,
        topic,
        str(number),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return LineWorker(process, number)


async def race(servers: str, topic: str) -> tuple[list[list[list[Any]]], list[dict[str, Any]]]:
    # One worker first, so that both do not race to create the topic (also safe, but noisy).
    workers = [await spawn(servers, topic, 0)]
    try:
        await workers[0].expect("ready")
        workers.append(await spawn(servers, topic, 1))
        await workers[1].expect("ready")
        for worker in workers:
            worker.send("go")
        results = [json.loads(await worker.expect("done ")) for worker in workers]
        for worker in workers:
            worker.send("dump")
        snapshots = [json.loads(await worker.expect("")) for worker in workers]
        for worker in workers:
            assert await asyncio.wait_for(worker.process.wait(), STEP_TIMEOUT) == 0
        return results, snapshots
    finally:
        for worker in workers:
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()


async def replay_raw_log(servers: str, topic: str) -> tuple[RegistryState, int]:
    """Replay the topic with nothing but the state machine; count the void commands."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        state, voids = RegistryState(), 0
        while state.position < end:
            for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                try:
                    result = state.apply(record.offset, decode(record.value))
                except MalformedCommand as exc:
                    result = state.skip(record.offset, str(exc))
                voids += isinstance(result, Voided)
        return state, voids
    finally:
        await consumer.stop()


async def test_two_processes_racing_reach_the_same_state(
    kafka_bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    # The workers start together and collide within a few writes; should a busy machine
    # serialise them completely (no void command at all), race again on a fresh topic.
    voids = 0
    for attempt in range(3):
        topic = unique_topic(f"schemas{attempt}")
        results, (first, second) = await race(kafka_bootstrap_servers, topic)
        assert first == second
        replayed, voids = await replay_raw_log(kafka_bootstrap_servers, topic)
        assert replayed.snapshot() == first
        check_invariants(results, first)
        if voids:
            break
    assert voids > 0, "the two workers never raced"


def check_invariants(results: list[list[list[Any]]], first: dict[str, Any]) -> None:
    """What must hold of the shared state, whatever the interleaving."""

    # Every answer a worker got is what the shared state holds.
    for worker_results in results:
        for outcome in worker_results:
            if outcome[0] == "registered":
                _, subject, version, schema_id = outcome
                assert [version, schema_id] in [entry[:2] for entry in first["subjects"][subject]]
    # One id per distinct schema, whoever registered it first.
    fingerprints = Counter(s["normalized_fingerprint"] for s in first["schemas"].values())
    assert max(fingerprints.values()) == 1
    for subject, versions in first["subjects"].items():
        assert [v[0] for v in versions] == list(range(1, len(versions) + 1)), subject
        # A schema registered by both workers became one version, not two.
        live_ids = [v[1] for v in versions if not v[2]]
        assert len(live_ids) == len(set(live_ids)), subject
        texts = [first["schemas"][str(v[1])]["schema"] for v in versions]
        assert any('"w0_' in t for t in texts), subject
        assert any('"w1_' in t for t in texts), subject
    # The incompatible schema was refused by every attempt, in both processes.
    assert all(
        outcome[0] != "registered" or '"must"' not in first["schemas"][str(outcome[3])]["schema"]
        for worker_results in results
        for outcome in worker_results
    )

"""Registry across failover: two processes registering the same schemas while a broker dies.

Two OS processes (:mod:`.registry_worker`), each with its own ``KafkaLogRegistry`` on one log
topic of the three-broker cluster (three replicas, ``min.insync.replicas=2``), register the
same schemas in four subjects (worker 1 in the reverse order, so their commands interleave
and some are void and decided again): three compatible versions each and an incompatible
one (phase A); then the leader of the log's partition is SIGKILLed and, while it is down,
three more versions each, the incompatible one again, compatibility checks, and the first
version again (phase B). The broker is restarted before the final comparison.

Both processes must have got identical answers for every step (ids, versions, refusals,
check results), versions gap-free from 1, one id per distinct schema, and identical
snapshots of the whole registry state.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from eventplatform.devkafka.local import LocalCluster
from tests.integration.cluster.proofs.registry_worker import SUBJECTS, VERSIONS, plan
from tests.integration.proofs.processes import ROOT, child_environment
from tests.integration.registry.lineworker import STEP_TIMEOUT, LineWorker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Worker(LineWorker):
    """A worker process and its line protocol (see :mod:`.registry_worker`)."""

    @classmethod
    async def spawn(cls, env: dict[str, str], number: int) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.cluster.proofs.registry_worker",
            str(number),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process, number)

    async def phase(self, name: str) -> list[list[Any]]:
        self.send(f"go {name}")
        results: list[list[Any]] = json.loads(await self.expect("done "))
        return results

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.communicate()


@pytest.mark.timeout(240)
async def test_two_processes_registering_across_a_leader_sigkill_agree_on_everything(
    kafka_cluster: LocalCluster,
    unique_topic: Callable[[str], str],
    report: Callable[[str], None],
) -> None:
    cluster = kafka_cluster
    started = time.monotonic()
    topic = unique_topic("schemas")
    env = child_environment(**cluster.env(), EVENTPLATFORM_REGISTRY__TOPIC=topic)
    workers: list[Worker] = []
    try:
        # One worker first, so that both do not race to create the topic (safe, but noisy).
        for number in (0, 1):
            workers.append(await Worker.spawn(env, number))
            await workers[-1].expect("ready")
        phase_a = await asyncio.gather(*(w.phase("A") for w in workers))

        leader = await cluster.leader(topic, 0)
        assert leader in cluster.node_ids, "the registry log has no leader"
        await asyncio.to_thread(cluster.kill, leader)
        killed_at = time.monotonic()
        phase_b = await asyncio.gather(*(w.phase("B") for w in workers))
        phase_b_took = time.monotonic() - killed_at
        restart = asyncio.create_task(asyncio.to_thread(cluster.restart, leader))

        snapshots = []
        for worker in workers:
            worker.send("dump")
            snapshots.append(json.loads(await worker.expect("")))
        for worker in workers:
            assert await asyncio.wait_for(worker.process.wait(), STEP_TIMEOUT) == 0
        await restart
    finally:
        for worker in workers:
            await worker.close()

    answers = [
        {step: outcome for step, *outcome in a + b} for a, b in zip(phase_a, phase_b, strict=True)
    ]
    differing = sorted(s for s in answers[0] if answers[0][s] != answers[1].get(s))
    decisions = Counter(outcome[0] for outcome in answers[0].values())
    summary = (
        f"registry across failover: steps={len(answers[0])} per worker, "
        f"differing={len(differing)}, "
        f"decisions={dict(decisions)}; killed broker {leader} (log leader), phase B took "
        f"{phase_b_took:.1f}s; {time.monotonic() - started:.0f}s in all"
    )
    report(summary)
    assert len(answers[0]) == len(answers[1]) == len(plan("A")) + len(plan("B")) + len(SUBJECTS)
    assert not differing, f"{summary}: {[(s, answers[0][s], answers[1].get(s)) for s in differing]}"
    assert snapshots[0] == snapshots[1], summary

    first = snapshots[0]
    fingerprints = Counter(s["normalized_fingerprint"] for s in first["schemas"].values())
    assert max(fingerprints.values()) == 1, "a schema got two ids"
    for subject in SUBJECTS:
        versions = first["subjects"][subject]
        assert [v[0] for v in versions] == list(range(1, VERSIONS + 1)), (subject, versions)
        registered = [answers[0][f"{subject}/register/{n}"] for n in range(1, VERSIONS + 1)]
        assert [r[:2] for r in registered] == [["registered", n] for n in range(1, VERSIONS + 1)]
        assert [r[2] for r in registered] == [v[1] for v in versions], subject
        assert answers[0][f"{subject}/incompatible/{VERSIONS // 2}"] == ["refused"]
        assert answers[0][f"{subject}/incompatible/{VERSIONS}"] == ["refused"]
        assert answers[0][f"{subject}/check/{VERSIONS + 1}"] == ["compatible"]
        assert answers[0][f"{subject}/check/{VERSIONS + 1}/required"] == ["incompatible"]
        assert answers[0][f"{subject}/again/1"] == registered[0], subject

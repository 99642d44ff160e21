"""Recovery: how soon a restarted ``eventplatform serve`` instance handles events again.

Two ``serve`` processes share a 4-partition topic that a publisher feeds with one
``OrderPlaced`` every 5 ms. One of them is restarted — SIGKILLed (a crash: no LeaveGroup, no
commit) or SIGTERMed (graceful) — and a new process with the same instance id is spawned at
once. Measured: seconds from that spawn to the first event the new process handles (its
handler appends ``pid time`` lines to a file), so Python's start-up is part of the figure.

* ours: static membership (``--instance-id``, KIP-345): the coordinator hands the new process
  its predecessor's partitions on its first join.
* reference: the same app without an instance id (dynamic membership, eventplatform before
  issue 13): after a SIGKILL the dead member holds its partitions until its session times
  out (10 s); after a SIGTERM it leaves and the group rebalances twice.

The goal is absolute: a median of at most 2 s for both kinds of restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.broker import create_topic, kafka, unique
from benchmarks.harness import Comparison, Result, print_results
from eventplatform.demo.events import OrderPlaced
from eventplatform.producer import EventProducer
from eventplatform.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "benchmarks.recovery_service:build"
PARTITIONS = 4
#: Seconds between published events.
PACE = 0.005
#: Goal: the median restart-to-first-event time, in seconds.
GOAL_SECONDS = 2.0


class Member:
    """One ``serve`` process (restartable) whose handled events land in ``effects``."""

    def __init__(self, *, env: dict[str, str], instance_id: str | None, effects: Path) -> None:
        self.env = env | {"RECOVERY_EFFECTS": str(effects)}
        self.instance_id = instance_id
        self.effects = effects
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> float:
        """Spawn; return the spawn time (``time.time()``)."""
        args = ["-m", "eventplatform", "serve", SERVICE, "--factory", "--log-level", "WARNING"]
        if self.instance_id is not None:
            args += ["--instance-id", self.instance_id]
        spawned = time.time()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return spawned

    async def end(self, how: signal.Signals) -> None:
        """Send ``how`` and reap the process."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(how)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            await process.wait()

    def first_handled_after(self, pid: int) -> float | None:
        """The time of the first event the process ``pid`` handled, if any."""
        if not self.effects.exists():
            return None
        for line in self.effects.read_text().splitlines():
            who, _, when = line.partition(" ")
            if who == str(pid) and when:
                return float(when)
        return None


async def wait_first(member: Member, *, within: float = 60.0) -> float:
    """Seconds-since-epoch of the current process's first handled event."""
    assert member.process is not None
    pid = member.process.pid
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        when = member.first_handled_after(pid)
        if when is not None:
            return when
        await asyncio.sleep(0.01)
    raise RuntimeError(f"process {pid} handled nothing within {within:.0f}s")


async def publish_forever(producer: EventProducer, topic: str, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        event = OrderPlaced.model_validate(_ORDER | {"customer_id": f"c-{n % 64}"})
        await producer.publish(event, topic=topic, key=f"c-{n % 64}")
        n += 1
        await asyncio.sleep(PACE)


_ORDER: dict[str, Any] = {
    "order_id": "7d0c4c1e-2b8a-4f6e-9d3a-5b1c2e4f6a80",
    "customer_id": "c-0",
    "items": [{"sku": "TEA-1", "quantity": 2, "unit_price": "4.50"}],
    "total": "9.00",
    "currency": "EUR",
    "placed_at": "2026-05-01T12:00:00Z",
}


async def one_round(servers: str, *, static: bool, how: signal.Signals, tmp: Path) -> float:
    """Seconds from the restart's spawn to its first handled event."""
    topic = unique("recovery")
    await create_topic(servers, topic, partitions=PARTITIONS)
    group = unique("recovery-group")
    registry_topic = unique("recovery-registry")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")} | {
        "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": servers,
        "EVENTPLATFORM_REGISTRY__TOPIC": registry_topic,
        "EVENTPLATFORM_CONSUMER__GROUP_ID": group,
        "EVENTPLATFORM_IDEMPOTENCY__STORE": "memory://",
        "RECOVERY_TOPIC": topic,
        "PYTHONPATH": str(ROOT),
    }
    effects = tmp / f"{group}.effects"
    restarted = Member(env=env, instance_id="member-a" if static else None, effects=effects)
    bystander = Member(env=env, instance_id="member-b" if static else None, effects=effects)
    settings = load_settings(
        kafka={"bootstrap_servers": servers}, registry={"topic": registry_topic}
    )
    stop = asyncio.Event()
    async with EventProducer(settings=settings, source="/benchmarks") as producer:
        publisher = asyncio.create_task(publish_forever(producer, topic, stop))
        try:
            await restarted.start()
            await bystander.start()
            await wait_first(restarted)
            await wait_first(bystander)
            await restarted.end(how)
            spawned = await restarted.start()
            first = await wait_first(restarted)
        finally:
            stop.set()
            await publisher
            await restarted.end(signal.SIGTERM)
            await bystander.end(signal.SIGTERM)
    return first - spawned


async def run(servers: str, *, rounds: int = 3) -> list[Comparison]:
    """Alternate static and dynamic rounds per kind of restart; print the comparisons."""
    kinds = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM}
    ours = {k: Result(f"static, {k}", unit="s", scale=1) for k in kinds}
    reference = {k: Result(f"dynamic membership, {k}", unit="s", scale=1) for k in kinds}
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        for _ in range(rounds):
            for kind, how in kinds.items():
                ours[kind].rounds.append(
                    await one_round(servers, static=True, how=how, tmp=Path(tmp))
                )
                reference[kind].rounds.append(
                    await one_round(servers, static=False, how=how, tmp=Path(tmp))
                )
    comparisons = [
        Comparison(f"restart after {kind} → first handled event", ours[kind], reference[kind])
        for kind in kinds
    ]
    notes = [
        f"{kind}: static {', '.join(f'{v:.2f}' for v in ours[kind].rounds)} s; dynamic "
        f"{', '.join(f'{v:.2f}' for v in reference[kind].rounds)} s; goal median ≤ "
        f"{GOAL_SECONDS:.0f} s: {'✓' if ours[kind].median <= GOAL_SECONDS else '✗'}"
        for kind in kinds
    ]
    notes.append(
        "from the spawn of the new process (Python start-up included) to its first handled "
        "event; session timeout 10 s (default); one event every 5 ms on 4 partitions"
    )
    print_results(
        f"recovery: two serve processes, one restarted; median of {rounds} rounds",
        comparisons,
        notes,
    )
    return comparisons


async def _main() -> Any:
    with kafka() as servers:
        return await run(servers)


def main() -> Any:
    """Run the recovery benchmark against a provisioned broker."""
    return asyncio.run(_main())


if __name__ == "__main__":
    main()

"""Producer proof: publishes across a broker stop and restart; what returned is there once.

A broker of this module's own (:class:`~eventplatform.devkafka.local.LocalKafka`, not the
session's) is halted mid-stream, by SIGTERM (a controlled shutdown) or by SIGKILL (a crash),
and resumed on the same port with the same data a few seconds later. Two publishers run
through it side by side: one awaiting ``publish()`` per event, one sending ``publish_batch()``
of 25. A call that raises (``PublishTimeout`` after the delivery timeout, or ``PublishError``)
is not retried with the same event ids: the loop goes on with new ones, as a caller that
cannot know whether the records landed would. Afterwards every event id whose call returned is
in the topic exactly once (``acks=all`` and the idempotent producer, KIP-98); ids whose call
raised may or may not have landed (the records may still have been in flight), and are
counted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from eventplatform.devkafka.local import LocalKafka
from eventplatform.errors import PublishError
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.settings import load_settings
from tests.integration.proofs.events import Deposit
from tests.integration.proofs.streams import read_topic
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 2
BATCH = 25
OUTAGE = 3.0  # seconds the broker stays down once halted
DELIVERY_TIMEOUT = 4.0  # so that calls caught by the outage raise instead of waiting it out


class OwnKafka:
    """A broker only this module uses, halted and resumed from one thread of its own.

    :meth:`LocalKafka.resume` forks the broker with ``PR_SET_PDEATHSIG``, which the kernel ties
    to the forking *thread*, not the process: resumed from ``asyncio.to_thread``'s executor,
    the broker would be SIGKILLed when the test's event loop shuts that executor down. This
    thread lives as long as the broker.
    """

    def __init__(self, kafka: LocalKafka, thread: ThreadPoolExecutor) -> None:
        self.kafka = kafka
        self.bootstrap_servers = kafka.bootstrap_servers
        self._thread = thread

    async def halt(self, *, kill: bool) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self._thread, lambda: self.kafka.halt(kill=kill)
        )

    async def resume(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self.kafka.resume)


@pytest.fixture(scope="module")
def own_kafka() -> Iterator[OwnKafka]:
    """A broker only this module uses, so that halting it disturbs no other test."""
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="own-kafka") as thread,
        LocalKafka(version=load_settings().devkafka.version) as kafka,
    ):
        yield OwnKafka(kafka, thread)


@dataclass
class Tally:
    """What one publishing loop saw."""

    name: str
    returned: list[str] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


@pytest_asyncio.fixture
async def topic(own_kafka: OwnKafka, unique_topic: Callable[[str], str]) -> AsyncIterator[str]:
    """A fresh topic on the module's broker."""
    name = unique_topic("deposits")
    admin = AIOKafkaAdminClient(bootstrap_servers=own_kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()
    yield name


async def _one_at_a_time(
    producer: EventProducer, topic: str, tally: Tally, stop: asyncio.Event
) -> None:
    seq = 0
    while not stop.is_set():
        event_id = str(uuid.uuid4())
        seq += 1
        try:
            await producer.publish(
                Deposit(seq=seq, account="single"),
                key=f"k{seq % 7}",
                topic=topic,
                event_id=event_id,
            )
        except PublishError as exc:
            tally.raised.append(event_id)
            tally.errors[type(exc).__name__] += 1
        else:
            tally.returned.append(event_id)


async def _batches(producer: EventProducer, topic: str, tally: Tally, stop: asyncio.Event) -> None:
    seq = 0
    while not stop.is_set():
        items = [
            Outgoing(
                Deposit(seq=seq + i, account="batch"), key=f"k{i % 7}", event_id=str(uuid.uuid4())
            )
            for i in range(BATCH)
        ]
        seq += BATCH
        ids = [item.event_id or "" for item in items]
        try:
            await producer.publish_batch(items, topic=topic)
        except PublishError as exc:
            tally.raised.extend(ids)
            tally.errors[type(exc).__name__] += 1
        else:
            tally.returned.extend(ids)


async def _grown(tallies: list[Tally], by: int, within: float, what: str) -> None:
    marks = [len(t.returned) + by for t in tallies]
    await until(
        lambda: all(len(t.returned) >= mark for t, mark in zip(tallies, marks, strict=True)),
        within=within,
        what=what,
        details=lambda: str({t.name: (len(t.returned), len(t.raised)) for t in tallies}),
    )


@pytest.mark.timeout(150)
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
async def test_every_returned_publish_is_in_the_topic_once_across_a_broker_restart(
    signal_name: str,
    own_kafka: OwnKafka,
    topic: str,
    unique_topic: Callable[[str], str],
    report: Callable[[str], None],
) -> None:
    settings = load_settings(
        kafka={"bootstrap_servers": own_kafka.bootstrap_servers},
        registry={"topic": unique_topic("registry")},
        producer={"delivery_timeout": DELIVERY_TIMEOUT, "linger_ms": 2},
    )
    single, batch = Tally("publish"), Tally("publish_batch")
    stop = asyncio.Event()
    started = time.monotonic()
    async with (
        EventProducer(settings=settings, source="/proofs") as one,
        EventProducer(settings=settings, source="/proofs") as many,
    ):
        loops = [
            asyncio.create_task(_one_at_a_time(one, topic, single, stop)),
            asyncio.create_task(_batches(many, topic, batch, stop)),
        ]
        try:
            await _grown([single, batch], 100, 30, "publishing before the halt")
            halt_at = time.monotonic()
            await own_kafka.halt(kill=signal_name == "SIGKILL")
            halted = time.monotonic() - halt_at
            await asyncio.sleep(OUTAGE)  # the outage itself: the publishers keep trying
            await own_kafka.resume()
            down = time.monotonic() - halt_at
            await _grown([single, batch], 100, 60, "publishing after the restart")
        finally:
            stop.set()
            await asyncio.gather(*loops)

    landed = Counter(
        dict(record.headers)["ce_id"].decode()
        for record in await read_topic(
            own_kafka.bootstrap_servers,
            topic,
            partitions=PARTITIONS,
            isolation_level="read_uncommitted",
        )
    )
    figures = []
    problems = []
    for tally in (single, batch):
        lost = [i for i in tally.returned if landed[i] == 0]
        doubled = [i for i in tally.returned if landed[i] > 1]
        raised_landed = sum(1 for i in tally.raised if landed[i] == 1)
        raised_doubled = [i for i in tally.raised if landed[i] > 1]
        figures.append(
            f"{tally.name}: returned={len(tally.returned)} raised={len(tally.raised)} "
            f"({dict(tally.errors)}) raised-but-landed={raised_landed} "
            f"lost={len(lost)} duplicated={len(doubled) + len(raised_doubled)}"
        )
        if lost or doubled or raised_doubled:
            problems.append(
                f"{tally.name}: lost {lost[:5]}, duplicated {doubled[:5]}, raised and written "
                f"twice {raised_doubled[:5]}"
            )
    report(
        f"broker restart[{signal_name}]: halt took {halted:.1f}s, broker down {down:.1f}s; "
        f"{'; '.join(figures)}; {time.monotonic() - started:.0f}s in all"
    )
    assert not problems, "\n".join(problems)
    assert sum(landed.values()) == len(landed)  # nothing at all is in the topic twice

"""The next poll joining a poll of key units while its last wave runs (Dispatcher.extend).

The chains added wait for the running chains that share a key with them; a chain sharing a key
with one that ended with an event deferred is deferred whole, without running; workers take
the chains that wait for nothing first; a poll that has ended, or still has chains to take,
takes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from eventplatform.app.delivery import Delivery, Outcome
from eventplatform.app.dispatch import Dispatcher
from eventplatform.app.poll import PollState
from eventplatform.cloudevents import EventMetadata
from tests.unit.app.records import record, tp
from tests.waiting import until

PLAIN = type("Route", (), {"transactional": False})()


def delivery(offset: int, key: bytes, ik: str) -> Delivery:
    d = Delivery(record(offset, b"", key=key), tp())
    d.metadata = EventMetadata.new(source="/t", type="T", idempotency_key=ik)
    d.route = PLAIN
    return d


class Session:
    def expect(self, key: str | None) -> None:
        pass


class Store:
    concurrent_units = 8

    @contextlib.asynccontextmanager
    async def session(self, group: str, *, owner: str) -> AsyncIterator[Session]:
        yield Session()


class Gated(Dispatcher):
    """A dispatcher whose events wait for their gate (when they have one), then are handled,
    or deferred when their key is ``busy``."""

    def __init__(self, *, concurrency: int = 4, busy: frozenset[str] = frozenset()) -> None:
        # no super().__init__: only what running chains of key units needs
        self._max_concurrency = concurrency
        self._store: Any = Store()
        self._unit_slots = asyncio.Semaphore(Store.concurrent_units)
        self._group = "g"
        self._owner = "me"
        self._running = None
        self.busy = busy
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        self.ended: list[str] = []

    def gate(self, key: str) -> asyncio.Event:
        return self.gates.setdefault(key, asyncio.Event())

    async def _deliver(self, d: Delivery, poll: PollState, session: Any, deadlines: Any) -> None:
        key = d.idempotency_key
        self.started.append(key)
        if key in self.gates:
            await self.gates[key].wait()
        if key in self.busy:
            d.outcome = Outcome.DEFERRED
        else:
            d.outcome = Outcome.HANDLED
            poll.finish(key, in_transaction=False, skipped=False)
        self.ended.append(key)


def units_poll(deliveries: list[Delivery]) -> PollState:
    poll = PollState([deliveries], set())
    poll.open_units()
    return poll


async def test_a_chain_added_waits_for_the_running_chain_of_its_key_and_others_go_first() -> None:
    dispatcher = Gated()
    first = [delivery(0, b"a", "a1"), delivery(1, b"b", "b1")]
    dispatcher.gate("a1")
    added = [delivery(2, b"a", "a2"), delivery(3, b"c", "c1"), delivery(4, b"d", "d1")]
    joined: list[bool] = []

    def on_idle() -> None:  # b1 is done, a1 still runs: every chain of the poll is taken
        if not joined:
            joined.append(dispatcher.extend(added, []))

    run = asyncio.create_task(dispatcher.run(units_poll(first), first, [], on_idle=on_idle))
    await until(lambda: "d1" in dispatcher.ended, what="d1 handled")
    assert joined == [True]
    assert "a2" not in dispatcher.started  # a1 has not ended: a2 waits behind it
    assert dispatcher.started[-2:] == ["c1", "d1"]  # the chains that wait for nothing first
    dispatcher.gates["a1"].set()
    await run
    assert dispatcher.ended.index("a1") < dispatcher.started.index("a2")
    assert [d.outcome for d in first + added] == [Outcome.HANDLED] * 5


async def test_the_events_after_a_deferred_event_of_their_key_are_deferred_unrun() -> None:
    dispatcher = Gated(busy=frozenset({"a1"}))
    first = [delivery(0, b"a", "a1"), delivery(1, b"b", "b1")]
    dispatcher.gate("b1")
    added = [delivery(2, b"a", "a2"), delivery(3, b"c", "c1")]
    joined: list[bool] = []

    def on_idle() -> None:  # a1 was deferred (its key is busy); b1 still runs
        if not joined:
            joined.append(dispatcher.extend(added, []))
            dispatcher.gates["b1"].set()

    await dispatcher.run(units_poll(first), first, [], on_idle=on_idle)
    assert joined == [True]
    assert "a2" not in dispatcher.started
    assert [d.outcome for d in first + added] == [
        Outcome.DEFERRED,
        Outcome.HANDLED,
        Outcome.DEFERRED,
        Outcome.HANDLED,
    ]


async def test_a_poll_with_chains_left_to_take_or_ended_takes_nothing() -> None:
    dispatcher = Gated(concurrency=2)
    # 6 chains, 2 workers: 2 run, 2 are taken to be claimed ahead, 2 wait
    first = [delivery(n, bytes([97 + n]), f"k{n}") for n in range(6)]
    for n in range(6):
        dispatcher.gate(f"k{n}")
    later = [delivery(9, b"z", "z1")]
    run = asyncio.create_task(dispatcher.run(units_poll(first), first, []))
    await until(lambda: len(dispatcher.started) == 2, what="two chains started")
    assert not dispatcher.extend(later, [])  # chains wait to be taken
    for gate in dispatcher.gates.values():
        gate.set()
    await run
    assert not dispatcher.extend(later, [])  # the poll has ended
    assert later[0].outcome is Outcome.PENDING
    assert "z1" not in dispatcher.started

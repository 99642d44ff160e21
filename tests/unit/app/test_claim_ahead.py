"""Which key a worker tells its key-unit session it runs next (the claim made ahead).

The dispatcher's worker runs chains in order; before each event it tells the session the key
of the event that follows on this worker: the next of the chain, else the head of the chain it
takes next. A duplicate (the same key, or a key finished earlier in the poll) and an event of a
transactional handler claim nothing, so they are never named.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from eventplatform.app.delivery import Delivery, Outcome, plan_chains
from eventplatform.app.dispatch import Dispatcher, PollRun
from eventplatform.app.poll import PollState
from eventplatform.cloudevents import EventMetadata
from tests.unit.app.records import record, tp

PLAIN = SimpleNamespace(transactional=False)
TRANSACTIONAL = SimpleNamespace(transactional=True)


def delivery(offset: int, key: bytes, ik: str, route: Any = PLAIN) -> Delivery:
    d = Delivery(record(offset, b"", key=key), tp())
    d.metadata = EventMetadata.new(source="/t", type="T", idempotency_key=ik)
    d.route = route
    return d


class Session:
    def __init__(self) -> None:
        self.expected: str | None = None

    def expect(self, key: str | None) -> None:
        self.expected = key


class Recorder(Dispatcher):
    """A dispatcher whose events only record what the session expected when they started."""

    def __init__(self, busy: frozenset[str] = frozenset()) -> None:  # no super().__init__
        self.busy = busy
        self.seen: list[tuple[str, str | None]] = []

    async def _deliver(self, d: Delivery, poll: PollState, session: Any, deadlines: Any) -> None:
        self.seen.append((d.idempotency_key, session.expected))
        if d.idempotency_key in self.busy:
            d.outcome = Outcome.DEFERRED
            return
        d.outcome = Outcome.HANDLED
        poll.finish(d.idempotency_key, in_transaction=False, skipped=False)


async def run(deliveries: list[Delivery], busy: frozenset[str] = frozenset()) -> Recorder:
    poll = PollState([deliveries], set())
    poll.open_units()
    dispatcher = Recorder(busy)
    running = PollRun(poll, None)
    running.add(plan_chains(deliveries))
    await dispatcher._work(running, tp(), Session())
    return dispatcher


async def test_the_next_of_the_chain_then_the_head_of_the_next_chain_is_expected() -> None:
    ds = [delivery(0, b"a", "a1"), delivery(1, b"b", "b1"), delivery(2, b"a", "a2")]
    dispatcher = await run(ds)
    assert dispatcher.seen == [("a1", "a2"), ("a2", "b1"), ("b1", None)]


async def test_duplicates_and_transactional_events_are_not_expected() -> None:
    ds = [
        delivery(0, b"a", "x"),
        delivery(1, b"a", "x"),  # the same key: a duplicate once x is done
        delivery(2, b"a", "y"),
        delivery(3, b"b", "t", route=TRANSACTIONAL),
        delivery(4, b"c", "z"),
    ]
    dispatcher = await run(ds)
    assert dispatcher.seen == [("x", None), ("x", "y"), ("y", None), ("t", "z"), ("z", None)]


async def test_a_deferred_event_defers_the_rest_of_its_chain_and_the_next_chain_runs() -> None:
    ds = [delivery(0, b"a", "a1"), delivery(1, b"a", "a2"), delivery(2, b"b", "b1")]
    dispatcher = await run(ds, busy=frozenset({"a1"}))
    assert dispatcher.seen == [("a1", "a2"), ("b1", None)]
    assert [d.outcome for d in ds] == [Outcome.DEFERRED, Outcome.DEFERRED, Outcome.HANDLED]

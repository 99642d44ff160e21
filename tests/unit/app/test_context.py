"""The handler's Context: metadata, trace propagation, deterministic ids, the store unit."""

from __future__ import annotations

from typing import Any

import pytest

from eventplatform.app import Context, derived_event_id
from eventplatform.cloudevents import EventMetadata
from eventplatform.errors import IdempotencyStoreError, StoreNotTransactional
from eventplatform.producer import Outgoing, PublishResult
from tests.unit.app.records import Placed

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Recorder:
    def __init__(self) -> None:
        self.items: list[Outgoing] = []

    async def publish(self, item: Outgoing) -> PublishResult | None:
        self.items.append(item)
        return None


def context(publisher: Recorder, unit: Any = None) -> Context:
    meta = EventMetadata.new(
        source="/s",
        type="com.example.Placed",
        idempotency_key="order-1",
        traceparent=TRACEPARENT,
        tracestate="vendor=1",
    )
    return Context(
        metadata=meta,
        topic="orders",
        partition=3,
        offset=17,
        key=b"k",
        headers=meta.to_headers(),
        group_id="billing",
        publisher=publisher,
        unit=unit,
        no_unit_reason="memory store",
    )


async def test_publish_propagates_the_trace_and_numbers_derived_ids() -> None:
    recorder = Recorder()
    ctx = context(recorder)
    assert ctx.idempotency_key == "order-1"
    assert repr(ctx) == "<Context orders[3]@17 key='order-1' attempt=1>"
    await ctx.publish(Placed(order_id="a"), key="k2")
    await ctx.publish(Placed(order_id="b"), event_id="explicit")
    first, second = recorder.items
    assert first.traceparent == TRACEPARENT
    assert ("tracestate", b"vendor=1") in first.headers
    assert first.key == "k2"
    assert first.event_id == derived_event_id("billing", "order-1", 0)
    assert second.event_id == "explicit"

    # A retry numbers its publishes from zero again: the same events get the same ids.
    ctx._begin_attempt(2, None, recorder)
    await ctx.publish(Placed(order_id="a"))
    assert recorder.items[2].event_id == first.event_id
    assert ctx.attempt == 2


def test_derived_ids_are_stable_and_distinct() -> None:
    assert derived_event_id("g", "k", 0) == derived_event_id("g", "k", 0)
    ids = {derived_event_id(g, k, n) for g in "gh" for k in "kl" for n in range(3)}
    assert len(ids) == 12


async def test_transaction_needs_a_unit() -> None:
    ctx = context(Recorder())
    with pytest.raises(StoreNotTransactional, match="memory store"):
        _ = ctx.transaction
    with pytest.raises(StoreNotTransactional):
        await ctx.connection()


async def test_connection_is_the_units_connection_when_it_has_one() -> None:
    class PgLikeUnit:
        async def connection(self) -> str:
            return "asyncpg-connection"

    class SqliteLikeUnit:
        pass

    assert await context(Recorder(), PgLikeUnit()).connection() == "asyncpg-connection"
    with pytest.raises(IdempotencyStoreError, match="run"):
        await context(Recorder(), SqliteLikeUnit()).connection()

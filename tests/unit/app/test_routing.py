"""Routes: registration rules and dispatch by writer record name, aliases and ce_type."""

from __future__ import annotations

from typing import Any

import pytest

from eventplatform.app import Context, RetryPolicy
from eventplatform.app.routing import Route, Router
from eventplatform.errors import ConfigurationError
from eventplatform.schema import AvroEvent


class Placed(AvroEvent, namespace="com.example", topic="orders"):
    order_id: str


class Renamed(AvroEvent, namespace="com.example", aliases=["OldName"]):
    order_id: str


class Unbound(AvroEvent, namespace="com.example"):
    order_id: str


async def handler(event: Any, ctx: Context) -> None:
    pass


def route(event_type: type[AvroEvent], **options: Any) -> Route[Any]:
    defaults: dict[str, Any] = {
        "topic": None,
        "timeout": 1.0,
        "retry": RetryPolicy(),
        "transactional": False,
        "dlq_topic": None,
        "dlq_suffix": ".dlq",
    }
    return Router.make_route(event_type, handler, **{**defaults, **options})


def test_a_route_takes_the_class_topic_and_a_dead_letter_topic_by_suffix() -> None:
    made = route(Placed)
    assert (made.topic, made.dlq_topic) == ("orders", "orders.dlq")
    assert made.name == f"{__name__}.handler"
    assert route(Placed, topic="other", dlq_topic="failed").dlq_topic == "failed"


@pytest.mark.parametrize(
    ("event_type", "fn", "options", "message"),
    [
        (Unbound, handler, {}, "no topic"),
        (Placed, lambda event, ctx: None, {}, "async function"),
        (dict, handler, {}, "AvroEvent subclass"),
        (Placed, handler, {"timeout": 0}, "timeout"),
        (Placed, handler, {"dlq_topic": "orders"}, "cannot be itself"),
    ],
)
def test_invalid_routes_are_refused(
    event_type: Any, fn: Any, options: dict[str, Any], message: str
) -> None:
    defaults: dict[str, Any] = {
        "topic": None,
        "timeout": 1.0,
        "retry": RetryPolicy(),
        "transactional": False,
        "dlq_topic": None,
        "dlq_suffix": ".dlq",
    }
    with pytest.raises(ConfigurationError, match=message):
        Router.make_route(event_type, fn, **{**defaults, **options})


def test_handlers_of_one_topic_must_agree_and_not_overlap() -> None:
    router = Router()
    router.add(route(Placed))
    with pytest.raises(ConfigurationError, match="already has handler"):
        router.add(route(Placed))
    with pytest.raises(ConfigurationError, match="all be transactional"):
        router.add(route(Renamed, topic="orders", transactional=True))
    with pytest.raises(ConfigurationError, match="different dead-letter topics"):
        router.add(route(Renamed, topic="orders", dlq_topic="elsewhere"))
    router.add(route(Renamed, topic="orders"))
    assert router.topics == ["orders"]
    assert [r.event_type for r in router.routes] == [Placed, Renamed]
    assert router.has_plain
    assert not router.has_transactional


def test_dispatch_by_writer_name_then_aliases_then_ce_type() -> None:
    router = Router()
    placed, renamed = route(Placed), route(Renamed, topic="orders")
    router.add(placed)
    router.add(renamed)
    assert router.resolve("orders", "com.example.Placed", "whatever") is placed
    assert router.resolve("orders", "com.example.OldName", None) is renamed
    # ce_type decides only when the writer schema has no record name.
    assert router.resolve("orders", None, "com.example.Renamed") is renamed
    assert router.resolve("orders", "com.example.Shipped", "com.example.Placed") is None

"""Routes: which handler takes which event type on which topic.

A topic may carry several event types (with the ``record`` or ``topic_record`` subject
strategies). A record is dispatched by the full name of its *writer* schema, the record the
registry holds for its schema id, which is what the bytes really are; an event class also
answers to its Avro aliases (former names, Avro spec "Aliases"), so a renamed class keeps
receiving records written under the old name. Only when the writer schema is not a named
record does the CloudEvents ``ce_type`` header decide. A record no handler takes is
*unhandled*: it is logged, counted and its offset committed; it is not dead-lettered, because
on a shared topic a type nobody here handles is expected, not an error. (Records whose schema
id the registry does not know cannot be typed at all; those are dead-lettered.)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from eventplatform.app.keys import IdempotencyKey
from eventplatform.app.retry import RetryPolicy
from eventplatform.cloudevents import default_source
from eventplatform.errors import ConfigurationError
from eventplatform.schema import AvroEvent

if TYPE_CHECKING:
    from eventplatform.app.context import Context

__all__ = ["Route", "Router"]

E = TypeVar("E", bound=AvroEvent)


@dataclass(frozen=True, slots=True, eq=False)
class Route(Generic[E]):
    """One registered handler.

    Attributes:
        event_type: the event class the handler takes.
        handler: ``async def handler(event, ctx) -> None``.
        topic: the topic it consumes.
        timeout: seconds one call may take before it is cancelled.
        retry: backoff and attempts before the dead-letter topic.
        transactional: its publishes and its offsets commit in one Kafka transaction.
        dlq_topic: where its failures go.
        idempotency_key: where the key of a record without CloudEvents headers comes from.
        source: the CloudEvents ``source`` of its topic's records without one.
    """

    event_type: type[E]
    handler: Callable[[E, Context], Awaitable[None]]
    topic: str
    timeout: float
    retry: RetryPolicy
    transactional: bool
    dlq_topic: str
    names: frozenset[str] = field(default=frozenset())
    idempotency_key: IdempotencyKey = field(default=IdempotencyKey.event_id())
    source: str = ""

    @property
    def name(self) -> str:
        """The handler's dotted name (``module.qualname``), as logs and dead letters show it."""
        fn: Any = self.handler
        module = getattr(fn, "__module__", None) or type(fn).__module__
        qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        return f"{module}.{qualname}"


def _event_names(event_type: type[AvroEvent]) -> frozenset[str]:
    # The normalised schema holds full names, aliases included (Avro spec: aliases are
    # resolved against the record's namespace).
    schema = event_type.__avro_schema__
    return frozenset([event_type.__avro_name__, *schema.get("aliases", ())])


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns an awaitable coroutine (functions or callable objects)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - inspecting the method, not callability
    )


class _TopicRoutes:
    __slots__ = ("by_name", "dlq_topic", "routes", "source", "transactional")

    def __init__(self, first: Route[Any]) -> None:
        self.routes: list[Route[Any]] = []
        self.by_name: dict[str, Route[Any]] = {}
        self.transactional = first.transactional
        self.dlq_topic = first.dlq_topic
        self.source = first.source or default_source(first.topic)


class Router:
    """The routes of one app, by topic and event name."""

    def __init__(self) -> None:
        self._topics: dict[str, _TopicRoutes] = {}

    @staticmethod
    def make_route(
        event_type: type[E],
        handler: Callable[[E, Context], Awaitable[None]],
        *,
        topic: str | None,
        timeout: float,
        retry: RetryPolicy,
        transactional: bool,
        dlq_topic: str | None,
        dlq_suffix: str,
        idempotency_key: IdempotencyKey | None = None,
        sources: Mapping[str, str] | None = None,
    ) -> Route[E]:
        """A validated route.

        ``sources`` maps topics to the CloudEvents ``source`` of their records without
        CloudEvents headers (``settings.consumer.topic_sources``); other topics get
        :func:`~eventplatform.cloudevents.default_source`.

        Raises:
            ConfigurationError: the class is not an event class, the handler is not async,
                no topic is known, the timeout is not positive, the dead-letter topic is
                the topic itself, or ``idempotency_key`` names a field the class cannot key
                by.
        """
        if not (isinstance(event_type, type) and issubclass(event_type, AvroEvent)):
            raise ConfigurationError(f"handle() takes an AvroEvent subclass, got {event_type!r}")
        if not is_async_callable(handler):
            raise ConfigurationError(
                f"the handler of {event_type.__avro_name__} must be an async function "
                f"(async def handler(event, ctx)), got {handler!r}"
            )
        chosen = topic or event_type.__avro_topic__
        if not chosen:
            raise ConfigurationError(
                f"no topic for {event_type.__avro_name__}: pass handle(..., topic='…') or bind "
                "the class (class MyEvent(AvroEvent, topic='…'))"
            )
        if not timeout > 0:
            raise ConfigurationError(f"handler timeout must be > 0 seconds, got {timeout!r}")
        dead = dlq_topic or f"{chosen}{dlq_suffix}"
        if dead == chosen:
            raise ConfigurationError(f"the dead-letter topic of {chosen!r} cannot be itself")
        key_choice = idempotency_key or IdempotencyKey.event_id()
        if not isinstance(key_choice, IdempotencyKey):
            raise ConfigurationError(
                "idempotency_key= takes an IdempotencyKey (IdempotencyKey.header('x-id'), "
                f".field('order_id'), .kafka_key(), .event_id()), got {key_choice!r}"
            )
        key_choice.check(event_type)
        return Route(
            event_type=event_type,
            handler=handler,
            topic=chosen,
            timeout=float(timeout),
            retry=retry,
            transactional=transactional,
            dlq_topic=dead,
            names=_event_names(event_type),
            idempotency_key=key_choice,
            source=(sources or {}).get(chosen) or default_source(chosen),
        )

    def add(self, route: Route[Any]) -> None:
        """Register ``route``.

        Raises:
            ConfigurationError: its topic already has a handler for the same event name (or
                alias), or the topic's handlers disagree on ``transactional`` or on the
                dead-letter topic (both are per topic: offsets of a partition commit one way,
                and undecodable records of a topic need one destination).
        """
        entry = self._topics.get(route.topic)
        if entry is None:
            entry = self._topics[route.topic] = _TopicRoutes(route)
        if route.transactional != entry.transactional:
            raise ConfigurationError(
                f"handlers of topic {route.topic!r} must all be transactional or all not: its "
                "offsets commit either in a Kafka transaction or through the consumer"
            )
        if route.dlq_topic != entry.dlq_topic:
            raise ConfigurationError(
                f"handlers of topic {route.topic!r} name different dead-letter topics "
                f"({entry.dlq_topic!r}, {route.dlq_topic!r}); a topic has one"
            )
        clash = route.names & entry.by_name.keys()
        if clash:
            other = entry.by_name[min(clash)]
            raise ConfigurationError(
                f"topic {route.topic!r} already has handler {other.name} for "
                f"{min(clash)!r}; one handler per event type and topic"
            )
        entry.routes.append(route)
        for name in route.names:
            entry.by_name[name] = route

    @property
    def topics(self) -> list[str]:
        """The topics with handlers, in registration order."""
        return list(self._topics)

    @property
    def routes(self) -> list[Route[Any]]:
        """Every route, in registration order per topic."""
        return [route for entry in self._topics.values() for route in entry.routes]

    @property
    def has_transactional(self) -> bool:
        """Whether some topic's handlers are transactional."""
        return any(entry.transactional for entry in self._topics.values())

    @property
    def has_plain(self) -> bool:
        """Whether some topic's handlers are not transactional."""
        return any(not entry.transactional for entry in self._topics.values())

    def transactional(self, topic: str) -> bool:
        """Whether ``topic``'s handlers (and offsets) are transactional."""
        return self._topics[topic].transactional

    def dlq_topic(self, topic: str) -> str:
        """The dead-letter topic of ``topic``."""
        return self._topics[topic].dlq_topic

    def source(self, topic: str) -> str:
        """The CloudEvents ``source`` of ``topic``'s records without CloudEvents headers."""
        return self._topics[topic].source

    def resolve(
        self, topic: str, writer_name: str | None, ce_type: str | None
    ) -> Route[Any] | None:
        """The route for a record of ``topic``: by writer record name, else by ``ce_type``.

        ``ce_type`` decides only when the writer schema has no record name (a top-level union
        or primitive): a writer record the topic has no handler for stays unhandled rather
        than being forced into another class.
        """
        by_name = self._topics[topic].by_name
        name = writer_name if writer_name is not None else ce_type
        return None if name is None else by_name.get(name)

"""EventApp: the service API. Typed handlers over a consumer group, with effects once per key.

::

    app = EventApp("billing", store=SqliteStore(path="billing.db"))

    @app.handle(OrderPlaced)
    async def bill(event: OrderPlaced, ctx: Context) -> None:
        await ctx.transaction.execute(
            "INSERT INTO invoices (order_id, total) VALUES (?, ?)", str(event.order_id), event.total
        )
        await ctx.publish(InvoiceIssued(order_id=event.order_id))

    asyncio.run(app.serve())        # or: eventplatform serve billing.service:app

What a handler can rely on (DESIGN.md decision 6):

- Its effects through ``ctx.transaction`` commit with the event's idempotency key in one
  database transaction (the inbox pattern, SQLite and PostgreSQL stores), and the offsets are
  committed only after that: across crashes, restarts and rebalances they happen once per key
  and consumer group.
- Effects elsewhere (HTTP calls, ``ctx.publish`` in a non-transactional handler) happen at
  least once; the store still skips every key already done, so a redelivery after a crash
  repeats at most the events of the poll in flight. Derived events carry deterministic ids, so
  consumers downstream can deduplicate even those.
- ``transactional=True`` handlers publish into one Kafka transaction per poll that also
  commits the offsets (KIP-98): a ``read_committed`` consumer sees their output once.

Resources the app creates (registry, store, producers, consumer) it also closes; a registry
passed in must be started by its owner; a store passed in is started by the app when it is
not started yet, and then closed by it too.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka import errors as kafka_errors

from eventplatform import access
from eventplatform.app import _groupfencing as groupfencing
from eventplatform.app.context import Context, ProducerPublisher
from eventplatform.app.delivery import Decoder
from eventplatform.app.dlq import DeadLetterQueue
from eventplatform.app.inbox import key_units, pool_options
from eventplatform.app.keys import IdempotencyKey
from eventplatform.app.loop import ConsumptionLoop, LoopConfig, RebalanceListener
from eventplatform.app.membership import StaticMembership, stop_consumer
from eventplatform.app.retry import RetryPolicy
from eventplatform.app.routing import Route, Router
from eventplatform.app.stats import AppStats
from eventplatform.app.work import WorkRunner, WorkSpec, WorkSpecs, run_together
from eventplatform.errors import ConfigurationError, ResourceStateError
from eventplatform.idempotency import IdempotencyStore, new_owner_id, open_store
from eventplatform.observability.health import AppHealth
from eventplatform.producer import EventProducer
from eventplatform.registry.base import SchemaRegistry
from eventplatform.registry.factory import open_registry
from eventplatform.schema import AvroEvent
from eventplatform.serde import AvroDeserializer, AvroSerializer, SubjectNameStrategy
from eventplatform.settings import RetrySettings, Settings, load_settings

__all__ = ["EventApp"]

log = logging.getLogger("eventplatform.app")

E = TypeVar("E", bound=AvroEvent)
Hook = Callable[["EventApp"], Awaitable[None]]
H = TypeVar("H", bound=Hook)


class _State(Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


class EventApp:
    """A service that handles typed events from Kafka topics, as one consumer group member.

    Records are dispatched by the full name of their writer schema (see
    :mod:`eventplatform.app.routing`); a record of a type no handler of its topic takes is
    skipped (logged once per type, counted in ``stats.unhandled``), not dead-lettered. Records
    that cannot be decoded at all are dead-lettered at once; handler failures after their
    retries (:mod:`eventplatform.app.retry`).

    Arguments resolve argument → settings (``EVENTPLATFORM_*``) → default.

    Args:
        name: the app's name; the default consumer group, and the ``connector.name`` of its
            dead letters.
        group_id: the consumer group; default ``settings.consumer.group_id``, else ``name``.
        bootstrap_servers: the Kafka cluster; default ``settings.kafka.bootstrap_servers``.
        registry: a started schema registry; default ``open_registry(settings)`` (owned).
        store: the idempotency store; default ``open_store(settings.idempotency.store)``.
        settings: all settings; default :func:`~eventplatform.settings.load_settings`.
        source: CloudEvents ``source`` of published events; default
            ``settings.producer.source``.
        instance_id: names this instance, stable across its restarts (a StatefulSet pod
            name); default ``settings.consumer.instance_id``, else the host name. Part of the
            transactional id ``<group>.<instance id>`` unless
            ``settings.producer.transactional_id`` is set. A given instance id (not the host
            name default) also makes the consumer a *static* member of its group (KIP-345): a
            restarted instance gets its partitions back at once instead of after the session
            timeout, and stopping does not hand them to the others (a rolling restart moves
            nothing). Each running process needs its own: a second one with the same id takes
            the membership over and the first stops with ``InstanceFenced``.
        inbox: run handlers inside the store's transaction (``ctx.transaction``); default:
            when the store supports it. On PostgreSQL each event then runs in its own
            transaction, ``max_concurrency`` at once per partition; on SQLite (one writer) the
            handlers of a poll take turns in one transaction (see
            :mod:`eventplatform.app.inbox`). ``inbox=False`` lets keys run concurrently but
            without ``ctx.transaction``.
        consumer_options: extra keyword arguments for ``aiokafka.AIOKafkaConsumer``.
        producer_options: extra keyword arguments for the producers' ``AIOKafkaProducer``.

    Raises:
        ConfigurationError: ``name`` is empty.
    """

    def __init__(
        self,
        name: str,
        *,
        group_id: str | None = None,
        bootstrap_servers: str | None = None,
        registry: SchemaRegistry | None = None,
        store: IdempotencyStore | None = None,
        settings: Settings | None = None,
        source: str | None = None,
        instance_id: str | None = None,
        inbox: bool | None = None,
        consumer_options: Mapping[str, Any] | None = None,
        producer_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"an EventApp needs a non-empty name, got {name!r}")
        self.name = name
        self.settings = settings or load_settings()
        self.group_id = group_id or self.settings.consumer.group_id or name
        self.bootstrap_servers = bootstrap_servers or self.settings.kafka.bootstrap_servers
        self.source = source or self.settings.producer.source
        self._instance_id = instance_id or self.settings.consumer.instance_id
        self.owner_id = new_owner_id()
        self._registry = registry
        self._store = store
        self._inbox = inbox
        self._consumer_options = dict(consumer_options or {})
        self._producer_options = dict(producer_options or {})
        self._router = Router()
        self._on_startup: list[Hook] = []
        self._on_shutdown: list[Hook] = []
        self._stats = AppStats()
        self._state = _State.NEW
        self._stack = AsyncExitStack()
        self._loop: ConsumptionLoop | None = None
        self._client: AIOKafkaConsumer | None = None
        self._work = WorkSpecs()
        self._runners: list[WorkRunner] = []
        self._stopping = asyncio.Event()
        self._finished = asyncio.Event()
        self._running = False
        self._close_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<EventApp {self.name!r} group={self.group_id!r} {self._state.value}>"

    # -- handlers ----------------------------------------------------------------------------

    def handle(
        self,
        event_type: type[E],
        *,
        topic: str | None = None,
        timeout: float | None = None,
        retry: RetrySettings | None = None,
        transactional: bool = False,
        dlq_topic: str | None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> Callable[
        [Callable[[E, Context], Awaitable[None]]], Callable[[E, Context], Awaitable[None]]
    ]:
        """Register the decorated ``async def handler(event, ctx)`` for ``event_type``.

        Args:
            event_type: the event class; records of its Avro full name (or aliases) go to it.
            topic: the topic to consume; default the class's ``topic=`` binding.
            timeout: seconds one call may take; default ``settings.consumer.handler_timeout``.
            retry: backoff and attempts before dead-lettering; default
                ``settings.consumer.retry``.
            transactional: publish and commit offsets in one Kafka transaction per poll
                (all handlers of a topic must agree).
            dlq_topic: the dead-letter topic; default ``<topic>`` +
                ``settings.consumer.dlq_suffix`` (``.dlq``); one per topic.
            idempotency_key: where the key of a record *without* CloudEvents headers comes
                from (a record with them keeps ``ce_idempotencykey``, else ``ce_id``):
                ``IdempotencyKey.header("x-id")``, ``.field("order_id")``,
                ``.kafka_key()``, or the default ``.event_id()``, the record's derived id
                (stable across redeliveries: once per record). A record lacking the chosen
                part falls back to that derived id. Such records get derived metadata: type
                = writer schema's full name, time = record timestamp, source =
                ``settings.consumer.topic_sources[topic]``, else ``/topics/<topic>`` (see
                :mod:`eventplatform.app.keys`).

        Raises:
            ConfigurationError: see :meth:`add_handler`.
            ResourceStateError: the app has started.
        """

        def register(
            handler: Callable[[E, Context], Awaitable[None]],
        ) -> Callable[[E, Context], Awaitable[None]]:
            self.add_handler(
                event_type,
                handler,
                topic=topic,
                timeout=timeout,
                retry=retry,
                transactional=transactional,
                dlq_topic=dlq_topic,
                idempotency_key=idempotency_key,
            )
            return handler

        return register

    def add_handler(
        self,
        event_type: type[E],
        handler: Callable[[E, Context], Awaitable[None]],
        *,
        topic: str | None = None,
        timeout: float | None = None,
        retry: RetrySettings | None = None,
        transactional: bool = False,
        dlq_topic: str | None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> Route[E]:
        """Register ``handler`` for ``event_type`` (the non-decorator form of :meth:`handle`).

        Raises:
            ConfigurationError: not an event class or not an async handler, no topic, a
                second handler for the same type and topic, handlers of one topic that
                disagree on ``transactional`` or ``dlq_topic``, or an ``idempotency_key``
                field the class does not have (or cannot key by).
            ResourceStateError: the app has started (subscriptions are fixed then).
        """
        if self._state is not _State.NEW:
            raise ResourceStateError(f"{self!r}: register handlers before the app starts")
        consumer = self.settings.consumer
        route = Router.make_route(
            event_type,
            handler,
            topic=topic,
            timeout=consumer.handler_timeout if timeout is None else timeout,
            retry=RetryPolicy.from_settings(retry or consumer.retry),
            transactional=transactional,
            dlq_topic=dlq_topic,
            dlq_suffix=consumer.dlq_suffix,
            idempotency_key=idempotency_key,
            sources=consumer.topic_sources,
        )
        self._router.add(route)
        return route

    def work(
        self,
        event_type: type[E],
        *,
        group: str,
        concurrency: int = 32,
        topic: str | None = None,
        timeout: float | None = None,
        retry: RetrySettings | None = None,
        dlq_topic: str | None = None,
        idempotency_key: IdempotencyKey | None = None,
        delivery_limit: int | None = None,
        group_configs: Mapping[str, str] | None = None,
    ) -> Callable[
        [Callable[[E, Context], Awaitable[None]]], Callable[[E, Context], Awaitable[None]]
    ]:
        """Run the decorated ``async def handler(event, ctx)`` on share group ``group``.

        Any number of processes share the topic's records, each with up to ``concurrency``
        events in flight; there is no order (see :mod:`eventplatform.app.work`).

        Args:
            event_type, topic, timeout, dlq_topic, idempotency_key: as :meth:`handle`.
            group: the share group (KIP-932) of the workers.
            concurrency: handlers in flight at once in this process.
            retry: backoff between deliveries (a failed delivery is released for
                ``backoff(delivery count)`` seconds); default ``settings.consumer.retry``.
            delivery_limit: deliveries before a failing event is dead-lettered, 1–10; set on
                the group as ``share.delivery.count.limit``; default ``retry.max_attempts``.
            group_configs: further dynamic configs of the group, e.g.
                ``{"share.record.lock.duration.ms": "60000"}``.

        Raises:
            ConfigurationError: as :meth:`add_handler`, or the group has a handler already,
                or ``concurrency``/``delivery_limit`` are out of range.
            ResourceStateError: the app has started.
        """

        def register(
            handler: Callable[[E, Context], Awaitable[None]],
        ) -> Callable[[E, Context], Awaitable[None]]:
            if self._state is not _State.NEW:
                raise ResourceStateError(f"{self!r}: register handlers before the app starts")
            consumer = self.settings.consumer
            policy = RetryPolicy.from_settings(retry or consumer.retry)
            route = Router.make_route(
                event_type,
                handler,
                topic=topic,
                timeout=consumer.handler_timeout if timeout is None else timeout,
                retry=policy,
                transactional=False,
                dlq_topic=dlq_topic,
                dlq_suffix=consumer.dlq_suffix,
                idempotency_key=idempotency_key,
                sources=consumer.topic_sources,
            )
            self._work.add(
                WorkSpec(
                    route=route,
                    group=group,
                    concurrency=concurrency,
                    delivery_limit=policy.max_attempts
                    if delivery_limit is None
                    else delivery_limit,
                    group_configs=dict(group_configs or {}),
                )
            )
            return handler

        return register

    def on_startup(self, hook: H) -> H:
        """Register ``async def hook(app)``, run at start once the store is open.

        For set-up the handlers rely on, such as creating the tables they write through
        ``ctx.transaction`` (``await app.store.execute("CREATE TABLE IF NOT EXISTS …")``).
        Hooks run in registration order, before the app joins its group; one that raises
        fails :meth:`start`.

        Raises:
            ResourceStateError: the app has started.
        """
        if self._state is not _State.NEW:
            raise ResourceStateError(f"{self!r}: register hooks before the app starts")
        self._on_startup.append(hook)
        return hook

    def on_shutdown(self, hook: H) -> H:
        """Register ``async def hook(app)``, run at close after the app left its group and
        before the store closes; hooks run in registration order.

        Raises:
            ResourceStateError: the app has started.
        """
        if self._state is not _State.NEW:
            raise ResourceStateError(f"{self!r}: register hooks before the app starts")
        self._on_shutdown.append(hook)
        return hook

    @property
    def store(self) -> IdempotencyStore:
        """The idempotency store (started by :meth:`start`, before the startup hooks).

        Raises:
            ResourceStateError: the app has not started and was given no store.
        """
        if self._store is None:
            raise ResourceStateError(f"{self!r} has no store until it starts")
        return self._store

    @property
    def routes(self) -> list[Route[Any]]:
        """The registered handlers."""
        return self._router.routes

    @property
    def topics(self) -> list[str]:
        """The topics the app consumes (streams, then work queues)."""
        return list(dict.fromkeys([*self._router.topics, *self._work.topics]))

    @property
    def stats(self) -> AppStats:
        """Live counters of what the app did (see :class:`~eventplatform.app.AppStats`)."""
        return self._stats

    @property
    def instance_id(self) -> str:
        """This instance's name: the given instance id, else the host name."""
        return self._instance_id or socket.gethostname()

    @instance_id.setter
    def instance_id(self, value: str) -> None:
        self._instance_id = value

    @property
    def static_membership(self) -> bool:
        """Whether the consumer joins as a static member (an instance id was given)."""
        return self._instance_id is not None

    @property
    def transactional_id(self) -> str:
        """The transactional id of this instance's transactional producer."""
        return self.settings.producer.transactional_id or f"{self.group_id}.{self.instance_id}"

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is consuming."""
        return self._running

    # -- health (read by eventplatform.observability) -------------------------------------------

    def health(self) -> AppHealth:
        """What a readiness probe needs: consuming, in the group, which partitions."""
        client = self._client if self._state is _State.STARTED else None
        # aiokafka forgets the coordinator (coordinator_id = None) after a failed heartbeat
        # or request, and finds it again once the broker answers.
        coordinator = getattr(getattr(client, "_coordinator", None), "coordinator_id", None)
        assigned = client.assignment() if client is not None else ()
        return AppHealth(
            name=self.name,
            group_id=self.group_id,
            started=self._state is _State.STARTED,
            running=self._running,
            rebalances=self._stats.rebalances,
            coordinator_known=coordinator is not None,
            partitions=tuple(sorted((tp.topic, tp.partition) for tp in assigned)),
        )

    @property
    def ready(self) -> bool:
        """Consuming, in its group, with partitions assigned (see :meth:`health`)."""
        return self.health().ready

    async def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the end of each assigned partition: high watermark minus position.

        Partitions not fetched from yet (no high watermark known) are left out.
        """
        client = self._client
        lags: dict[tuple[str, int], int] = {}
        if client is None or self._state is not _State.STARTED:
            return lags
        for tp in client.assignment():
            try:
                high = client.highwater(tp)
                # Immediate when the position is known; bounded when it is being reset.
                position = await asyncio.wait_for(client.position(tp), 0.5)
            except (AssertionError, TimeoutError, kafka_errors.IllegalStateError):
                continue  # revoked meanwhile, or no position yet
            if high is not None:
                lags[(tp.topic, tp.partition)] = max(0, high - position)
        return lags

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect: registry, store, producers, then join the consumer group.

        Raises:
            ConfigurationError: no handlers, no bootstrap servers, or ``inbox=True`` with a
                store that has no transactions.
            ResourceStateError: the app was closed.
            KafkaError: the cluster cannot be reached.
            RegistryError, IdempotencyStoreError: the registry or the store failed to start.
        """
        if self._state is _State.STARTED:
            return
        if self._state is _State.CLOSED:
            raise ResourceStateError(f"{self!r} cannot be restarted; create a new EventApp")
        if not self._router.topics and not self._work:
            raise ConfigurationError(
                f"{self!r} has no handlers; register some with @app.handle or @app.work"
            )
        if not self.bootstrap_servers:
            raise ConfigurationError(
                "no Kafka bootstrap servers: pass bootstrap_servers= or set "
                "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS"
            )
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        self._state = _State.STARTED
        log.info(
            "%s started: group %s, topics %s, instance %s",
            self.name,
            self.group_id,
            ", ".join(self.topics),
            self.instance_id,
        )

    async def _open(self) -> None:
        settings = self.settings
        stack = self._stack
        servers = self.bootstrap_servers
        assert servers is not None
        registry = self._registry
        if registry is None:
            registry = open_registry(settings, bootstrap_servers=servers)
            await registry.start()
            stack.push_async_callback(registry.close)
        store = self._store
        if store is None:
            idempotency = settings.idempotency
            store = open_store(
                idempotency.store,
                lease=idempotency.lease,
                ttl=idempotency.ttl,
                **pool_options(idempotency.store, settings.consumer.max_concurrency),
            )
        if not getattr(store, "started", True):
            await store.start()
            stack.push_async_callback(store.close)
        inbox = store.transactional if self._inbox is None else self._inbox
        if inbox and not store.transactional:
            raise ConfigurationError(
                f"inbox=True needs a store with transactions (SQLite, PostgreSQL), not {store!r}"
            )
        self._store = store
        for hook in self._on_startup:
            await hook(self)
        # The exit stack unwinds in reverse: this runs after the consumer and the producers
        # closed, before the store does.
        stack.push_async_callback(self._shut_down)

        plain = transactional = None
        if self._router.has_plain or self._work:
            plain = await self._producer(stack, registry, None)
        if self._router.has_transactional:
            transactional = await self._producer(stack, registry, self.transactional_id)
        registry_settings = settings.registry
        serializer = AvroSerializer(
            registry,
            strategy=SubjectNameStrategy(registry_settings.subject_strategy),
            auto_register=registry_settings.auto_register,
        )
        consumer_settings = settings.consumer
        retry = RetryPolicy.from_settings(consumer_settings.retry)
        config = LoopConfig(
            router=self._router,
            decoder=Decoder(self._router, AvroDeserializer(registry)),
            store=store,
            group_id=self.group_id,
            owner=self.owner_id,
            inbox=inbox,
            lease=settings.idempotency.lease,
            plain=plain,
            transactional=transactional,
            serializer=serializer,
            dlq=DeadLetterQueue(
                connector=self.name,
                task_id=self.instance_id,
                group=self.group_id,
                policy=retry,
                pause=self._pause,
                stats=self._stats,
            ),
            max_concurrency=consumer_settings.max_concurrency,
            max_poll_records=consumer_settings.max_poll_records,
            backoff=retry,
            delivery_timeout=settings.producer.delivery_timeout,
            stats=self._stats,
            stopping=self._stopping,
            units=key_units(
                store,
                inbox=inbox,
                max_concurrency=consumer_settings.max_concurrency,
                concurrency_asked="max_concurrency" in consumer_settings.model_fields_set,
                transactions=consumer_settings.inbox_transactions,
            ),
            membership=StaticMembership(
                group_id=self.group_id,
                instance_id=self.instance_id,
                # Twins displace each other every heartbeat; a lone restart replaces once.
                window=3 * consumer_settings.session_timeout_ms / 1000,
            )
            if self.static_membership
            else None,
        )
        loop = ConsumptionLoop(config=config)
        if self._router.topics:
            self._loop = loop
            await self._consumer(stack, loop)
        if self._work:
            assert plain is not None
            await self._start_work(stack, registry, store, inbox, plain)

    async def _start_work(
        self,
        stack: AsyncExitStack,
        registry: SchemaRegistry,
        store: IdempotencyStore,
        inbox: bool,
        producer: EventProducer,
    ) -> None:
        servers = self.bootstrap_servers
        assert servers is not None
        for spec in self._work.specs:
            runner = WorkRunner(
                spec,
                app_name=self.name,
                instance_id=self.instance_id,
                owner=self.owner_id,
                settings=self.settings,
                bootstrap_servers=servers,
                registry=registry,
                store=store,
                inbox=inbox,
                lease=self.settings.idempotency.lease,
                publisher=ProducerPublisher(producer),
                stats=self._stats,
                stopping=self._stopping,
            )
            await runner.start()
            stack.push_async_callback(runner.close)
            self._runners.append(runner)

    async def _shut_down(self) -> None:
        for hook in self._on_shutdown:
            await hook(self)

    async def _pause(self, delay: float) -> bool:
        if self._loop is not None:
            return await self._loop.pause(delay)
        if self._stopping.is_set():
            return False
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            return True
        return False

    async def _producer(
        self, stack: AsyncExitStack, registry: SchemaRegistry, transactional_id: str | None
    ) -> EventProducer:
        producer = EventProducer(
            bootstrap_servers=self.bootstrap_servers,
            registry=registry,
            settings=self.settings,
            source=self.source,
            transactional_id=transactional_id,
            client_options=self._producer_options,
        )
        await producer.start()
        stack.push_async_callback(producer.close)
        if transactional_id is not None:
            # TxnOffsetCommit v3 with the consumer's group metadata: zombie fencing (KIP-447).
            groupfencing.install(producer.client)
        return producer

    async def _consumer(self, stack: AsyncExitStack, loop: ConsumptionLoop) -> Any:
        kafka, consumer = self.settings.kafka, self.settings.consumer
        longest = max(route.timeout for route in self._router.routes)
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": f"{kafka.client_id}-{self.name}",
            "group_id": self.group_id,
            # Offsets are committed by the loop, explicitly, once effects are durable.
            "enable_auto_commit": False,
            "auto_offset_reset": consumer.auto_offset_reset,
            # Transactional producers' aborted records and open transactions stay invisible.
            "isolation_level": "read_committed",
            "max_poll_records": consumer.max_poll_records,
            "session_timeout_ms": consumer.session_timeout_ms,
            "heartbeat_interval_ms": consumer.heartbeat_interval_ms,
            # on_partitions_revoked waits up to the longest handler timeout for the poll in
            # flight; the group must wait that long for this member to rejoin.
            "rebalance_timeout_ms": max(consumer.session_timeout_ms, int((longest + 10) * 1000)),
        }
        if self.static_membership:
            # KIP-345: the coordinator keeps this member's partitions across a restart.
            options["group_instance_id"] = self.instance_id
        options = kafka.connection_options() | options
        options.update(self._consumer_options)
        client = AIOKafkaConsumer(**options)
        # Attached before start(): the first join's callbacks already reach the loop.
        loop.attach(client)
        client.subscribe(self._router.topics, listener=RebalanceListener(loop))
        try:
            await client.start()
        except kafka_errors.KafkaError as exc:
            await client.stop()
            what = f"the consumer of group {self.group_id!r}"
            raise await access.start_failure(kafka, self.bootstrap_servers, exc, what=what) from exc
        # Stopping a dynamic member sends LeaveGroup, so the partitions move at once (not
        # after the session timeout); a static member keeps them for its next incarnation.
        stack.push_async_callback(stop_consumer, client, loop.membership)
        self._client = client
        return client

    async def run(self) -> None:
        """Consume until :meth:`stop` (or :meth:`close`); start first and close after when new.

        In-flight events finish and their offsets commit before it returns.

        Raises:
            ResourceStateError: the app is closed or already running.
            ConfigurationError, KafkaError, RegistryError, IdempotencyStoreError: starting
                failed, or the loop failed for good (e.g. this instance was fenced by another
                with the same transactional id).
        """
        if self._running:
            raise ResourceStateError(f"{self!r} is already running")
        if self._state is _State.CLOSED:
            raise ResourceStateError(f"{self!r} is closed")
        owns = self._state is _State.NEW
        if owns:
            await self.start()
        self._running = True
        self._finished.clear()
        jobs = [runner.run() for runner in self._runners]
        if self._loop is not None:
            jobs.insert(0, self._loop.run())
        try:
            await run_together(jobs, self.stop)
        finally:
            self._running = False
            self._finished.set()
            if owns:
                await self.close()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the poll in flight; returns at once. Idempotent."""
        if not self._stopping.is_set():
            log.info("%s stopping", self.name)
        self._stopping.set()

    async def close(self) -> None:
        """Stop, wait for the loop, leave the group and release everything. Idempotent."""
        async with self._close_lock:
            if self._state is _State.CLOSED:
                return
            self.stop()
            if self._running:
                await self._finished.wait()
            self._state = _State.CLOSED
            await self._stack.aclose()
            # DEBUG: the commands that run apps print the final counters once themselves.
            log.debug("%s closed: %s", self.name, self._stats.as_dict())

    async def serve(self) -> None:
        """:meth:`run` with SIGTERM and SIGINT handled: the first stops gracefully, a second
        cancels at once (uncommitted events are then read again after a restart).

        Raises:
            The errors of :meth:`run`.
        """
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        installed: list[signal.Signals] = []

        def on_signal(signum: signal.Signals) -> None:
            if self._stopping.is_set() and task is not None:
                log.warning("%s: second %s, cancelling", self.name, signum.name)
                task.cancel()
                return
            log.info("%s: %s received, stopping gracefully", self.name, signum.name)
            self.stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, on_signal, signum)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                continue
            installed.append(signum)
        try:
            await self.run()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

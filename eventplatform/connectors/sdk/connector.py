"""The connector seams: :class:`Connector`, :class:`Source` and :class:`Sink`, and their records.

A connector bridges an external system and Kafka topics (DESIGN.md decision 8). Writing one
takes one class and one pydantic config model, the shape of pydantic-settings' source
providers: the abstract base here owns the lifecycle, the subclass supplies what is particular
to the external system::

    class TickerConfig(SourceConfig):
        interval: float = 1.0

    class Ticker(Source[TickerConfig]):
        \"\"\"Publishes a Tick every ``interval`` seconds, resuming its count after a restart.\"\"\"

        async def records(self) -> AsyncIterator[SourceRecord]:
            partition = {"ticker": self.name}
            n = (self.committed(partition) or {}).get("n", 0)
            while not self.stopping:
                n += 1
                yield SourceRecord(event=Tick(n=n), event_id=f"{self.name}-{n}",
                                   position=SourcePosition(partition, {"n": n}))
                await self.idle(self.config.interval)

The roles:

- :class:`Source` yields :class:`SourceRecord` objects. The framework publishes them in the
  order yielded (pipelined, in batches), and commits each record's *source position* to the
  offsets topic only once the broker acknowledged the record (the runtime's pump and offsets
  store, Kafka Connect's ``sourcePartition``/``sourceOffset``). A crash between the two
  re-emits the record after a restart, with the same event id and idempotency key, so
  consumers deduplicate it.
- :class:`Sink` receives typed events through :meth:`Sink.deliver`, run by an
  :class:`~eventplatform.app.EventApp` consumer group with its idempotency store, retries and
  dead-letter topic.
- :class:`~eventplatform.connectors.sdk.responder.Responder` answers requests on a shared
  HTTP server, publishing what they carry (request-reply; the webhook ingress).

Every connector is an async context manager with explicit states; :meth:`Connector.run` runs
it until :meth:`Connector.stop`, and :meth:`Connector.health` reports its state and counters.
"""

from __future__ import annotations

import asyncio
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from eventplatform.connectors.sdk.records import SourceRecord
from eventplatform.connectors.sdk.status import ConnectorState, ConnectorStats, ConnectorStatus
from eventplatform.errors import ConnectorConfigError, ResourceStateError
from eventplatform.schema import AvroEvent
from eventplatform.settings import Settings, load_settings

if TYPE_CHECKING:
    from eventplatform.app import Context, EventApp
    from eventplatform.connectors.runtime.offsets import OffsetStore
    from eventplatform.producer import EventProducer
    from eventplatform.registry.base import SchemaRegistry

__all__ = [
    "Connector",
    "ConnectorConfig",
    "Sink",
    "SinkConfig",
    "Source",
    "SourceConfig",
    "check_connector_name",
    "validation_problems",
]

# Names end up in HTTP routes, offset keys, consumer groups and log lines: keep them plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def check_connector_name(name: object) -> str:
    """``name`` if it is a valid connector name (letters, digits, ``.``, ``_``, ``-``).

    Raises:
        ConnectorConfigError: it is not.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConnectorConfigError(
            f"connector name {name!r} must start with a letter or digit and contain only "
            "letters, digits, '.', '_' and '-' (at most 200)",
            key="name",
        )
    return name


def validation_problems(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted key, reason)`` of each error of ``exc``, without the offending input.

    Inputs are left out on purpose: a value may come from a ``${SECRET}`` reference.
    """
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        key = ".".join(str(part) for part in error["loc"])
        problems.append((f"{prefix}{key}" if key else prefix.rstrip("."), error["msg"]))
    return problems


# -- configuration ---------------------------------------------------------------------------


class ConnectorConfig(BaseModel):
    """Base of connector config models: the ``[settings]`` table of an instance file.

    Unknown keys are errors and instances are frozen. Declare secrets as
    :class:`~pydantic.SecretStr` so that they never show in reprs, logs or ``connectors list``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(ConnectorConfig):
    """Settings every source has, besides its own."""

    event_source: str | None = Field(
        default=None,
        description="CloudEvents source of published events; default /connectors/<name>.",
    )
    max_batch: int = Field(default=500, gt=0, description="Records published per batch.")
    max_in_flight: int = Field(
        default=5000, gt=0, description="Records read but not yet acknowledged (backpressure)."
    )
    stop_grace: float = Field(
        default=10.0, gt=0, description="Seconds a stopping source gets to end by itself."
    )


class SinkConfig(ConnectorConfig):
    """Settings every sink has, besides its own."""

    group_id: str | None = Field(
        default=None, description="Consumer group; default connect-<name> (as Kafka Connect)."
    )
    store: SecretStr | None = Field(
        default=None,
        description="Idempotency store URL; default setting idempotency.store.",
    )
    dlq_topic: str | None = Field(
        default=None, description="Dead-letter topic; default <topic> + consumer.dlq_suffix."
    )


ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)
SourceConfigT = TypeVar("SourceConfigT", bound=SourceConfig)
SinkConfigT = TypeVar("SinkConfigT", bound=SinkConfig)


# -- the connector ---------------------------------------------------------------------------


class _Lifecycle(Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


class Connector(ABC, Generic[ConfigT]):
    """Base of every connector: name, validated config, lifecycle, state and counters.

    Subclass :class:`Source` or :class:`Sink`, not this. The config model is the class
    attribute ``Config``; a subclass of ``Source[MyConfig]`` gets ``Config = MyConfig`` from its
    type argument unless it sets ``Config`` itself.

    Args:
        name: the instance's name (routes, offsets, consumer group and logs use it).
        config: a ``Config`` instance, or a mapping validated into one; default: all defaults.
        topic: the topic the connector writes (sources) or reads (sinks).
        event_type: the event class of its records, for connectors that have one.
        settings: all settings; default :func:`~eventplatform.settings.load_settings`.
        bootstrap_servers: the Kafka cluster; default ``settings.kafka.bootstrap_servers``.
        registry: a started schema registry to share; default one opened (and closed) here.

    Raises:
        ConnectorConfigError: the name is invalid, the config does not validate (the message
            names each key), or a topic or event type the connector needs is missing.
    """

    Config: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    #: ``source`` or ``sink``.
    role: ClassVar[str] = "connector"
    #: Whether an instance must name a topic / an event type.
    requires_topic: ClassVar[bool] = True
    requires_event_type: ClassVar[bool] = True
    #: The shared resources the constructor takes, by keyword (the runtime passes those).
    resources: ClassVar[frozenset[str]] = frozenset({"settings", "bootstrap_servers", "registry"})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Config" in cls.__dict__:
            return
        for base in getattr(cls, "__orig_bases__", ()):
            for argument in get_args(base):
                if isinstance(argument, type) and issubclass(argument, ConnectorConfig):
                    cls.Config = argument
                    return

    def __init__(
        self,
        *,
        name: str,
        config: ConfigT | Mapping[str, Any] | None = None,
        topic: str | None = None,
        event_type: type[AvroEvent] | None = None,
        settings: Settings | None = None,
        bootstrap_servers: str | None = None,
        registry: SchemaRegistry | None = None,
    ) -> None:
        self.name = check_connector_name(name)
        self.config: ConfigT = self._validate_config(config)
        if self.requires_topic and not topic:
            raise ConnectorConfigError(
                f"connector {name!r} ({type(self).__name__}) needs a topic", key="topic"
            )
        if self.requires_event_type and event_type is None:
            raise ConnectorConfigError(
                f"connector {name!r} ({type(self).__name__}) needs an event_type", key="event_type"
            )
        if event_type is not None and not (
            isinstance(event_type, type) and issubclass(event_type, AvroEvent)
        ):
            raise ConnectorConfigError(
                f"connector {name!r}: event_type {event_type!r} is not an AvroEvent class",
                key="event_type",
            )
        self.topic = topic
        self.event_type = event_type
        self.settings = settings or load_settings()
        self.bootstrap_servers = bootstrap_servers or self.settings.kafka.bootstrap_servers
        self.stats = ConnectorStats()
        self._registry = registry
        self._lifecycle = _Lifecycle.NEW
        self._state = ConnectorState.NEW
        self._since = time.time()
        self._stack = AsyncExitStack()
        self._stopping = asyncio.Event()
        self._finished = asyncio.Event()
        self._released = asyncio.Event()
        self._running = False

    def _validate_config(self, config: ConfigT | Mapping[str, Any] | None) -> ConfigT:
        model = type(self).Config
        if isinstance(config, model):
            return config
        if config is not None and not isinstance(config, Mapping):
            raise ConnectorConfigError(
                f"connector {self.name!r}: config must be a {model.__name__} or a mapping, "
                f"not {type(config).__name__}",
                key="settings",
            )
        try:
            return model.model_validate(dict(config or {}))  # type: ignore[return-value]
        except ValidationError as exc:
            problems = validation_problems(exc, "settings.")
            raise ConnectorConfigError(
                f"connector {self.name!r}: "
                + "; ".join(f"{key}: {reason}" for key, reason in problems),
                key=problems[0][0] if problems else "settings",
            ) from exc

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state.value}>"

    # -- state -------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectorState:
        """What the connector is doing."""
        return self._state

    def _set_state(self, state: ConnectorState) -> None:
        if state is not self._state:
            self._state = state
            self._since = time.time()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called: loops should wind down."""
        return self._stopping.is_set()

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is in progress."""
        return self._running

    @property
    def registry(self) -> SchemaRegistry:
        """The schema registry in use.

        Raises:
            ResourceStateError: before :meth:`start`.
        """
        if self._registry is None or self._lifecycle is _Lifecycle.NEW:
            raise ResourceStateError(f"{self!r}: the registry is available after start()")
        return self._registry

    def _refresh_stats(self) -> None:
        """Hook: bring :attr:`stats` up to date before a snapshot."""

    def health(self, *, type_name: str | None = None) -> ConnectorStatus:
        """A snapshot of state and counters."""
        self._refresh_stats()
        stats = self.stats
        return ConnectorStatus(
            name=self.name,
            type=type_name or type(self).__name__,
            role=self.role,
            state=self._state,
            records=stats.records,
            errors=stats.errors,
            last_activity=stats.last_activity,
            last_error=stats.last_error,
            counters=dict(stats.counters),
            since=self._since,
            updated_at=time.time(),
        )

    async def idle(self, seconds: float, wakeup: asyncio.Event | None = None) -> None:
        """Sleep up to ``seconds``; return early when :meth:`stop` is called or ``wakeup`` set."""
        waiters = [asyncio.ensure_future(self._stopping.wait())]
        if wakeup is not None:
            waiters.append(asyncio.ensure_future(wakeup.wait()))
        try:
            await asyncio.wait(waiters, timeout=max(0.0, seconds), return_when="FIRST_COMPLETED")
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    # -- hooks for connector authors ----------------------------------------------------------

    async def on_start(self) -> None:
        """Acquire the external system (a pool, a server); called by :meth:`start`.

        Raises:
            EventPlatformError: the system cannot be reached; the connector fails to start.
        """

    async def on_stop(self) -> None:
        """Release what :meth:`on_start` acquired; called by :meth:`close`, also after failures."""

    # -- lifecycle ----------------------------------------------------------------------------

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
        """Open the Kafka side (registry, producer or consumer) and then :meth:`on_start`.

        Raises:
            ResourceStateError: the connector was closed (create a new one to restart).
            ConfigurationError: no bootstrap servers are known.
            KafkaError, RegistryError: Kafka or the registry cannot be reached.
            EventPlatformError: :meth:`on_start` failed.
        """
        if self._lifecycle is _Lifecycle.STARTED:
            return
        if self._lifecycle is _Lifecycle.CLOSED:
            raise ResourceStateError(f"{self!r} cannot be restarted; create a new instance")
        self._set_state(ConnectorState.STARTING)
        try:
            await self._open(self._stack)
            self._stack.push_async_callback(self.on_stop)
            await self.on_start()
            await self._started(self._stack)
        except BaseException as exc:
            self._set_state(ConnectorState.FAILED)
            self.stats.failed(exc)
            self._lifecycle = _Lifecycle.CLOSED
            try:
                await self._stack.aclose()
            finally:
                self._released.set()
            raise
        self._lifecycle = _Lifecycle.STARTED

    async def _open(self, stack: AsyncExitStack) -> None:
        """Open what the role needs (registry, producer, offsets); owned ones go on ``stack``."""
        if self._registry is None:
            from eventplatform.registry.factory import open_registry  # noqa: PLC0415

            registry = open_registry(self.settings, bootstrap_servers=self.bootstrap_servers)
            await registry.start()
            stack.push_async_callback(registry.close)
            self._registry = registry

    async def _started(self, stack: AsyncExitStack) -> None:
        """Hook of the roles: what follows :meth:`on_start`; ``stack`` unwinds it first."""

    async def run(self) -> None:
        """Run until :meth:`stop` (or until a finite source is exhausted).

        Starts the connector first when it is new, and then also closes it when done.

        Raises:
            ResourceStateError: already running, or closed.
            EventPlatformError: starting failed, or the connector failed while running (its
                state is then ``failed`` with the error as ``last_error``).
        """
        if self._running:
            raise ResourceStateError(f"{self!r} is already running")
        if self._lifecycle is _Lifecycle.CLOSED:
            raise ResourceStateError(f"{self!r} is closed")
        owns = self._lifecycle is _Lifecycle.NEW
        if owns:
            await self.start()
        self._running = True
        self._finished.clear()
        self._set_state(ConnectorState.RUNNING)
        try:
            await self._run()
        except asyncio.CancelledError:
            self._set_state(ConnectorState.STOPPED)
            raise
        except BaseException as exc:
            self._set_state(ConnectorState.FAILED)
            self.stats.failed(exc)
            raise
        else:
            self._set_state(ConnectorState.STOPPED)
        finally:
            self._running = False
            self._finished.set()
            if owns:
                await self.close()

    @abstractmethod
    async def _run(self) -> None:
        """The role's main loop; returns once :attr:`stopping` (or when there is no more)."""

    def stop(self) -> None:
        """Ask :meth:`run` to finish what is in flight and return. Returns at once; idempotent."""
        if not self._stopping.is_set() and self._running:
            self._set_state(ConnectorState.STOPPING)
        self._stopping.set()

    async def close(self) -> None:
        """Stop, wait for :meth:`run` to return, then release everything. Idempotent."""
        self.stop()
        if self._running:
            await self._finished.wait()
        if self._lifecycle is _Lifecycle.CLOSED:
            await self._released.wait()  # a concurrent close() may still be releasing
            return
        self._lifecycle = _Lifecycle.CLOSED
        if self._state not in (ConnectorState.FAILED, ConnectorState.NEW):
            self._set_state(ConnectorState.STOPPED)
        try:
            await self._stack.aclose()
        finally:
            self._released.set()


class Source(Connector[SourceConfigT]):
    """A connector that yields records into topics; implement :meth:`records`.

    The framework publishes what :meth:`records` yields, in order, and commits the records'
    positions once they are durable. :meth:`committed` tells where a previous run stopped;
    :attr:`stopping` and :meth:`idle` let the generator end when asked.

    Args:
        producer: a started :class:`~eventplatform.producer.EventProducer` to share; default
            one opened (and closed) here.
        offsets: a started :class:`~eventplatform.connectors.runtime.offsets.OffsetStore` to share;
            default one opened (and closed) here.
        The other arguments are :class:`Connector`'s.
    """

    Config: ClassVar[type[ConnectorConfig]] = SourceConfig
    role: ClassVar[str] = "source"
    resources: ClassVar[frozenset[str]] = Connector.resources | {"producer", "offsets"}

    def __init__(
        self,
        *,
        name: str,
        config: SourceConfigT | Mapping[str, Any] | None = None,
        topic: str | None = None,
        event_type: type[AvroEvent] | None = None,
        settings: Settings | None = None,
        bootstrap_servers: str | None = None,
        registry: SchemaRegistry | None = None,
        producer: EventProducer | None = None,
        offsets: OffsetStore | None = None,
    ) -> None:
        super().__init__(
            name=name,
            config=config,
            topic=topic,
            event_type=event_type,
            settings=settings,
            bootstrap_servers=bootstrap_servers,
            registry=registry,
        )
        self._producer = producer
        self._offsets = offsets

    @property
    def event_source(self) -> str:
        """The CloudEvents ``source`` of the records: ``/connectors/<name>`` unless configured."""
        return self.config.event_source or f"/connectors/{self.name}"

    @property
    def producer(self) -> EventProducer:
        """The producer records go through.

        Raises:
            ResourceStateError: before :meth:`start`.
        """
        if self._producer is None or self._lifecycle is _Lifecycle.NEW:
            raise ResourceStateError(f"{self!r}: the producer is available after start()")
        return self._producer

    @property
    def offsets(self) -> OffsetStore:
        """The offsets store.

        Raises:
            ResourceStateError: before :meth:`start`.
        """
        if self._offsets is None or self._lifecycle is _Lifecycle.NEW:
            raise ResourceStateError(f"{self!r}: the offsets are available after start()")
        return self._offsets

    def committed(self, partition: Mapping[str, Any]) -> dict[str, Any] | None:
        """The offset last committed for ``partition`` of this connector, or None.

        Raises:
            ResourceStateError: before :meth:`start`.
        """
        return self.offsets.get(self.name, partition)

    @abstractmethod
    def records(self) -> AsyncIterator[SourceRecord]:
        """Yield the records to publish, in order, until :attr:`stopping` (or exhausted).

        Written as an ``async def`` generator. It runs in a task of its own: a slow external
        system never blocks publishing. After :meth:`stop` it gets ``stop_grace`` seconds to
        return by itself before it is cancelled.
        """

    async def _open(self, stack: AsyncExitStack) -> None:
        await super()._open(stack)
        if self._producer is None:
            from eventplatform.producer import EventProducer  # noqa: PLC0415

            producer = EventProducer(
                bootstrap_servers=self.bootstrap_servers,
                registry=self._registry,
                settings=self.settings,
                source=self.event_source,
            )
            await producer.start()
            stack.push_async_callback(producer.close)
            self._producer = producer
        if self._offsets is None:
            from eventplatform.connectors.runtime.offsets import OffsetStore  # noqa: PLC0415

            offsets = OffsetStore(bootstrap_servers=self.bootstrap_servers, settings=self.settings)
            await offsets.start()
            stack.push_async_callback(offsets.close)
            self._offsets = offsets
        else:
            # A shared store may have missed a reset made by another process (the CLI).
            await self._offsets.refresh()

    async def _run(self) -> None:
        from eventplatform.connectors.runtime.pump import RecordWriter, SourcePump  # noqa: PLC0415

        writer = RecordWriter(
            self.producer,
            default_topic=self.topic,
            event_source=self.event_source,
        )
        pump = SourcePump(
            self,
            writer,
            self.offsets,
            max_batch=self.config.max_batch,
            max_in_flight=self.config.max_in_flight,
            stop_grace=self.config.stop_grace,
            stopping=self._stopping,
        )
        await pump.run()


class Sink(Connector[SinkConfigT]):
    """A connector that receives typed events from topics; implement :meth:`deliver`.

    It runs an :class:`~eventplatform.app.EventApp` (consumer group ``connect-<name>`` unless
    configured) whose handler is :meth:`deliver`, so a sink gets the app's guarantees: offsets
    commit after delivery, a key already handled is skipped (the idempotency store),
    retriable failures retry with backoff and then go to the dead-letter topic.
    """

    Config: ClassVar[type[ConnectorConfig]] = SinkConfig
    role: ClassVar[str] = "sink"

    def __init__(
        self,
        *,
        name: str,
        config: SinkConfigT | Mapping[str, Any] | None = None,
        topic: str | None = None,
        event_type: type[AvroEvent] | None = None,
        settings: Settings | None = None,
        bootstrap_servers: str | None = None,
        registry: SchemaRegistry | None = None,
    ) -> None:
        super().__init__(
            name=name,
            config=config,
            topic=topic,
            event_type=event_type,
            settings=settings,
            bootstrap_servers=bootstrap_servers,
            registry=registry,
        )
        self._app: EventApp | None = None
        self._app_base = ConnectorStats()

    @property
    def group_id(self) -> str:
        """The consumer group of the sink."""
        return self.config.group_id or f"connect-{self.name}"

    def event_types(self) -> Sequence[type[AvroEvent]]:
        """The event classes :meth:`deliver` takes: the instance's ``event_type`` by default."""
        return [self.event_type] if self.event_type is not None else []

    @abstractmethod
    async def deliver(self, event: AvroEvent, ctx: Context) -> None:
        """Deliver one event to the external system.

        Raise a retriable :class:`~eventplatform.errors.EventPlatformError` (or
        :class:`~eventplatform.app.RetryLater`) to have it retried with backoff; after the
        retries, or on another exception, it goes to the dead-letter topic.
        """

    def _refresh_stats(self) -> None:
        if self._app is not None:
            app_stats = self._app.stats
            self.stats.records = self._app_base.records + app_stats.handled
            self.stats.errors = self._app_base.errors + app_stats.dead_lettered
            self.stats.counters["skipped_duplicates"] = app_stats.skipped_duplicates
            self.stats.counters["retries"] = app_stats.retries

    async def _run(self) -> None:
        from eventplatform.app import EventApp  # noqa: PLC0415
        from eventplatform.idempotency import open_store  # noqa: PLC0415

        types = list(self.event_types())
        if not types:
            raise ConnectorConfigError(f"sink {self.name!r} has no event types to deliver")
        store = None
        if self.config.store is not None:
            idempotency = self.settings.idempotency
            store = open_store(
                self.config.store.get_secret_value(), lease=idempotency.lease, ttl=idempotency.ttl
            )
        app = EventApp(
            self.name,
            group_id=self.group_id,
            bootstrap_servers=self.bootstrap_servers,
            registry=self._registry,
            store=store,
            settings=self.settings,
        )
        for event_type in types:
            app.add_handler(
                event_type, self.deliver, topic=self.topic, dlq_topic=self.config.dlq_topic
            )
        self._app = app
        self._app_base = ConnectorStats(records=self.stats.records, errors=self.stats.errors)
        stopper = asyncio.ensure_future(self._stop_app_when_asked(app))
        try:
            await app.run()
        finally:
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)
            self._refresh_stats()

    async def _stop_app_when_asked(self, app: EventApp) -> None:
        await self._stopping.wait()
        app.stop()

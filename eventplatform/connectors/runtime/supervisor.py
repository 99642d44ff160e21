"""Running several connectors in one process, restarting failed ones, reporting their states.

:class:`ConnectorRuntime` is a small supervisor in the manner of Kafka Connect's standalone
worker: every connector instance runs in a task of its own over resources they share (one
schema registry client, one producer, the offsets store, the HTTP servers of the connectors
that answer requests). A connector that fails is closed and
a new instance of it is started after an exponential backoff (reset once it ran healthily for a
while); one that finishes (a finite source) or is stopped stays stopped. Configuration errors
are not retried: they do not fix themselves.

:meth:`ConnectorRuntime.status` gives each connector's state (``starting``, ``running``,
``failed`` with the last error and the time of the next restart, ``stopped``) and counters,
totalled over restarts; the same snapshots go to the status topic every ``status_interval``
seconds, for ``eventplatform connectors status`` in another process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any, Self

from eventplatform.connectors.runtime.http import HttpServers
from eventplatform.connectors.runtime.instances import ConnectorSpec
from eventplatform.connectors.runtime.offsets import DEFAULT_OFFSETS_TOPIC, OffsetStore
from eventplatform.connectors.runtime.statuses import DEFAULT_STATUS_TOPIC, StatusStore
from eventplatform.connectors.sdk.connector import Connector
from eventplatform.connectors.sdk.status import ConnectorState, ConnectorStats, ConnectorStatus
from eventplatform.errors import (
    ConfigurationError,
    EventPlatformError,
    ResourceStateError,
)
from eventplatform.producer import EventProducer
from eventplatform.registry.base import SchemaRegistry
from eventplatform.registry.factory import open_registry
from eventplatform.settings import Settings, load_settings

__all__ = ["Backoff", "ConnectorRuntime"]

log = logging.getLogger("eventplatform.connectors")


@dataclass(frozen=True, slots=True)
class Backoff:
    """When a failed connector is started again.

    Attributes:
        initial: seconds before the first restart.
        maximum: the longest wait.
        multiplier: growth per consecutive failure.
        jitter: the fraction a wait is randomly shortened by, so that connectors failing
            together do not restart in lockstep.
        healthy_after: seconds of running after which the next failure counts as the first.
    """

    initial: float = 1.0
    maximum: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.2
    healthy_after: float = 60.0

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` consecutive failures (1 for the first)."""
        base = min(self.maximum, self.initial * self.multiplier ** max(0, failures - 1))
        return base * (1 - self.jitter * random.random())


class _Lifecycle(Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


class _Supervised:
    """One connector instance under supervision: the current instance and the totals."""

    def __init__(self, spec: ConnectorSpec) -> None:
        self.spec = spec
        self.connector: Connector[Any] | None = None
        self.state = ConnectorState.NEW
        self.since = time.time()
        self.restarts = 0
        self.failures = 0
        self.next_restart_at: float | None = None
        self.totals = ConnectorStats()
        self.task: asyncio.Task[None] | None = None

    def enter(self, state: ConnectorState) -> None:
        if state is not self.state:
            self.state = state
            self.since = time.time()

    def absorb(self, connector: Connector[Any]) -> None:
        """Fold a finished instance's counters into the totals."""
        connector.health()  # brings the instance's counters up to date
        self.totals = self.totals.merged(connector.stats)
        self.connector = None

    def status(self, worker: str) -> ConnectorStatus:
        stats = self.totals
        state, since = self.state, self.since
        connector = self.connector
        if connector is not None:
            live = connector.health(type_name=self.spec.type_name)
            stats = stats.merged(
                ConnectorStats(
                    live.records,
                    live.errors,
                    live.last_activity,
                    live.last_error,
                    dict(live.counters),
                )
            )
            if live.state is not ConnectorState.NEW:
                state, since = live.state, live.since
        return ConnectorStatus(
            name=self.spec.name,
            type=self.spec.type_name,
            role=self.spec.role,
            state=state,
            records=stats.records,
            errors=stats.errors,
            last_activity=stats.last_activity,
            last_error=stats.last_error,
            counters=dict(stats.counters),
            restarts=self.restarts,
            next_restart_at=self.next_restart_at if state is ConnectorState.FAILED else None,
            since=since,
            worker=worker,
            updated_at=time.time(),
        )


class ConnectorRuntime:
    """Runs connector instances in this process until stopped. An async context manager.

    ::

        specs = load_instances(Path("connectors"))
        async with ConnectorRuntime(specs) as runtime:
            await runtime.run()            # until runtime.stop() (e.g. on SIGTERM)

    Args:
        specs: the instances to run.
        settings: all settings; default :func:`~eventplatform.settings.load_settings`.
        bootstrap_servers: the Kafka cluster; default ``settings.kafka.bootstrap_servers``.
        registry: a started schema registry to share; default one opened here.
        backoff: restart schedule of failed connectors.
        status_interval: seconds between status reports to the status topic.
        report_status: write statuses to the status topic (off: only :meth:`status`).
        offsets_topic, status_topic: the compacted topics used.

    Raises:
        ConfigurationError: two specs have one name, or no bootstrap servers are known.
    """

    def __init__(
        self,
        specs: Sequence[ConnectorSpec],
        *,
        settings: Settings | None = None,
        bootstrap_servers: str | None = None,
        registry: SchemaRegistry | None = None,
        backoff: Backoff | None = None,
        status_interval: float = 2.0,
        report_status: bool = True,
        offsets_topic: str = DEFAULT_OFFSETS_TOPIC,
        status_topic: str = DEFAULT_STATUS_TOPIC,
    ) -> None:
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigurationError(f"two connector instances are named {duplicates[0]!r}")
        self.settings = settings or load_settings()
        self.bootstrap_servers = bootstrap_servers or self.settings.kafka.bootstrap_servers
        if not self.bootstrap_servers:
            raise ConfigurationError(
                "no Kafka bootstrap servers: pass bootstrap_servers= or set "
                "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS"
            )
        self.backoff = backoff or Backoff()
        self.status_interval = status_interval
        self.report_status = report_status
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}"
        self._entries = {spec.name: _Supervised(spec) for spec in specs}
        self._registry = registry
        self._offsets_topic = offsets_topic
        self._status_topic = status_topic
        self._producer: EventProducer | None = None
        self._offsets: OffsetStore | None = None
        self._statuses: StatusStore | None = None
        self._http: HttpServers | None = None
        self._stack = AsyncExitStack()
        self._lifecycle = _Lifecycle.NEW
        self._stopping = asyncio.Event()
        self._running = False
        self._finished = asyncio.Event()

    def __repr__(self) -> str:
        return f"<ConnectorRuntime {len(self._entries)} connectors {self._lifecycle.value}>"

    @property
    def names(self) -> list[str]:
        """The connector instances, in the order given."""
        return list(self._entries)

    def connector(self, name: str) -> Connector[Any] | None:
        """The live instance of connector ``name`` (None between restarts and when stopped).

        Raises:
            KeyError: no connector of that name.
        """
        return self._entries[name].connector

    def status(self) -> list[ConnectorStatus]:
        """A snapshot of every connector, in the order given."""
        return [entry.status(self.worker_id) for entry in self._entries.values()]

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
        """Open the shared resources: registry, producer, offsets, HTTP servers, status topic.

        Raises:
            ResourceStateError: after :meth:`close`.
            KafkaError, RegistryError, ConfigurationError: Kafka or the registry cannot be
                reached, or a topic is unfit.
        """
        if self._lifecycle is _Lifecycle.STARTED:
            return
        if self._lifecycle is _Lifecycle.CLOSED:
            raise ResourceStateError(f"{self!r} cannot be restarted after close()")
        stack = self._stack
        try:
            if self._registry is None:
                registry = open_registry(self.settings, bootstrap_servers=self.bootstrap_servers)
                await registry.start()
                stack.push_async_callback(registry.close)
                self._registry = registry
            if any(entry.spec.role == "source" for entry in self._entries.values()):
                producer = EventProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    registry=self._registry,
                    settings=self.settings,
                )
                await producer.start()
                stack.push_async_callback(producer.close)
                self._producer = producer
                offsets = OffsetStore(
                    topic=self._offsets_topic,
                    bootstrap_servers=self.bootstrap_servers,
                    settings=self.settings,
                )
                await offsets.start()
                stack.push_async_callback(offsets.close)
                self._offsets = offsets
            if any(
                "http" in entry.spec.connector_class.resources for entry in self._entries.values()
            ):
                # The runtime owns the HTTP servers its request-reply connectors share: a
                # connector restarting detaches its route, and the runtime closes what is left.
                http = HttpServers()
                stack.push_async_callback(http.aclose)
                self._http = http
            if self.report_status:
                statuses = StatusStore(
                    topic=self._status_topic,
                    bootstrap_servers=self.bootstrap_servers,
                    settings=self.settings,
                )
                await statuses.start()
                stack.push_async_callback(statuses.close)
                self._statuses = statuses
        except BaseException:
            await stack.aclose()
            self._lifecycle = _Lifecycle.CLOSED
            raise
        self._lifecycle = _Lifecycle.STARTED

    async def run(self) -> None:
        """Run every connector until :meth:`stop`, then stop them gracefully.

        Starts the runtime first when it is new, and then also closes it.

        Raises:
            ResourceStateError: already running, or closed.
            KafkaError, RegistryError, ConfigurationError: starting failed. A connector's
                own failure is never raised: it is restarted, and reported in :meth:`status`.
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
        reporter = asyncio.create_task(self._report_loop(), name="connectors: status reporter")
        try:
            for entry in self._entries.values():
                entry.task = asyncio.create_task(
                    self._supervise(entry), name=f"connector {entry.spec.name}"
                )
            await self._stopping.wait()
            for entry in self._entries.values():
                if entry.connector is not None:
                    entry.connector.stop()
            tasks = [entry.task for entry in self._entries.values() if entry.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for entry in self._entries.values():
                if entry.task is not None and not entry.task.done():
                    entry.task.cancel()
            await asyncio.gather(
                *(e.task for e in self._entries.values() if e.task is not None),
                return_exceptions=True,
            )
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            await self._report()
            self._running = False
            self._finished.set()
            if owns:
                await self.close()

    def stop(self) -> None:
        """Ask every connector to finish what is in flight; :meth:`run` then returns."""
        self._stopping.set()

    async def close(self) -> None:
        """Stop, wait for :meth:`run`, and release the shared resources. Idempotent."""
        self.stop()
        if self._running:
            await self._finished.wait()
        if self._lifecycle is _Lifecycle.CLOSED:
            return
        self._lifecycle = _Lifecycle.CLOSED
        await self._stack.aclose()

    # -- supervision ---------------------------------------------------------------------------

    def _shared(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "bootstrap_servers": self.bootstrap_servers,
            "registry": self._registry,
            "producer": self._producer,
            "offsets": self._offsets,
            "http": self._http,
        }

    async def _supervise(self, entry: _Supervised) -> None:
        name = entry.spec.name
        while not self._stopping.is_set():
            entry.next_restart_at = None
            try:
                connector = entry.spec.create(**self._shared())
            except ConfigurationError as exc:
                log.error("connector %s cannot be created: %s", name, exc)
                entry.totals.failed(exc)
                entry.enter(ConnectorState.FAILED)
                return
            entry.connector = connector
            entry.enter(ConnectorState.STARTING)
            began = time.monotonic()
            try:
                await connector.run()
            except ConfigurationError as exc:
                log.error("connector %s is misconfigured, not restarting it: %s", name, exc)
                entry.absorb(connector)
                entry.enter(ConnectorState.FAILED)
                return
            except Exception as exc:
                entry.absorb(connector)
                entry.enter(ConnectorState.FAILED)
                if time.monotonic() - began > self.backoff.healthy_after:
                    entry.failures = 0
                entry.failures += 1
                delay = self.backoff.delay(entry.failures)
                entry.next_restart_at = time.time() + delay
                level = logging.WARNING if isinstance(exc, EventPlatformError) else logging.ERROR
                log.log(
                    level,
                    "connector %s failed (%s: %s); restarting in %.1fs",
                    name,
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=level == logging.ERROR,
                )
                await self._report()
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except TimeoutError:
                    entry.restarts += 1
                    continue
                return
            else:
                entry.absorb(connector)
                entry.enter(ConnectorState.STOPPED)
                log.info("connector %s stopped", name)
                return

    async def _report_loop(self) -> None:
        while True:
            await self._report()
            await asyncio.sleep(self.status_interval)

    async def _report(self) -> None:
        if self._statuses is None:
            return
        try:
            await self._statuses.publish(self.status())
        except EventPlatformError as exc:
            log.warning("writing connector statuses to %s failed: %s", self._status_topic, exc)

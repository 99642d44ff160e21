"""The HTTP server of the probes and metrics: ``/health/live``, ``/health/ready``, ``/metrics``.

``serve``, ``up`` and ``connectors run`` run it only when given a port (``--health-port``, or
``EVENTPLATFORM_OBSERVABILITY__PORT``):

- ``GET /health/live``: ``200 {"status": "alive"}`` while the event loop answers (a process
  whose loop is blocked does not answer at all, which is what a liveness probe detects).
- ``GET /health/ready``: ``200`` with ``{"status": "ready", "checks": […]}`` when every check
  of :mod:`~eventplatform.observability.health` passes, else ``503`` with the ``reasons``.
- ``GET /metrics``: the Prometheus text format (:mod:`~eventplatform.observability.metrics`),
  unless metrics are off (``EVENTPLATFORM_OBSERVABILITY__METRICS=false``): then 404.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web

from eventplatform.errors import ConfigurationError, PortInUse, ResourceStateError
from eventplatform.observability import events
from eventplatform.observability.health import (
    AppProbe,
    BrokerProbe,
    ConnectorsProbe,
    Probe,
    readiness,
)
from eventplatform.observability.metrics import PlatformCollector, require_prometheus

if TYPE_CHECKING:
    from eventplatform.app import EventApp
    from eventplatform.connectors.runtime import ConnectorRuntime
    from eventplatform.settings import ObservabilitySettings

__all__ = ["HealthServer", "observe"]

log = logging.getLogger("eventplatform.observability")


class HealthServer:
    """Serves the probes and the metrics on ``host:port`` (see the module docstring).

    Args:
        host, port: where to listen (port 0: a free one; :attr:`url` tells which).
        probes: what readiness checks.
        collector: the metrics; None: no ``/metrics``.
        setting: how to choose another port, named when the port is taken.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        probes: Sequence[Probe] = (),
        collector: PlatformCollector | None = None,
        setting: str = "--health-port or EVENTPLATFORM_OBSERVABILITY__PORT",
    ) -> None:
        self.host = host
        self.port = port
        self.probes = list(probes)
        self.collector = collector
        self.setting = setting
        self._runner: web.AppRunner | None = None
        self._registry: Any = None
        if collector is not None:
            prometheus = require_prometheus()
            self._registry = prometheus.CollectorRegistry(auto_describe=False)
            self._registry.register(collector)
            self._render: Callable[[Any], bytes] = prometheus.generate_latest
            self._content_type: str = prometheus.CONTENT_TYPE_LATEST

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

    @property
    def url(self) -> str:
        """``http://host:port`` of the server.

        Raises:
            ResourceStateError: not listening.
        """
        if self._runner is None or not self._runner.addresses:
            raise ResourceStateError("the health server is not listening")
        host, port = self._runner.addresses[0][:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def start(self) -> None:
        """Listen.

        Raises:
            PortInUse: the port is taken (the message names the setting to change).
            ConfigurationError: the address cannot be bound otherwise.
        """
        app = web.Application()
        app.router.add_get("/health/live", self._live)
        app.router.add_get("/health/ready", self._ready)
        if self._registry is not None:
            app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"the health server's port {self.port} on {self.host} is taken; "
                    f"choose another with {self.setting}",
                    port=self.port,
                    setting=self.setting,
                ) from exc
            raise ConfigurationError(
                f"cannot serve health probes on {self.host}:{self.port}: {exc}"
            ) from exc
        self._runner = runner

    async def close(self) -> None:
        """Stop listening. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _ready(self, request: web.Request) -> web.Response:
        result = await readiness(self.probes)
        return web.json_response(result.as_dict(), status=200 if result.ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        assert self.collector is not None
        await self.collector.refresh()
        return web.Response(
            body=self._render(self._registry), headers={"Content-Type": self._content_type}
        )


@asynccontextmanager
async def observe(
    settings: ObservabilitySettings,
    *,
    bootstrap_servers: str,
    app: EventApp | None = None,
    runtime: Callable[[], ConnectorRuntime | None] | None = None,
) -> AsyncIterator[HealthServer | None]:
    """Switch OpenTelemetry on when ``settings.otel`` says so, and run the health server of a
    command for as long as the block runs, if a port is set (:func:`_health`).

    Raises:
        ConfigurationError: as :func:`_health`, or OpenTelemetry is asked for and not
            installed.
    """
    platform = None
    if settings.otel:
        telemetry = events.instrument(bootstrap_servers=bootstrap_servers)
        if telemetry is not None:  # the platform's own counters, read when collected
            platform = telemetry.platform(app=app, runtime=runtime)
    try:
        async with _health(
            settings, bootstrap_servers=bootstrap_servers, app=app, runtime=runtime
        ) as server:
            yield server
    finally:
        if settings.otel:
            if platform is not None:
                platform.close()
            events.instrument(False)


@asynccontextmanager
async def _health(
    settings: ObservabilitySettings,
    *,
    bootstrap_servers: str,
    app: EventApp | None = None,
    runtime: Callable[[], ConnectorRuntime | None] | None = None,
) -> AsyncIterator[HealthServer | None]:
    """Run the health server of a command for as long as the block runs, if a port is set.

    Probes: the broker, then ``app`` (:class:`~eventplatform.observability.health.AppProbe`)
    and the connectors of ``runtime``. With metrics on, the duration histograms are switched
    on too, and switched off again at exit.

    Yields:
        The server, or None when ``settings.port`` is unset.

    Raises:
        ConfigurationError: metrics are on and prometheus-client is not installed (the
            message says what to install), or the address cannot be bound.
        PortInUse: the port is taken.
    """
    if settings.port is None:
        yield None
        return
    probes: list[Probe] = [BrokerProbe(bootstrap_servers)]
    if app is not None:
        probes.append(AppProbe(app))
    if runtime is not None:
        probes.append(ConnectorsProbe(lambda: _statuses(runtime)))
    collector = None
    if settings.metrics:
        try:
            collector = PlatformCollector(app=app, runtime=runtime)
        except ImportError as exc:
            raise ConfigurationError(
                f"{exc}; or switch /metrics off with EVENTPLATFORM_OBSERVABILITY__METRICS=false"
            ) from exc
        events.time_processing(True)
    try:
        async with HealthServer(
            host=settings.host, port=settings.port, probes=probes, collector=collector
        ) as server:
            paths = "/health/live, /health/ready" + (", /metrics" if collector else "")
            log.info("health server on %s (%s)", server.url, paths)
            yield server
    finally:
        if collector is not None:
            events.time_processing(False)


def _statuses(runtime: Callable[[], ConnectorRuntime | None]) -> list[Any]:
    current = runtime()
    if current is None:
        raise ResourceStateError("the connectors are not started")
    return current.status()

"""A deployment's own service, run by ``eventplatform up`` beside its connectors.

``up`` runs what ``connectors/`` lists; a service (an :class:`~eventplatform.app.EventApp`
of the deployment's own code) joins them through an instance file of this type::

    # connectors/greeter.toml
    type = "service"

    [settings]
    app = "myshop.service:create_app"   # MODULE:ATTRIBUTE, as `eventplatform serve` takes
    factory = true                      # create_app() returns the EventApp

The attribute is an EventApp, or with ``factory = true`` a function that returns one (then the
runtime's restart after a failure gets a fresh app; an EventApp itself is not restartable).
The module is imported with ``app_dir`` (default: the working directory, the deployment)
first on ``sys.path``, so a project's modules need no installing. The app runs on the deployment's
Kafka cluster; its counters show as the connector's (records: events handled; errors: events
dead-lettered).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import Field

from eventplatform.app import EventApp
from eventplatform.connectors.sdk.connector import Connector, ConnectorConfig
from eventplatform.errors import AppSpecError, ConnectorConfigError

__all__ = ["Service", "ServiceConfig"]


class ServiceConfig(ConnectorConfig):
    """Settings of a service instance (the ``[settings]`` table)."""

    app: str = Field(
        pattern=r"^[\w.]+:[\w.]+$",
        description="MODULE:ATTRIBUTE of an EventApp or of a function returning one.",
    )
    factory: bool = Field(
        default=False, description="APP is a function returning the EventApp (restartable)."
    )
    app_dir: str = Field(default=".", description="Directory put first on sys.path.")


class Service(Connector[ServiceConfig]):
    """Runs an EventApp of the deployment as a connector (see the module docstring)."""

    role: ClassVar[str] = "service"
    requires_topic: ClassVar[bool] = False
    requires_event_type: ClassVar[bool] = False

    _app: EventApp | None = None

    def _load(self) -> EventApp:
        # Imported here: serve's loader belongs to the CLI, which imports the connectors.
        from eventplatform.cli.serve import load_app  # noqa: PLC0415

        config = self.config
        try:
            return load_app(config.app, factory=config.factory, app_dir=config.app_dir)
        except AppSpecError as exc:
            raise ConnectorConfigError(f"service {self.name!r}: {exc}", key="settings.app") from exc

    def _refresh_stats(self) -> None:
        if self._app is not None:
            self.stats.records = self._app.stats.handled
            self.stats.errors = self._app.stats.dead_lettered

    async def _run(self) -> None:
        app = self._load()
        # The deployment's cluster, which the app's settings may not know (`up` provisions it).
        app.bootstrap_servers = self.bootstrap_servers
        self._app = app
        stopper = asyncio.ensure_future(self._stopping.wait())
        running = asyncio.ensure_future(app.run())
        try:
            await asyncio.wait((stopper, running), return_when=asyncio.FIRST_COMPLETED)
        finally:
            app.stop()
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)
            await running  # its error, if any, fails the connector
            self._refresh_stats()

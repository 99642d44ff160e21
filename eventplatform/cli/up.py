"""``eventplatform up``: the whole deployment in the foreground, with a live status view.

The work is :func:`eventplatform.deployment.serve_deployment`; this module is its command line
and its two views:

- on a terminal, a live table (rich): every connector's state, records, rate, errors and last
  error, under the broker, registry and ingress URLs;
- with ``--no-tty`` (or when stdout is not a terminal), plain lines for scripts and tests:
  ``ready ingress=http://… registry=http://… bootstrap=host:port connectors=a,b`` once every
  connector has started, ``state name=… state=…`` when a connector's state changes, and
  ``stopped`` at the end. Progress and logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from eventplatform.cli._common import err_console, fail_on_errors
from eventplatform.cli._logging import json_logs, notice, quiet_transient_states, use_log_format
from eventplatform.cli._observability import (
    HealthPortOption,
    LogFormatOption,
    observability_settings,
)
from eventplatform.cli._tables import fit
from eventplatform.cli.kafka import Security
from eventplatform.connectors.sdk.status import ConnectorState, ConnectorStatus
from eventplatform.deployment import Deployment, UpOptions, serve_deployment
from eventplatform.devkafka import Broker
from eventplatform.settings import load_settings

__all__ = ["app"]

app = typer.Typer()

_REFRESH = 1.0
_COLOURS = {
    ConnectorState.RUNNING: "green",
    ConnectorState.FAILED: "red",
    ConnectorState.STARTING: "yellow",
    ConnectorState.STOPPING: "yellow",
}


@app.command("up")
def up(
    directory: Annotated[
        Path, typer.Option("--dir", help="The folder of connector instances (*.toml).")
    ] = Path("connectors"),
    schemas: Annotated[
        Path | None,
        typer.Option("--schemas", help="The schema catalogue [default: schemas/ next to --dir]."),
    ] = None,
    registry_host: Annotated[
        str, typer.Option(help="Interface the schema registry listens on.")
    ] = "127.0.0.1",
    registry_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Schema registry port; 0 picks a free one [default: up.registry_port, 8081].",
        ),
    ] = None,
    kafka_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Development broker port [default: up.kafka_port, 9092]."
        ),
    ] = None,
    controller_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Development broker's KRaft controller port [default: up.controller_port, 9093].",
        ),
    ] = None,
    brokers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=9,
            help="Run a development cluster of this many KRaft nodes (3: replication factor 3, "
            "min.insync.replicas 2); node N listens on KAFKA_PORT+2(N-1) "
            "[default: devkafka.brokers, 1].",
        ),
    ] = None,
    security: Annotated[
        Security | None,
        typer.Option(
            help="Development broker: plaintext, or sasl_ssl (TLS with a throwaway CA, "
            "SCRAM-SHA-512 and ACLs; every component connects as the admin, and var/up.json "
            "names the CA and the password file) [default: devkafka.security].",
        ),
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Start clean: forget the broker's data (var/kafka) and the connectors' stores.",
        ),
    ] = False,
    partitions: Annotated[
        int, typer.Option(min=1, help="Partitions of the topics created for the connectors.")
    ] = 3,
    no_tty: Annotated[
        bool, typer.Option("--no-tty", help="Plain lines instead of the live view.")
    ] = False,
    log_level: Annotated[
        str, typer.Option(help="Level of eventplatform's log: DEBUG, INFO, WARNING, ERROR.")
    ] = "INFO",
    health_port: HealthPortOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run everything: Kafka, the schema registry, the catalogue and the connectors.

    Provides a broker (EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS if set, else Docker, else Java
    and Maven), serves the Kafka-log schema registry over Confluent's REST API, registers the
    catalogue, creates the connectors' topics and runs every enabled connector of --dir until
    Ctrl-C or SIGTERM, then stops it all.

    The development broker keeps its data in var/kafka next to --dir, so topics, offsets and
    schemas survive a restart (--fresh starts clean). While it runs, var/up.json says where
    everything listens, and commands run in this folder (`eventplatform topics list`) use it.
    """
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        err_console.print(f"[bold red]error:[/] unknown log level {log_level!r}")
        raise typer.Exit(2)
    with fail_on_errors():
        settings = load_settings()
        observability = observability_settings(health_port, log_format, base=settings.observability)
        settings = settings.model_copy(update={"observability": observability})
    # JSON lines are for a log pipeline: no live table around them.
    plain = no_tty or not sys.stdout.isatty() or observability.log_format == "json"
    view: PlainView | LiveView = PlainView() if plain else LiveView(Console())
    view.configure_logging(level)
    use_log_format(observability.log_format)
    options = UpOptions(
        connectors_dir=directory,
        schemas_dir=schemas,
        registry_host=registry_host,
        registry_port=registry_port,
        partitions=partitions,
        kafka_port=kafka_port,
        controller_port=controller_port,
        brokers=brokers,
        security=security.value if security is not None else None,
        fresh=fresh,
    )
    with fail_on_errors():
        try:
            serve_deployment(settings, options, view)
        except KeyboardInterrupt:  # a signal while the broker was starting
            raise typer.Exit(130) from None


def _ingress(deployment: Deployment) -> str:
    return ",".join(deployment.ingress_urls) or "none"


class PlainView:
    """Plain lines on stdout (see the module docstring); progress and logs on stderr."""

    def configure_logging(self, level: int) -> None:
        """eventplatform's log at ``level`` on stderr; other libraries' warnings only."""
        logging.basicConfig(
            level=logging.WARNING,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        logging.getLogger("eventplatform").setLevel(level)
        # The broker's start-up steps already come through progress().
        logging.getLogger("eventplatform.devkafka").setLevel(max(level, logging.WARNING))
        quiet_transient_states(level)

    def progress(self, message: str) -> None:
        """A step of starting or stopping, on stderr (a log record when the log is JSON)."""
        if json_logs():
            notice(message)
        else:
            print(message, file=sys.stderr, flush=True)

    async def show(self, deployment: Deployment, broker: Broker) -> None:
        """``ready …`` once started, then a line per connector state change."""
        await deployment.wait_ready()
        print(
            f"ready ingress={_ingress(deployment)} registry={deployment.registry_url} "
            f"bootstrap={broker.bootstrap_servers} "
            f"connectors={','.join(deployment.runtime.names)}",
            flush=True,
        )
        for name, url in deployment.connector_urls().items():
            print(f"url name={name} url={url}", flush=True)
        states: dict[str, ConnectorState] = {}
        while True:
            for status in deployment.status():
                if states.get(status.name) is not status.state:
                    states[status.name] = status.state
                    error = f" error={status.last_error!r}" if status.last_error else ""
                    print(f"state name={status.name} state={status.state.value}{error}", flush=True)
            await asyncio.sleep(_REFRESH)

    def stopped(self, statuses: Sequence[ConnectorStatus]) -> None:
        """A summary per connector on stderr, then ``stopped``."""
        for status in statuses:
            self.progress(
                f"{status.name}: {status.state.value}, {status.records} records, "
                f"{status.errors} errors, {status.restarts} restarts"
            )
        print("stopped", flush=True)


class LiveView:
    """A live table of the connectors under the deployment's URLs (rich)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._seen: dict[str, tuple[int, float]] = {}

    def configure_logging(self, level: int) -> None:
        """Log lines print above the live table, through the same console."""
        handler = RichHandler(console=self.console, show_path=False, rich_tracebacks=False)
        logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s")
        logging.getLogger("eventplatform").setLevel(max(level, logging.WARNING))
        # What the demo receiver gets is the point of the demo: always shown.
        logging.getLogger("eventplatform.demo").setLevel(logging.INFO)
        # aiokafka warns while a fresh broker elects its group coordinator; the table shows
        # what matters (a connector that cannot reach Kafka fails, with its error).
        logging.getLogger("aiokafka").setLevel(logging.ERROR)
        quiet_transient_states(level)

    def progress(self, message: str) -> None:
        """A step of starting or stopping."""
        self.console.print(f"[dim]{escape(message)}[/]")

    async def show(self, deployment: Deployment, broker: Broker) -> None:
        """The live view, refreshed every second until cancelled."""
        with Live(
            self._render(deployment, broker), console=self.console, auto_refresh=False
        ) as live:
            while True:
                await asyncio.sleep(_REFRESH)
                live.update(self._render(deployment, broker), refresh=True)

    def stopped(self, statuses: Sequence[ConnectorStatus]) -> None:
        """The final states."""
        self.console.print(self._table(statuses, rates=False))
        self.console.print("[bold]stopped[/]")

    def _render(self, deployment: Deployment, broker: Broker) -> Group:
        header = Table.grid(padding=(0, 2))
        header.add_column(style="bold")
        header.add_column()
        header.add_row("kafka", f"{broker.bootstrap_servers} ({broker.provider})")
        header.add_row("registry", deployment.registry_url)
        header.add_row("catalogue", deployment.catalogue_url)
        header.add_row("ingress", _ingress(deployment))
        for name, url in deployment.connector_urls().items():
            header.add_row(f"  {name}", url)
        footer = Text("Ctrl-C stops everything", style="dim")
        return Group(header, self._table(deployment.status(), rates=True), footer)

    def _table(self, statuses: Sequence[ConnectorStatus], *, rates: bool) -> Group:
        """The connectors' table; their last errors under it (a column would squeeze the
        names in an 80-column terminal)."""
        table = Table(title="connectors", title_justify="left", expand=False)
        for column in ("name", "type", "state", "records", "rate/s", "errors"):
            table.add_column(column, overflow="fold")
        errors: list[Text] = []
        now = time.monotonic()
        for status in statuses:
            rate = ""
            if rates:
                before = self._seen.get(status.name)
                if before is not None and now > before[1]:
                    rate = f"{(status.records - before[0]) / (now - before[1]):.1f}"
                self._seen[status.name] = (status.records, now)
            colour = _COLOURS.get(status.state)
            state = status.state.value
            if status.restarts:
                state += f" ({status.restarts} restarts)"
            table.add_row(
                escape(status.name),
                escape(status.type),
                f"[{colour}]{state}[/]" if colour else state,
                str(status.records),
                rate,
                str(status.errors),
            )
            if status.last_error:
                errors.append(Text.assemble((f"{status.name}: ", "bold"), status.last_error))
        return Group(fit(table, self.console, identifiers=("name", "type", "state")), *errors)

"""``eventplatform connectors …``: list, run and inspect the connectors of a deployment.

- ``list``: connector types available (entry points and built-ins) and the instances in
  ``connectors/``, each validated (an invalid one is shown with its error).
- ``run [NAME…]``: run instances (all enabled ones by default) in the foreground until Ctrl-C
  or SIGTERM; prints ``ready connectors=a,b`` on stdout once the runtime started.
- ``status``: the state, counters and last error of every connector that reported to the
  status topic, from any process; a status older than three report intervals is *stale*.
- ``offsets show NAME`` / ``offsets reset NAME``: the committed source positions of an
  instance; reset forgets them (stop the connector first), so it starts over.

Kafka comes from the settings (``EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from eventplatform import heap
from eventplatform.cli import _clients
from eventplatform.cli._common import console, err_console, fail_on_errors
from eventplatform.cli._logging import configure_logging, notice, report_rate
from eventplatform.cli._observability import (
    HealthPortOption,
    LogFormatOption,
    observability_settings,
)
from eventplatform.cli._tables import fit
from eventplatform.connectors.runtime.instances import (
    ConnectorSpec,
    EventTypeResolver,
    load_instance,
)
from eventplatform.connectors.runtime.instances import load_instances as _load_instances
from eventplatform.connectors.runtime.offsets import OffsetStore
from eventplatform.connectors.runtime.plugins import available
from eventplatform.connectors.runtime.statuses import StatusStore
from eventplatform.connectors.runtime.supervisor import ConnectorRuntime
from eventplatform.connectors.sdk.status import ConnectorState, ConnectorStatus
from eventplatform.errors import ConfigurationError, EventPlatformError
from eventplatform.observability.server import observe
from eventplatform.settings import ObservabilitySettings, Settings, load_settings

__all__ = ["app"]

app = typer.Typer(help="Run and inspect connectors.", no_args_is_help=True)
offsets_app = typer.Typer(help="Committed source positions.", no_args_is_help=True)
app.add_typer(offsets_app, name="offsets")

DirOption = Annotated[
    Path, typer.Option("--dir", help="The folder of connector instances (*.toml).")
]
SchemasOption = Annotated[
    Path | None,
    typer.Option("--schemas", help="The schema catalogue [default: schemas/ next to --dir]."),
]
STATUS_INTERVAL = 2.0


def _settings() -> Settings:
    settings = load_settings()
    if not settings.kafka.bootstrap_servers:
        raise ConfigurationError(
            "connectors need a Kafka cluster: set EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS (for "
            "development, start one with `eventplatform kafka start`)"
        )
    return settings


@app.command("list")
def list_command(directory: DirOption = Path("connectors"), schemas: SchemasOption = None) -> None:
    """Show the connector types available and the instances in --dir."""
    with fail_on_errors():
        types = Table(title="connector types", title_justify="left")
        types.add_column("type")
        types.add_column("class (from)", overflow="fold")
        for found in available().values():
            types.add_row(
                escape(found.name), f"{escape(found.target)}\n[dim]{escape(found.origin)}[/]"
            )
        console.print(fit(types, console, identifiers=("type", "class (from)")))
        if not directory.is_dir():
            console.print(f"no instances: {directory} is not a folder")
            return
        resolver = EventTypeResolver(schemas or directory.resolve().parent / "schemas")
        instances = Table(title=f"instances in {directory}", title_justify="left")
        for column in ("name", "type", "topic / event type", "enabled"):
            instances.add_column(column, overflow="fold")
        # The settings print under the table: a column of JSON would squeeze the names.
        details: list[str] = []
        broken = 0
        for path in sorted(directory.glob("*.toml")):
            try:
                spec = load_instance(path, resolver=resolver)
            except EventPlatformError as exc:
                broken += 1
                instances.add_row(escape(path.stem), "[red]invalid[/]", "", "")
                details.append(f"[bold]{escape(path.stem)}[/] [red]{escape(str(exc))}[/]")
                continue
            instances.add_row(
                escape(spec.name),
                escape(spec.type_name),
                "\n".join(escape(x) for x in (spec.topic, spec.event_type_name) if x),
                "yes" if spec.enabled else "no",
            )
            # SecretStr fields dump as '**********'.
            settings = json.dumps(spec.config.model_dump(mode="json"), ensure_ascii=False)
            details.append(f"[bold]{escape(spec.name)}[/] {escape(settings)}")
        identifiers = ("name", "type", "topic / event type", "enabled")
        console.print(fit(instances, console, identifiers=identifiers))
        for line in details:
            console.print(line, highlight=False)
        if broken:
            raise typer.Exit(1)


@app.command("run")
def run_command(
    names: Annotated[
        list[str] | None, typer.Argument(help="Instances to run [default: every enabled one].")
    ] = None,
    directory: DirOption = Path("connectors"),
    schemas: SchemasOption = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    stats_interval: Annotated[
        float,
        typer.Option(min=0, help="Seconds between INFO lines of the record rate; 0: none."),
    ] = 10.0,
    health_port: HealthPortOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run connector instances until Ctrl-C or SIGTERM (in-flight records finish first)."""
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        err_console.print(f"[bold red]error:[/] unknown log level {log_level!r}")
        raise typer.Exit(2)
    with fail_on_errors():
        settings = _settings()
        observability = observability_settings(health_port, log_format, base=settings.observability)
    configure_logging(level, log_format=observability.log_format)
    with fail_on_errors():
        specs = _load_instances(directory, names=names or None, schemas_dir=schemas)
        if not specs:
            raise ConfigurationError(f"{directory}: no enabled connector instances to run")
        try:
            _clients.run(_run(specs, settings, stats_interval, observability))
        except (KeyboardInterrupt, asyncio.CancelledError):  # a second signal
            raise typer.Exit(130) from None


async def _run(
    specs: list[ConnectorSpec],
    settings: Settings,
    stats_interval: float,
    observability: ObservabilitySettings,
) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    runtime = ConnectorRuntime(specs, settings=settings, status_interval=STATUS_INTERVAL)

    def on_signal(signum: signal.Signals) -> None:
        if runtime_stopping.is_set() and task is not None:
            task.cancel()
            return
        notice(f"{signum.name}: stopping the connectors (again to abort)")
        runtime_stopping.set()
        runtime.stop()

    runtime_stopping = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    servers = runtime.bootstrap_servers or ""
    try:
        async with (
            observe(observability, bootstrap_servers=servers, runtime=lambda: runtime),
            runtime,
        ):
            print(f"ready connectors={','.join(runtime.names)}", flush=True)
            heap.settle()
            rate = None
            if stats_interval > 0:
                records = lambda: sum(status.records for status in runtime.status())  # noqa: E731
                rate = asyncio.create_task(
                    report_rate("connectors", records, interval=stats_interval, what="records")
                )
            try:
                await runtime.run()
            finally:
                if rate is not None:
                    rate.cancel()
        for status in runtime.status():
            notice(
                f"{status.name}: {status.state.value}, {status.records} records, "
                f"{status.errors} errors, {status.restarts} restarts"
            )
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


@app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the last reported state of every connector (from the status topic)."""
    with fail_on_errors():
        statuses = _clients.run(_read_statuses(_settings()))
    now = time.time()
    if as_json:
        rows = [
            {**s.as_dict(), "stale": StatusStore.is_stale(s, STATUS_INTERVAL, now)}
            for s in statuses
        ]
        print(json.dumps(rows, indent=2))
        return
    if not statuses:
        console.print("no connector has reported a status yet")
        return
    table = Table(title="connectors", title_justify="left")
    for column in (
        "name",
        "type",
        "state",
        "records",
        "errors",
        "restarts",
        "last activity",
        "last error",
        "worker",
    ):
        table.add_column(column, overflow="fold")
    for status in statuses:
        table.add_row(
            status.name,
            status.type,
            _state(status, now),
            str(status.records),
            str(status.errors),
            str(status.restarts),
            _ago(status.last_activity, now),
            status.last_error or "",
            status.worker,
        )
    console.print(fit(table, console, identifiers=("name", "type", "state", "worker")))


async def _read_statuses(settings: Settings) -> list[ConnectorStatus]:
    async with StatusStore(settings=settings) as store:
        return await store.read()


def _state(status: ConnectorStatus, now: float) -> str:
    text = status.state.value
    colour = {
        ConnectorState.RUNNING: "green",
        ConnectorState.FAILED: "red",
        ConnectorState.STARTING: "yellow",
    }.get(status.state, "")
    if status.state is ConnectorState.FAILED and status.next_restart_at:
        text += f" (restart in {max(0.0, status.next_restart_at - now):.0f}s)"
    if StatusStore.is_stale(status, STATUS_INTERVAL, now) and status.state not in (
        ConnectorState.STOPPED,
        ConnectorState.FAILED,
    ):
        return f"[dim]{text}, stale: last seen {_ago(status.updated_at, now)}[/]"
    return f"[{colour}]{text}[/]" if colour else text


def _ago(moment: float | None, now: float) -> str:
    if not moment:
        return "never"
    seconds = max(0.0, now - moment)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    return datetime.fromtimestamp(moment).isoformat(sep=" ", timespec="seconds")


@offsets_app.command("show")
def offsets_show(
    name: Annotated[str, typer.Argument(help="The connector instance.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the committed source positions of connector NAME."""
    with fail_on_errors():
        positions = _clients.run(_positions(_settings(), name))
    rows = [{"partition": dict(p.partition), "offset": dict(p.offset)} for p in positions]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(f"connector {name!r} has no committed offsets")
        return
    table = Table(title=f"offsets of {name}", title_justify="left")
    table.add_column("source partition", overflow="fold")
    table.add_column("source offset", overflow="fold")
    for row in rows:
        table.add_row(json.dumps(row["partition"]), json.dumps(row["offset"]))
    console.print(table)


async def _positions(settings: Settings, name: str) -> list[Any]:
    async with OffsetStore(settings=settings) as store:
        return [position for _, position in store.positions(name)]


@offsets_app.command("reset")
def offsets_reset(
    name: Annotated[str, typer.Argument(help="The connector instance.")],
    partition: Annotated[
        str | None,
        typer.Option(help='Only this source partition, as JSON (e.g. \'{"path": "/x.jsonl"}\').'),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Forget the committed positions of connector NAME: it starts over on its next start.

    Stop the connector first; a running one keeps the positions it holds.
    """
    with fail_on_errors():
        partitions = None
        if partition is not None:
            try:
                parsed = json.loads(partition)
            except ValueError as exc:
                raise ConfigurationError(f"--partition is not JSON: {exc}") from exc
            if not isinstance(parsed, dict):
                raise ConfigurationError("--partition must be a JSON object")
            partitions = [parsed]
        if not yes:
            typer.confirm(f"forget the offsets of connector {name!r}?", abort=True)
        removed = _clients.run(_reset(_settings(), name, partitions))
    console.print(f"removed {removed} committed offset(s) of {name!r}")


async def _reset(settings: Settings, name: str, partitions: list[dict[str, Any]] | None) -> int:
    async with OffsetStore(settings=settings) as store:
        return await store.reset(name, partitions)

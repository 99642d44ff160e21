"""``eventplatform serve MODULE:APP``: run an :class:`~eventplatform.app.EventApp`.

Like uvicorn's ``module:attribute`` spec: ``MODULE`` is imported (the working directory is put
first on ``sys.path``, so a project's own modules import without installing them) and
``APP`` is an attribute path in it (``service:app``, ``service:apps.billing``). With
``--factory`` the attribute is called with no arguments to build the app.

Prints ``ready group=… topics=…`` on stdout once the app has joined its group, so scripts and
tests can wait for it. With ``--health-port`` (or ``EVENTPLATFORM_OBSERVABILITY__PORT``) it also
serves ``/health/live``, ``/health/ready`` and ``/metrics`` (:mod:`eventplatform.observability`);
``--log-format json`` writes the log as JSON lines. An app with no bootstrap servers configured,
served in a folder where ``eventplatform up`` is running, uses that one's cluster as the other
commands do (``var/up.json``: servers, and on a secured cluster the CA, user and password file).
SIGTERM or SIGINT stops it gracefully:
in-flight events finish, their offsets commit and the member leaves the group; a second signal
cancels at once. Exit status: 0 after a graceful stop, 1 on an eventplatform error, 2 on a bad
spec.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import typer

from eventplatform import heap
from eventplatform._importing import import_object
from eventplatform.app import EventApp
from eventplatform.cli import _clients
from eventplatform.cli._common import err_console, fail_on_errors
from eventplatform.cli._logging import configure_logging, notice, report_rate
from eventplatform.cli._observability import (
    HealthPortOption,
    LogFormatOption,
    observability_settings,
)
from eventplatform.errors import AppSpecError, ImportSpecError
from eventplatform.observability.server import observe
from eventplatform.settings import ObservabilitySettings

__all__ = ["AppSpecError", "app", "load_app", "serve"]  # AppSpecError: re-exported from errors

app = typer.Typer(help="Run an EventApp.", no_args_is_help=True)


def load_app(spec: str, *, factory: bool = False, app_dir: str = ".") -> EventApp:
    """The EventApp a ``module:attribute`` spec names.

    Raises:
        AppSpecError: the spec is malformed, the module or attribute is missing, or the
            object is not an EventApp.
    """
    try:
        target: Any = import_object(
            spec, what="app", form="MODULE:APP (e.g. billing.service:app)", search_path=app_dir
        )
    except ImportSpecError as exc:
        raise AppSpecError(str(exc)) from exc
    if factory:
        if not callable(target):
            raise AppSpecError(f"app {spec!r} is not callable; drop --factory")
        target = target()
    if not isinstance(target, EventApp):
        hint = " (use --factory for a function that builds one)" if callable(target) else ""
        raise AppSpecError(f"app {spec!r} is a {type(target).__name__}, not an EventApp{hint}")
    return target


async def _serve(
    event_app: EventApp, stats_interval: float, observability: ObservabilitySettings
) -> None:
    servers = event_app.bootstrap_servers or ""
    async with observe(observability, bootstrap_servers=servers, app=event_app), event_app:
        print(
            f"ready group={event_app.group_id} topics={','.join(event_app.topics)} "
            f"instance={event_app.instance_id}",
            flush=True,
        )
        heap.settle()
        rate = None
        if stats_interval > 0:
            rate = asyncio.create_task(
                report_rate(
                    event_app.name, lambda: event_app.stats.handled, interval=stats_interval
                )
            )
        try:
            await event_app.serve()
        finally:
            if rate is not None:
                rate.cancel()


def serve(
    spec: Annotated[str, typer.Argument(metavar="MODULE:APP", help="e.g. billing.service:app")],
    factory: Annotated[
        bool, typer.Option("--factory", help="APP is a function that returns the EventApp.")
    ] = False,
    app_dir: Annotated[
        str, typer.Option("--app-dir", help="Directory put first on sys.path.")
    ] = ".",
    instance_id: Annotated[
        str | None,
        typer.Option(
            "--instance-id",
            help="Stable name of this instance: static group membership (KIP-345) and the "
            "transactional id. Each running process needs its own. Default: host name, "
            "dynamic membership.",
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")
    ] = "INFO",
    stats_interval: Annotated[
        float,
        typer.Option(min=0, help="Seconds between INFO lines of the handling rate; 0: none."),
    ] = 10.0,
    health_port: HealthPortOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run an EventApp until SIGTERM or Ctrl-C (graceful: in-flight events finish)."""
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        err_console.print(f"[bold red]error:[/] unknown log level {log_level!r}")
        raise typer.Exit(2)
    with fail_on_errors():
        observability = observability_settings(health_port, log_format)
    configure_logging(level, log_format=observability.log_format)
    with fail_on_errors():
        try:
            event_app = load_app(spec, factory=factory, app_dir=app_dir)
        except AppSpecError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from exc
        if instance_id:
            event_app.instance_id = instance_id
        if not event_app.bootstrap_servers:  # beside a running `up`: its cluster
            settings = _clients.with_running_up(event_app.settings)
            event_app.settings = settings
            event_app.bootstrap_servers = settings.kafka.bootstrap_servers
        try:
            asyncio.run(_serve(event_app, stats_interval, observability))
        except (KeyboardInterrupt, asyncio.CancelledError):  # a second signal, or an early one
            raise typer.Exit(130) from None
    notice(f"{event_app.name} stopped: {event_app.stats.as_dict()}", markup="dim")


app.command("serve")(serve)


if __name__ == "__main__":  # python -m eventplatform.cli.serve MODULE:APP (before mounting)
    app()

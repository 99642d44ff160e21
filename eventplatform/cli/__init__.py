"""The ``eventplatform`` command line.

Built with typer (on click) and rich: commands are typed functions whose signatures are the
CLI, sub-apps mount per concern (``kafka``, ``schemas``, ``registry``, …), and long work shows
progress through rich. Each concern lives in its own module and is mounted here.
"""

from __future__ import annotations

from typing import Annotated

import typer

from eventplatform.__about__ import __version__
from eventplatform.cli import (
    apps,
    connectors,
    dlq,
    init,
    io,
    kafka,
    queues,
    registry,
    schemas,
    serve,
    topics,
    up,
)
from eventplatform.cli import catalogue as catalogue_cli
from eventplatform.cli._help import hide_flag_metavars

__all__ = ["app", "main"]

hide_flag_metavars()
app = typer.Typer(
    name="eventplatform",
    help="Typed, exactly-once-style event streaming on Apache Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(init.app)
app.add_typer(up.app)
app.add_typer(kafka.app, name="kafka")
app.add_typer(registry.app, name="registry")
app.add_typer(serve.app)
app.add_typer(schemas.app, name="schemas")
app.add_typer(topics.app, name="topics")
app.add_typer(io.app)
app.add_typer(connectors.app, name="connectors")
app.add_typer(dlq.app, name="dlq")
app.add_typer(catalogue_cli.app, name="catalogue")
app.add_typer(queues.app, name="queues")
app.add_typer(apps.app, name="apps")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"eventplatform {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Typed, exactly-once-style event streaming on Apache Kafka."""


def main() -> None:
    """Entry point of the ``eventplatform`` script."""
    app()

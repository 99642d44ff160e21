"""``eventplatform apps …``: scoped credentials for third-party apps (SCRAM users and ACLs).

``add`` prints the app's client configuration, password included, to stdout: once, because
the cluster keeps only a salted hash. Everything else (progress, errors) goes to stderr and
never holds the password. See :mod:`eventplatform.apps` for what is granted and why.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.markup import escape
from rich.table import Column, Table

from eventplatform.apps import AppGrants, ClientConfig, add_app, list_apps, revoke_app
from eventplatform.apps.scram import (
    DEFAULT_ITERATIONS,
    MAX_ITERATIONS,
    MIN_ITERATIONS,
    ScramMechanism,
)
from eventplatform.cli._clients import bootstrap_servers, with_running_up
from eventplatform.cli._common import console, err_console, fail_on_errors
from eventplatform.cli._tables import fit
from eventplatform.errors import ConfigurationError
from eventplatform.settings import Settings, load_settings

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown")


@app.callback()
def _group() -> None:
    """Give third-party apps their own SCRAM credentials and ACLs; list and revoke them."""


def _settings() -> Settings:
    settings = with_running_up(load_settings())
    bootstrap_servers(settings)  # a clear error when no cluster is configured
    return settings


def _read_password(password_file: Path | None, from_stdin: bool) -> SecretStr | None:
    if password_file is not None and from_stdin:
        raise ConfigurationError("give --password-file or --password-stdin, not both")
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read --password-file {password_file}: {exc.strerror}"
            ) from None
        where = f"--password-file {password_file}"
    elif from_stdin:
        text = sys.stdin.read()
        where = "standard input"
    else:
        return None
    lines = text.splitlines()
    password = lines[0] if lines else ""
    if not password:
        raise ConfigurationError(f"the password from {where} is empty")
    return SecretStr(password)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The app: its SCRAM user and principal User:NAME.")],
    read: Annotated[
        list[str] | None,
        typer.Option("--read", help="A topic it may consume (repeat; a trailing * is a prefix)."),
    ] = None,
    write: Annotated[
        list[str] | None,
        typer.Option("--write", help="A topic it may produce to (repeat; trailing * a prefix)."),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            help="Prefix of its consumer groups and transactional ids; default: the app's "
            "name itself and NAME.* (never a bare prefix of another app's name).",
        ),
    ] = None,
    mechanism: Annotated[
        ScramMechanism, typer.Option("--mechanism", help="The SCRAM mechanism.")
    ] = "SCRAM-SHA-512",
    registry: Annotated[
        bool,
        typer.Option(
            "--registry/--no-registry",
            help="Let it read the Kafka-log schema registry's topic (registry.topic).",
        ),
    ] = True,
    dead_letters: Annotated[
        bool,
        typer.Option(
            "--dlq/--no-dlq",
            help="Let it write the dead-letter topic of each read topic (T + consumer.dlq_suffix).",
        ),
    ] = True,
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", help="Read its password from this file (first line)."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read its password from stdin (first line).")
    ] = False,
    iterations: Annotated[
        int,
        typer.Option(
            "--iterations", min=MIN_ITERATIONS, max=MAX_ITERATIONS, help="PBKDF2 iterations."
        ),
    ] = DEFAULT_ITERATIONS,
) -> None:
    """Create an app's SCRAM user and ACLs, and print its client configuration.

    The password (random unless read from a file or stdin; never an argument, which other
    users could see in the process list) is printed once, here, to stdout.
    """
    with fail_on_errors():
        settings = _settings()
        try:
            grants = AppGrants(
                name,
                read=tuple(read or ()),
                write=tuple(write or ()),
                group_prefix=group,
                dlq_suffix=settings.consumer.dlq_suffix if dead_letters else None,
                registry_topic=(
                    settings.registry.topic if registry and not settings.registry.url else None
                ),
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        if not grants.read and not grants.write:
            raise typer.BadParameter("give at least one --read or --write topic")
        password = _read_password(password_file, password_stdin)
        credentials = asyncio.run(
            add_app(
                grants,
                settings.kafka,
                mechanism=mechanism,
                password=password,
                iterations=iterations,
            )
        )
    err_console.print(
        f"created app [bold]{escape(name)}[/] (User:{escape(name)}, {mechanism}) with "
        f"{len(grants.acls())} ACLs; its client configuration follows on stdout",
        highlight=False,
    )
    sys.stdout.write(ClientConfig(credentials, settings.kafka, settings.registry).render())
    sys.stdout.flush()


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """List the apps (SCRAM users holding ACLs) with what each may read, write and use."""
    with fail_on_errors():
        apps = asyncio.run(list_apps(_settings().kafka))
    if as_json:
        sys.stdout.write(json.dumps([a.as_dict() for a in apps], indent=2) + "\n")
        return
    table = Table(
        Column("app", overflow="fold"),
        Column("mechanism", overflow="fold"),
        Column("read", overflow="fold"),
        Column("write", overflow="fold"),
        Column("groups", overflow="fold"),
        Column("transactional ids", overflow="fold"),
        "other",
    )
    for summary in apps:
        table.add_row(
            escape(summary.name),
            ", ".join(sorted(summary.mechanisms)),
            escape("\n".join(summary.reads)),
            escape("\n".join(summary.writes)),
            escape("\n".join(summary.groups)),
            escape("\n".join(summary.transactional_ids)),
            escape("\n".join(summary.other)),
        )
    table.caption = f"{len(apps)} app{'' if len(apps) == 1 else 's'}"
    console.print(fit(table, console, identifiers=("app", "mechanism")))


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The app to remove.")]) -> None:
    """Delete an app's ACLs and SCRAM credential: every broker refuses it afterwards."""
    with fail_on_errors():
        removed = asyncio.run(revoke_app(name, _settings().kafka))
    err_console.print(
        f"revoked app [bold]{escape(name)}[/]: {len(removed.acls)} ACLs and "
        f"{len(removed.mechanisms)} SCRAM credential(s) deleted",
        highlight=False,
    )

"""``eventplatform catalogue build``: the event catalogue of a deployment, as files.

Writes ``asyncapi.json`` (AsyncAPI 3.0) and ``index.html`` (a self-contained page) into
``--out`` from the schema catalogue (``--schemas``), the connector instances (``--dir``) and
the apps named with ``--app MODULE:APP`` (as ``eventplatform serve`` takes them). Versions
and compatibility levels come from the configured schema registry when it answers within
``registry.timeout``; otherwise the page says it shows the catalogue files alone, and why.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from yarl import URL

from eventplatform.catalogue import (
    EventCatalogue,
    RegistryView,
    add_registry_versions,
    describe_deployment,
    write_catalogue,
)
from eventplatform.cli import _clients
from eventplatform.cli._common import console, err_console, fail_on_errors
from eventplatform.cli.serve import AppSpecError, load_app
from eventplatform.connectors.runtime.instances import load_instances
from eventplatform.errors import ConfigurationError, EventPlatformError
from eventplatform.schema import load_catalogue
from eventplatform.settings import Settings, load_settings

__all__ = ["app"]

app = typer.Typer(help="The event catalogue: AsyncAPI document and web page.", no_args_is_help=True)


@app.command("build")
def build(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for asyncapi.json and index.html.")
    ] = Path("var/catalogue"),
    directory: Annotated[
        Path, typer.Option("--dir", help="The folder of connector instances (*.toml).")
    ] = Path("connectors"),
    schemas: Annotated[
        Path | None,
        typer.Option("--schemas", help="The schema catalogue [default: schemas/ next to --dir]."),
    ] = None,
    apps: Annotated[
        list[str] | None,
        typer.Option("--app", metavar="MODULE:APP", help="An EventApp whose handlers consume."),
    ] = None,
    app_dir: Annotated[
        str, typer.Option("--app-dir", help="Directory put first on sys.path for --app.")
    ] = ".",
    title: Annotated[str, typer.Option(help="Title of the catalogue.")] = "Event catalogue",
    registry: Annotated[
        bool,
        typer.Option(
            "--registry/--no-registry",
            help="Ask the configured schema registry for versions and compatibility levels.",
        ),
    ] = True,
) -> None:
    """Write the AsyncAPI 3.0 document and the HTML catalogue of the deployment's events."""
    settings = load_settings()
    schemas_dir = schemas or directory.resolve().parent / "schemas"
    with fail_on_errors():
        try:
            event_apps = [load_app(spec, app_dir=app_dir) for spec in apps or ()]
        except AppSpecError as exc:
            err_console.print(f"[bold red]error:[/] --app: {exc}", highlight=False)
            raise typer.Exit(2) from exc
        loaded = load_catalogue(schemas_dir) if schemas_dir.is_dir() else None
        specs = load_instances(directory, schemas_dir=schemas_dir) if directory.is_dir() else []
        if loaded is None and not specs and not event_apps:
            raise ConfigurationError(
                f"nothing to catalogue: no schemas at {schemas_dir}, no connectors at "
                f"{directory} and no --app"
            )
        kafka = settings.kafka
        catalogue = describe_deployment(
            catalogue=loaded,
            specs=specs,
            apps=event_apps,
            title=title,
            bootstrap_servers=kafka.bootstrap_servers,
            security_protocol=kafka.security_protocol,
            sasl_mechanism=kafka.sasl_mechanism,
            subject_strategy=settings.registry.subject_strategy,
            registry=RegistryView(consulted=False, note="--no-registry was given"),
        )
        registry_url = _registry_url(settings)
        if registry:
            catalogue = asyncio.run(_with_registry(catalogue, settings, registry_url))
        # The Kafka server binding names a REST registry; the Kafka-log one has no URL.
        rest_url = registry_url if settings.registry.url else None
        written = write_catalogue(catalogue, out, registry_url=rest_url)
    source = "the registry" if catalogue.registry.consulted else "the catalogue files"
    console.print(
        f"{len(catalogue.events)} event types, {len(catalogue.topics)} topics, "
        f"{len(catalogue.routes)} webhook routes; versions from {source}"
    )
    if not catalogue.registry.consulted:
        err_console.print("[yellow]note:[/] ", end="")
        err_console.print(catalogue.registry.note, markup=False, highlight=False)
    for path in written:
        console.print(f"wrote {path}", markup=False, highlight=False)


def _registry_url(settings: Settings) -> str | None:
    """Where the registry is, without credentials (a URL may carry user:password@)."""
    if settings.registry.url:
        return str(URL(settings.registry.url).with_user(None))
    if settings.kafka.bootstrap_servers:
        return f"kafka-log topic {settings.registry.topic} on {settings.kafka.bootstrap_servers}"
    return None


async def _with_registry(
    catalogue: EventCatalogue, settings: Settings, url: str | None
) -> EventCatalogue:
    """``catalogue`` with the registry's versions; the catalogue files alone when it fails."""
    try:
        async with asyncio.timeout(settings.registry.timeout):
            async with _clients.registry_factory(settings) as opened:
                return await add_registry_versions(catalogue, opened, url=url)
    except ConfigurationError:
        note = (
            "no registry is configured (EVENTPLATFORM_REGISTRY__URL, or "
            "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS for the Kafka-log registry)"
        )
    except TimeoutError:
        note = f"the registry ({url}) did not answer within {settings.registry.timeout:g} s"
    except EventPlatformError as exc:
        note = f"the registry ({url}) failed: {type(exc).__name__}: {exc}"
    return replace(catalogue, registry=RegistryView(consulted=False, url=url, note=note))

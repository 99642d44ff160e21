"""``eventplatform schemas list|show|diff``: what the registry holds, and how versions differ.

These commands only read the registry; :mod:`eventplatform.cli.schemas` mounts them next to
the ones that change it. ``diff`` prints the structural diff of
:mod:`~eventplatform.schema.diff` and the compatibility verdict the registry gives, which
comes from Apache Avro's checker under the subject's level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from eventplatform.cli import _clients
from eventplatform.cli._common import console, err_console, fail_on_errors
from eventplatform.cli._schemaviews import print_changes, print_subjects, print_verdict
from eventplatform.errors import SchemaParseError, SubjectNotFound
from eventplatform.registry.base import (
    CompatibilityLevel,
    CompatibilityResult,
    RegisteredSchema,
    VersionSpec,
)
from eventplatform.schema import load_catalogue, parse_avsc
from eventplatform.schema.diff import SchemaChange, diff_schemas
from eventplatform.settings import Settings, load_settings

__all__ = ["diff", "list_subjects", "show"]


def _version_spec(text: str, param: str) -> VersionSpec:
    if text == "latest":
        return "latest"
    number = int(text) if text.isdigit() else 0
    if number < 1:
        raise typer.BadParameter(f"{text!r} is not a version (1, 2, … or latest)", param_hint=param)
    return number


async def _list(
    settings: Settings,
) -> tuple[list[tuple[RegisteredSchema, CompatibilityLevel]], CompatibilityLevel]:
    async with _clients.registry_factory(settings) as registry:
        rows = []
        for subject in await registry.list_subjects():
            latest = await registry.get_version(subject, "latest")
            rows.append((latest, await registry.get_compatibility(subject)))
        return rows, await registry.get_compatibility(None)


def list_subjects() -> None:
    """List the registry's subjects with their latest version, id and compatibility level."""
    with fail_on_errors():
        rows, global_level = _clients.run(_list(load_settings()))
    print_subjects(rows, global_level)


async def _get(settings: Settings, subject: str, version: VersionSpec) -> RegisteredSchema:
    async with _clients.registry_factory(settings) as registry:
        return await registry.get_version(subject, version)


def show(
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="The subject.")],
    version: Annotated[
        str, typer.Option("--version", help="A version number or latest.")
    ] = "latest",
) -> None:
    """Print a registered schema as indented JSON (highlighted on a terminal).

    The subject, version and id go to stderr, so stdout is the schema alone.
    """
    spec = _version_spec(version, "--version")
    with fail_on_errors():
        found = _clients.run(_get(load_settings(), subject, spec))
    refs = "".join(
        f"\n  reference {r.name} → {r.subject} version {r.version}" for r in found.references
    )
    err_console.print(
        f"[bold]{escape(found.subject)}[/] version {found.version}, id {found.id}{escape(refs)}"
    )
    console.print_json(found.schema, indent=2)


@dataclass(frozen=True, slots=True)
class _Diff:
    """What ``schemas diff`` shows: a title, the changes, and the verdict (None: nothing to
    judge against) at ``level`` against ``against``."""

    title: str
    changes: list[SchemaChange]
    verdict: CompatibilityResult | None = None
    level: CompatibilityLevel = CompatibilityLevel.NONE
    against: str = ""


async def _diff_versions(
    settings: Settings, subject: str, first: VersionSpec, second: VersionSpec
) -> _Diff:
    async with _clients.registry_factory(settings) as registry:
        old = await registry.get_version(subject, first, deleted=True)
        new = await registry.get_version(subject, second, deleted=True)
        level = await registry.get_compatibility(subject)
        verdict = await registry.check_compatibility(
            subject, new.schema, version=old.version, references=new.references
        )
    return _Diff(
        f"[bold]{escape(subject)}[/]: version {old.version} → version {new.version}",
        diff_schemas(old.schema, new.schema),
        verdict,
        level,
        f"version {old.version}",
    )


async def _diff_file(settings: Settings, subject: str, text: str, version: VersionSpec) -> _Diff:
    async with _clients.registry_factory(settings) as registry:
        try:
            old = await registry.get_version(subject, version)
        except SubjectNotFound:
            return _Diff(f"[bold]{escape(subject)}[/] is not registered: the file is new", [])
        level = await registry.get_compatibility(subject)
        # Judged as registering it would be: against the versions the level names.
        verdict = await registry.check_compatibility(subject, text)
    return _Diff(
        f"[bold]{escape(subject)}[/]: version {old.version} → the file",
        diff_schemas(old.schema, text),
        verdict,
        level,
        f"subject {subject}",
    )


def _file_schema(path: Path, catalogue_dir: Path) -> tuple[str, str]:
    """Full name and resolved JSON of an .avsc file, resolved within its catalogue if in one.

    Raises:
        SchemaParseError: the file (or its catalogue) is invalid.
    """
    resolved_path = path.resolve()
    if catalogue_dir.is_dir() and resolved_path.is_relative_to(catalogue_dir.resolve()):
        for entry in load_catalogue(catalogue_dir):
            if entry.path.resolve() == resolved_path:
                return entry.full_name, entry.resolved_json()
    try:
        tree = parse_avsc(path)
    except SchemaParseError as exc:
        # Outside the catalogue, the types the file references cannot be resolved.
        raise SchemaParseError(
            f"{exc} ({path} is not in the catalogue {catalogue_dir}/: pass --schemas DIR, "
            "the catalogue it belongs to)",
            source=exc.source,
            json_path=exc.json_path,
            reason=exc.reason,
        ) from exc
    name = tree.schema.get("name") if isinstance(tree.schema, dict) else None
    if not isinstance(name, str):
        raise typer.BadParameter(f"{path} does not define a named type", param_hint="FILE")
    return name, json.dumps(tree.schema, separators=(",", ":"), ensure_ascii=False)


def diff(
    target: Annotated[
        str,
        typer.Argument(
            metavar="SUBJECT|FILE", help="A subject, or with --against-registry an .avsc file."
        ),
    ],
    first: Annotated[str | None, typer.Argument(metavar="[V1]", help="The older version.")] = None,
    second: Annotated[str | None, typer.Argument(metavar="[V2]", help="The newer version.")] = None,
    against_registry: Annotated[
        bool, typer.Option("--against-registry", help="Compare FILE with its registered subject.")
    ] = False,
    version: Annotated[
        str, typer.Option("--version", help="With --against-registry: the version to diff.")
    ] = "latest",
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject", help="With --against-registry: the subject (default: the type of FILE)."
        ),
    ] = None,
    catalogue_dir: Annotated[
        Path, typer.Option("--schemas", metavar="DIR", help="The catalogue FILE belongs to.")
    ] = Path("schemas"),
) -> None:
    """Show what changed between two versions of a subject, or between a file and the registry.

    `diff SUBJECT V1 V2` compares two registered versions and checks V2 against V1 under the
    subject's compatibility level; `diff FILE --against-registry` compares an .avsc file with
    its subject's latest version and checks it as registering it would. Prints a structural
    diff (+ added, - removed, ~ changed) and the verdict; exits 1 when it is incompatible.
    """
    with fail_on_errors():
        settings = load_settings()
        if against_registry:
            if first is not None:
                raise typer.BadParameter("with --against-registry, use --version", param_hint="V1")
            spec = _version_spec(version, "--version")
            full_name, text = _file_schema(Path(target), catalogue_dir)
            found = _clients.run(_diff_file(settings, subject or full_name, text, spec))
        else:
            if first is None or second is None:
                raise typer.BadParameter(
                    "give two versions (SUBJECT V1 V2), or a file with --against-registry",
                    param_hint="V1 V2",
                )
            older, newer = _version_spec(first, "V1"), _version_spec(second, "V2")
            found = _clients.run(_diff_versions(settings, target, older, newer))
    print_changes(found.title, found.changes)
    if found.verdict is not None:
        print_verdict(found.verdict, found.level, found.against)
        if not found.verdict.is_compatible:
            raise typer.Exit(1)

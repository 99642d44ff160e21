"""``eventplatform schemas …``: register, check, inspect and generate code from the catalogue.

The catalogue (``schemas/``, one ``.avsc`` per named type) is the contract; these commands move
it into the configured registry safely and keep the code generated from it in step:

- ``register`` validates every file, checks every changed schema against the registry, and
  only then registers, so an invalid file or a breaking change registers nothing.
- ``check`` is the offline gate for CI: valid files, classes that agree with their contracts,
  and no breaking change against a git revision or the registry.
- ``list``, ``show`` and ``diff`` read the registry; ``codegen`` writes the typed module.

Subjects: a catalogue is not tied to topics, so by default each type registers under its full
name (Confluent's RecordNameStrategy); ``--topic`` (with ``--strategy topic`` or
``topic_record``) registers a record under ``<topic>-value`` or ``<topic>-<full name>``, where
a producer using that strategy looks it up.

The registry comes from :data:`eventplatform.cli._clients.registry_factory` (the settings'
registry), which tests replace with an in-memory one.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from eventplatform._importing import import_object
from eventplatform.cli import _clients
from eventplatform.cli._common import console, err_console, fail_on_errors
from eventplatform.cli._progress import progress
from eventplatform.cli._schemaqueries import diff, list_subjects, show
from eventplatform.cli._schemaviews import (
    print_evolutions,
    print_registration,
    report_breaking,
    report_class_checks,
)
from eventplatform.errors import ImportSpecError
from eventplatform.registry.base import CompatibilityLevel
from eventplatform.schema import (
    AvroEvent,
    Catalogue,
    CatalogueEntry,
    generate_module,
    load_catalogue,
)
from eventplatform.schema.evolution import (
    Evolution,
    Registration,
    check_and_register,
    compare_with_registry,
    compare_with_revision,
)
from eventplatform.serde.subjects import SubjectNameStrategy, subject_name
from eventplatform.settings import Settings, load_settings

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown")


@app.callback()
def _group() -> None:
    """Register, check, inspect and generate code from the .avsc schema catalogue."""


CatalogueDir = Annotated[
    Path,
    typer.Argument(
        metavar="DIR", help="The catalogue: a directory of .avsc files, folders by namespace."
    ),
]
StrategyOption = Annotated[
    SubjectNameStrategy | None,
    typer.Option(
        "--strategy",
        help="Subject naming: record (the full name; the default without --topic), topic "
        "(<topic>-value; the default with --topic) or topic_record (<topic>-<full name>).",
    ),
]
TopicOption = Annotated[
    str | None, typer.Option("--topic", help="The topic subjects are named after.")
]
TypesOption = Annotated[
    list[str] | None,
    typer.Option("--type", metavar="FULL.NAME", help="Only this type; repeat for more."),
]
SubjectOf = Callable[[CatalogueEntry], str]


def _select(
    catalogue: Catalogue,
    types: Sequence[str] | None,
    strategy: SubjectNameStrategy | None,
    topic: str | None,
) -> tuple[list[CatalogueEntry], SubjectOf]:
    """The entries to work on, in dependency order, and the subject of each."""
    chosen = strategy or (SubjectNameStrategy.TOPIC if topic else SubjectNameStrategy.RECORD)
    if chosen is not SubjectNameStrategy.RECORD and not topic:
        raise typer.BadParameter(f"--strategy {chosen} names subjects after a topic: give --topic")
    entries = list(catalogue)
    if types:
        unknown = sorted(set(types) - {e.full_name for e in entries})
        if unknown:
            known = ", ".join(e.full_name for e in entries)
            raise typer.BadParameter(
                f"{', '.join(unknown)} not in {catalogue.root} (it has {known})",
                param_hint="--type",
            )
        entries = [e for e in entries if e.full_name in types]
    if chosen is not SubjectNameStrategy.RECORD:
        # A topic carries records; the enums and fixed types they use are inlined in them.
        entries = [e for e in entries if e.kind == "record"]
    if chosen is SubjectNameStrategy.TOPIC and len(entries) != 1:
        names = ", ".join(e.full_name for e in entries) or "none"
        raise typer.BadParameter(
            f"the topic strategy puts one record type under '{topic}-value'; pick it with "
            f"--type (records: {names})",
            param_hint="--type",
        )
    return entries, lambda entry: subject_name(chosen, topic or "", entry.full_name)


# -- register --------------------------------------------------------------------------------


async def _register(
    settings: Settings, entries: Sequence[CatalogueEntry], subject_of: SubjectOf, *, dry_run: bool
) -> Registration:
    async with _clients.registry_factory(settings) as registry:
        with progress() as bar:

            def stage(what: str, total: int) -> Callable[[], None]:
                task = bar.add_task(what, total=total)
                return lambda: bar.advance(task)

            return await check_and_register(
                registry, entries, subject_of, dry_run=dry_run, stage=stage
            )


@app.command("register")
def register(
    directory: CatalogueDir = Path("schemas"),
    strategy: StrategyOption = None,
    topic: TopicOption = None,
    types: TypesOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compare with the registry; register nothing.")
    ] = False,
) -> None:
    """Register every .avsc of DIR in dependency order and print what changed.

    All files are validated first, then every schema is compared with the registry and
    checked against its subject's compatibility level, and only then is anything registered:
    an invalid file or a breaking change registers nothing and exits 1. A schema the subject
    already holds is "unchanged"; a new version shows the fields added, removed and retyped.
    """
    with fail_on_errors():
        catalogue = load_catalogue(directory)
        entries, subject_of = _select(catalogue, types, strategy, topic)
        settings = load_settings()
        done = _clients.run(_register(settings, entries, subject_of, dry_run=dry_run))
    evolutions = done.evolutions
    print_registration(evolutions, done.registered, dry_run=dry_run)
    breaking = report_breaking(evolutions)
    if breaking:
        err_console.print(
            f"[bold red]error:[/] {breaking} of {len(evolutions)} schemas break their subject's "
            "compatibility level; nothing was registered"
        )
        raise typer.Exit(1)


# -- check -----------------------------------------------------------------------------------


def _import_classes(module_name: str) -> list[type[AvroEvent]]:
    # Like `eventplatform serve`, the working directory comes first so that a project's own
    # modules import without being installed.
    try:
        module = import_object(
            module_name, what="classes module", module_only=True, search_path=os.getcwd()
        )
    except ImportSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="--classes") from exc
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, AvroEvent)
        and value is not AvroEvent
        and value.__module__ == module.__name__
    ]


async def _against_registry(
    settings: Settings, entries: Sequence[CatalogueEntry], subject_of: SubjectOf
) -> list[Evolution]:
    async with _clients.registry_factory(settings) as registry:
        with progress() as bar:
            task = bar.add_task("comparing with the registry", total=len(entries))
            return await compare_with_registry(
                registry, entries, subject_of, on_each=lambda: bar.advance(task)
            )


@app.command("check")
def check(
    directory: CatalogueDir = Path("schemas"),
    against_git: Annotated[
        str | None,
        typer.Option(
            "--against-git",
            metavar="REF",
            help="Check each changed schema against its version at this git revision.",
        ),
    ] = None,
    against_registry: Annotated[
        bool,
        typer.Option(
            "--against-registry", help="Check each schema against the configured registry."
        ),
    ] = False,
    level: Annotated[
        CompatibilityLevel,
        typer.Option("--level", help="Compatibility level for --against-git."),
    ] = CompatibilityLevel.BACKWARD,
    classes: Annotated[
        str | None,
        typer.Option(
            "--classes",
            metavar="MODULE",
            help="A module of AvroEvent classes that must agree with their .avsc files.",
        ),
    ] = None,
    strategy: StrategyOption = None,
    topic: TopicOption = None,
    types: TypesOption = None,
) -> None:
    """Gate for CI: valid schemas, matching classes, no breaking change. Exits 1 on a problem.

    Always validates every .avsc of DIR (errors name the file and the JSON path). With
    --classes, each AvroEvent class of MODULE must say what its .avsc says. With
    --against-git REF, each schema that changed since REF must be compatible with its text
    at REF under --level (Apache Avro's reader/writer rules; no registry needed). With
    --against-registry, each schema must be compatible with its subject's registered
    versions under the subject's level. A breaking change prints the field, the rule and the
    version it breaks.
    """
    failures = 0
    with fail_on_errors():
        catalogue = load_catalogue(directory)
        entries, subject_of = _select(catalogue, types, strategy, topic)
        console.print(f"[green]✓[/] {len(catalogue)} schemas in {escape(str(directory))} are valid")
        if classes:
            failures += report_class_checks(catalogue, _import_classes(classes), classes)
        if against_git:
            evolutions, removed = compare_with_revision(catalogue, against_git, level)
            chosen = {e.full_name for e in entries}
            evolutions = [e for e in evolutions if e.entry.full_name in chosen]
            print_evolutions(evolutions, f"against git {against_git} ({level.value})")
            for name in removed:
                err_console.print(
                    f"[yellow]warning:[/] {name} existed at {escape(against_git)} and was "
                    "removed; consumers of its old events still need it",
                    highlight=False,
                )
            failures += report_breaking(evolutions)
        if against_registry:
            evolutions = _clients.run(_against_registry(load_settings(), entries, subject_of))
            print_evolutions(evolutions, "against the registry")
            failures += report_breaking(evolutions)
    if failures:
        err_console.print(f"[bold red]error:[/] {failures} problem(s) found")
        raise typer.Exit(1)


# -- codegen ---------------------------------------------------------------------------------


@app.command("codegen")
def codegen(
    directory: CatalogueDir,
    out: Annotated[Path, typer.Option("--out", metavar="FILE.py", help="The module to write.")],
    check_only: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 when FILE differs (for CI).")
    ] = False,
) -> None:
    """Write a typed Python module with a class for every type of the catalogue DIR.

    The module's header names the command that regenerates it. With --check nothing is
    written: the file is compared with what would be, and a difference is printed as a
    unified diff and exits 1.
    """
    command = (
        f"eventplatform schemas codegen {directory.as_posix().rstrip('/')}/ --out {out.as_posix()}"
    )
    with fail_on_errors():
        source = generate_module(load_catalogue(directory), command=command)
    if not check_only:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(source, encoding="utf-8")
        console.print(f"wrote {escape(str(out))} from {escape(str(directory))}")
        return
    current = out.read_text(encoding="utf-8") if out.is_file() else ""
    if current == source:
        console.print(f"[green]✓[/] {escape(str(out))} is up to date")
        return
    lines = list(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            source.splitlines(keepends=True),
            fromfile=str(out),
            tofile=f"{out} (generated)",
        )
    )
    shown = 80
    err_console.print("".join(lines[:shown]), markup=False, highlight=False, end="")
    if len(lines) > shown:
        err_console.print(f"… {len(lines) - shown} more lines of diff")
    what = "is out of date" if current else "does not exist"
    err_console.print(f"[bold red]error:[/] {escape(str(out))} {what}; run: {escape(command)}")
    raise typer.Exit(1)


# The commands that only read the registry live with their helpers in _schemaqueries.
app.command("list")(list_subjects)
app.command("show")(show)
app.command("diff")(diff)

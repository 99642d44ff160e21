"""How the ``schemas`` commands show their results: tables, diffs, verdicts and progress.

Results go to stdout (tables, diffs, the schema JSON); problems and the reasons for a non-zero
exit go to stderr, so that ``eventplatform schemas show X > x.avsc`` writes only the schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.markup import escape
from rich.table import Column, Table

from eventplatform.cli._common import console, err_console
from eventplatform.cli._tables import fit
from eventplatform.registry.base import CompatibilityLevel, CompatibilityResult, RegisteredSchema
from eventplatform.schema import AvroEvent, Catalogue, check_class_against_schema
from eventplatform.schema.diff import SchemaChange, summarize
from eventplatform.schema.evolution import Evolution, Status

__all__ = [
    "print_changes",
    "print_evolutions",
    "print_registration",
    "print_subjects",
    "print_verdict",
    "report_breaking",
    "report_class_checks",
]


def _change_text(evolution: Evolution) -> str:
    if evolution.status is Status.UNCHANGED:
        return "[dim]unchanged[/]"
    if evolution.status is Status.NEW:
        return "[green]new[/]"
    summary = escape(summarize(evolution.changes))
    if evolution.breaking:
        level = evolution.level.value if evolution.level else ""
        return f"[bold red]breaks {level}[/] against {escape(evolution.against)}: {summary}"
    return f"[yellow]new version[/]: {summary}"


def print_registration(
    evolutions: Sequence[Evolution],
    registered: Mapping[str, RegisteredSchema],
    *,
    dry_run: bool,
) -> None:
    """The table of ``schemas register``: subject, version, id and what changed."""
    table = Table(Column("subject", overflow="fold"), "version", "id", "change")
    for evolution in evolutions:
        done = registered.get(evolution.subject) or evolution.current
        table.add_row(
            escape(evolution.subject),
            str(done.version) if done else "-",
            str(done.id) if done else "-",
            _change_text(evolution),
        )
    if dry_run:
        table.caption = "dry run: nothing was registered"
    console.print(table)


def print_evolutions(evolutions: Sequence[Evolution], title: str) -> None:
    """A table of where each schema stands against ``title`` (a revision, the registry)."""
    table = Table(Column("schema", overflow="fold"), "change", title=title, title_justify="left")
    for evolution in evolutions:
        table.add_row(escape(evolution.subject), _change_text(evolution))
    console.print(table)


def report_breaking(evolutions: Sequence[Evolution]) -> int:
    """Print why each breaking schema breaks (field, rule, version); returns how many do."""
    breaking = [e for e in evolutions if e.breaking]
    for evolution in breaking:
        level = evolution.level.value if evolution.level else ""
        err_console.print(
            f"[bold red]✗[/] {escape(evolution.subject)}: breaks {level} compatibility "
            f"against {escape(evolution.against)}",
            highlight=False,
        )
        for problem in evolution.problems:
            err_console.print(f"    {problem}", markup=False, highlight=False, soft_wrap=True)
    return len(breaking)


def report_class_checks(
    catalogue: Catalogue, classes: Sequence[type[AvroEvent]], module_name: str
) -> int:
    """Compare each event class with its ``.avsc``; print the verdicts, return the failures.

    A class whose type is defined inline in another type's file is checked as part of that
    type's class; a class whose type no file defines is a failure (it has no contract).
    """
    failures = 0
    for cls in classes:
        name = cls.__avro_name__
        if name not in catalogue:
            if name in catalogue.named_types:
                continue
            err_console.print(
                f"[bold red]✗[/] {cls.__qualname__}: no .avsc in {catalogue.root} defines {name}",
                highlight=False,
            )
            failures += 1
            continue
        entry = catalogue[name]
        differences = check_class_against_schema(cls, entry.resolved)
        if not differences:
            console.print(f"[green]✓[/] {cls.__qualname__} agrees with {entry.path}")
            continue
        failures += 1
        err_console.print(
            f"[bold red]✗[/] {cls.__qualname__} disagrees with {entry.path}:", highlight=False
        )
        for line in differences:
            err_console.print(f"    {line}", markup=False, highlight=False, soft_wrap=True)
    if not classes:
        err_console.print(f"[yellow]warning:[/] {module_name} defines no AvroEvent class")
    return failures


def print_subjects(
    rows: Sequence[tuple[RegisteredSchema, CompatibilityLevel]], global_level: CompatibilityLevel
) -> None:
    """The table of ``schemas list``."""
    table = Table(Column("subject", overflow="fold"), "latest version", "id", "compatibility")
    for latest, level in rows:
        table.add_row(escape(latest.subject), str(latest.version), str(latest.id), level.value)
    table.caption = f"{len(rows)} subjects; global compatibility {global_level.value}"
    console.print(fit(table, console, identifiers=("subject", "compatibility")))


def print_changes(title: str, changes: Sequence[SchemaChange]) -> None:
    """A structural diff: ``+`` added, ``-`` removed, ``~`` changed, one line each."""
    console.print(title, highlight=False)
    if not changes:
        console.print("[dim]no structural change[/]")
    marks = {"added": "[green]+[/]", "removed": "[red]-[/]", "changed": "[yellow]~[/]"}
    for change in changes:
        console.print(f"{marks[change.kind]} {escape(str(change))}", highlight=False)


def print_verdict(result: CompatibilityResult, level: CompatibilityLevel, against: str) -> None:
    """The compatibility verdict, with the checker's messages when incompatible."""
    if result.is_compatible:
        console.print(f"[green]compatible[/] with {escape(against)} under {level.value}")
        return
    console.print(f"[bold red]incompatible[/] with {escape(against)} under {level.value}:")
    for message in result.messages:
        console.print(f"    {message}", markup=False, highlight=False, soft_wrap=True)

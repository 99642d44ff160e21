"""``eventplatform dlq …``: list, show and replay dead letters (:mod:`eventplatform.dlq`).

This module parses arguments and prints; reading, decoding and replaying are the library's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from eventplatform.cli import _clients
from eventplatform.cli._common import console, err_console, fail_on_errors
from eventplatform.cli._progress import progress
from eventplatform.cli.io import json_line
from eventplatform.dlq import (
    DeadLetterReader,
    DeadLetterRecord,
    ReplayReport,
    Selection,
    describe,
    parse_offset_range,
    replay,
)
from eventplatform.errors import DeadLetterError
from eventplatform.producer import EventProducer
from eventplatform.serde import AvroDeserializer
from eventplatform.settings import Settings, load_settings

__all__ = ["app"]

app = typer.Typer(
    help="Dead letters: list them with their reason, show one decoded, replay a selection.",
    no_args_is_help=True,
)

Topic = Annotated[str, typer.Argument(metavar="TOPIC", help="The dead-letter topic.")]
Partition = Annotated[
    int | None, typer.Option(min=0, help="Only this partition of the dead-letter topic.")
]
Offsets = Annotated[
    str | None,
    typer.Option(help="Offsets in the dead-letter topic: FIRST-LAST, FIRST-, -LAST or N."),
]
ErrorClass = Annotated[
    str | None,
    typer.Option("--error", help="Only this exception class (module.Name, or Name)."),
]
Key = Annotated[str | None, typer.Option(help="Only records with this key.")]
Since = Annotated[
    str | None,
    typer.Option(
        help="Dead-lettered at or after: ISO 8601 (UTC if no offset), or 30m, 2h, 1d ago."
    ),
]
Until = Annotated[
    str | None, typer.Option(help="Dead-lettered before: ISO 8601, or 30m, 2h, 1d ago.")
]

_AGO = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    ago = _AGO.match(text.strip())
    if ago:
        return datetime.now(UTC) - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither ISO 8601 (2026-12-06T18:00:00Z) nor 30m/2h/1d",
            param_hint=option,
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _selection(
    partition: int | None,
    offsets: str | None,
    error: str | None,
    key: str | None,
    since: str | None,
    until: str | None,
) -> Selection:
    first = last = None
    if offsets is not None:
        try:
            first, last = parse_offset_range(offsets)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--offsets") from None
    return Selection(
        partition=partition,
        first_offset=first,
        last_offset=last,
        error_class=error,
        key=key,
        since=_moment(since, "--since"),
        until=_moment(until, "--until"),
    )


# -- list ------------------------------------------------------------------------------------


async def _list(
    settings: Settings, topic: str, selection: Selection, limit: int | None
) -> list[DeadLetterRecord]:
    found: list[DeadLetterRecord] = []
    async with DeadLetterReader(topic, options=_clients.kafka_options(settings)) as reader:
        async for letter in reader.scan(selection):
            found.append(letter)
            if limit is not None and len(found) >= limit:
                break
    return found


def _summary(letter: DeadLetterRecord) -> dict[str, Any]:
    return {
        "position": letter.position,
        "dead_lettered_at": letter.time.isoformat(),
        "key": letter.key.decode("utf-8", "backslashreplace") if letter.key is not None else None,
        "origin": letter.origin,
        "event_id": letter.event_id,
        "error_class": letter.error_class,
        "reason": letter.reason,
        "dialect": letter.dialect.value,
        "attempts": letter.attempts,
        "replayable": letter.replayable is None,
    }


def _table(letters: Sequence[DeadLetterRecord], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("at", no_wrap=True)
    table.add_column("dead-lettered (UTC)")
    table.add_column("key", overflow="fold")
    table.add_column("origin", overflow="fold")
    table.add_column("reason", overflow="fold")
    for letter in letters:
        key = letter.key.decode("utf-8", "backslashreplace") if letter.key is not None else ""
        table.add_row(
            letter.position,
            letter.time.strftime("%Y-%m-%d %H:%M:%S"),
            escape(key),
            escape(letter.origin or "?"),
            escape(letter.reason),
        )
    return table


@app.command("list")
def list_letters(
    topic: Topic,
    partition: Partition = None,
    offsets: Offsets = None,
    error: ErrorClass = None,
    key: Key = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List dead letters with where they came from and why they failed."""
    selection = _selection(partition, offsets, error, key, since, until)
    with fail_on_errors():
        letters = _clients.run(_list(load_settings(), topic, selection, limit))
    if as_json:
        for letter in letters:
            print(json_line(_summary(letter)))
        return
    if letters:
        console.print(_table(letters, f"dead letters in {escape(topic)}"))
    err_console.print(f"{len(letters)} dead letter(s) selected in {escape(topic)}")


# -- show ------------------------------------------------------------------------------------


def _position(text: str) -> tuple[int | None, int]:
    partition, _, offset = text.rpartition(":")
    try:
        return (int(partition) if partition else None), int(offset)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not PARTITION:OFFSET or OFFSET", param_hint="POSITION"
        ) from None


async def _show(settings: Settings, topic: str, partition: int | None, offset: int) -> Any:
    async with DeadLetterReader(topic, options=_clients.kafka_options(settings)) as reader:
        if partition is None:
            if len(reader.partitions) != 1:
                raise DeadLetterError(
                    f"topic {topic!r} has {len(reader.partitions)} partitions: give the position "
                    f"as PARTITION:OFFSET (e.g. {reader.partitions[0]}:{offset})"
                )
            partition = reader.partitions[0]
        letter = await reader.get(partition, offset)
    async with _clients.registry_factory(settings) as registry:
        return await describe(letter, AvroDeserializer(registry))


@app.command("show")
def show(
    topic: Topic,
    position: Annotated[
        str,
        typer.Argument(
            metavar="POSITION", help="PARTITION:OFFSET as `dlq list` shows it (or OFFSET)."
        ),
    ],
) -> None:
    """Show one dead letter: origin, error, the event's headers and its value, decoded."""
    partition, offset = _position(position)
    with fail_on_errors():
        document = _clients.run(_show(load_settings(), topic, partition, offset))
    console.print_json(json_line(document))


# -- replay ----------------------------------------------------------------------------------


async def _replay(
    settings: Settings,
    topic: str,
    selection: Selection,
    *,
    target: str | None,
    dry_run: bool,
    batch_size: int,
) -> ReplayReport:
    options = _clients.kafka_options(settings)
    servers = _clients.bootstrap_servers(settings)
    with progress() as bar:
        scanning = bar.add_task(f"reading {topic}", total=None)

        def scanned(done: int, total: int) -> None:
            bar.update(scanning, completed=done, total=total)

        async with DeadLetterReader(topic, options=options) as reader:
            letters = reader.scan(selection, progress=scanned)
            if dry_run:
                return await replay(letters, producer=None, target=target, dry_run=True)
            async with (
                _clients.registry_factory(settings) as registry,
                EventProducer(
                    bootstrap_servers=servers, settings=settings, registry=registry
                ) as producer,
            ):
                return await replay(
                    letters, producer=producer, target=target, batch_size=batch_size
                )


@app.command("replay")
def replay_letters(
    topic: Topic,
    partition: Partition = None,
    offsets: Offsets = None,
    error: ErrorClass = None,
    key: Key = None,
    since: Since = None,
    until: Until = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Write to this topic instead of each letter's origin."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be replayed; write nothing.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Records per write.")] = 500,
) -> None:
    """Write selected dead letters back to the topics they came from.

    Each keeps its key, value, event id, CloudEvents headers and idempotency key, so a
    consumer handles an event it had not handled yet and skips one it already has: replaying
    twice changes nothing. Fix the handler first.
    """
    selection = _selection(partition, offsets, error, key, since, until)
    with fail_on_errors():
        report = _clients.run(
            _replay(
                load_settings(),
                topic,
                selection,
                target=to,
                dry_run=dry_run,
                batch_size=batch_size,
            )
        )
    for skipped in report.skipped:
        err_console.print(
            f"[yellow]skipped[/] {skipped.letter.position}: {escape(skipped.reason)}",
            highlight=False,
        )
    where = ", ".join(f"{escape(t)} ({n})" for t, n in sorted(report.by_topic.items())) or "-"
    if dry_run:
        if report.replayed:
            console.print(_table(report.replayed, "would replay"))
        console.print(
            f"dry run: would replay {len(report.replayed)} dead letter(s) of {escape(topic)} "
            f"to {where}; {len(report.skipped)} skipped; nothing written",
            highlight=False,
        )
        return
    console.print(
        f"replayed {len(report.replayed)} dead letter(s) of {escape(topic)} to {where}; "
        f"{len(report.skipped)} skipped",
        highlight=False,
    )

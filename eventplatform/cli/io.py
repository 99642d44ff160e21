"""``eventplatform produce`` and ``consume``: typed events in and out of a topic as JSON lines.

``produce`` reads one JSON object per line (UTF-8, lines ending in ``\n``, ``\r\n`` or
``\r``; a leading byte-order mark is ignored) and validates each against the event type's
class, bound at run time to its ``.avsc`` in the catalogue
(:func:`~eventplatform.schema.load_event_class`). Every line is decoded, validated, encoded once
and measured against ``producer.max_request_size`` before the first event is sent: a bad line
(not UTF-8, not JSON, a field that does not fit, too large) names its line number and field
path, and nothing is written. The events then go out through
:class:`~eventplatform.producer.EventProducer`'s batch path, with CloudEvents headers, in
Confluent's wire format, :data:`CHUNK` events per call. Only the cluster failing part way can
leave part of the input written: the error then says which lines were written and which may
have been (see :func:`produce`).

``consume`` prints each record as one JSON object: its position, key, CloudEvents metadata
(``meta``) and value decoded generically with the writer schema from the registry. A record
that cannot be decoded is reported on stderr with its position and the reason, and consuming
goes on. Values are rendered as JSON the way the produce side reads them: timestamps and dates
in ISO 8601, decimals and UUIDs as strings; bytes and fixed follow Avro's JSON encoding (a
string of code points 0-255, Avro specification "JSON Encoding").

A record without ``ce_*`` headers (any Confluent producer's) shows the metadata an
``EventApp`` derives for it, marked ``"derived": true``
(:meth:`~eventplatform.cloudevents.EventMetadata.from_record`).

Both mount directly on the root command (``app`` has no name of its own).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from fastavro import schemaless_writer
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from rich.markup import escape

from eventplatform.cli import _clients
from eventplatform.cli._common import console, err_console, fail_on_errors
from eventplatform.cli._progress import progress
from eventplatform.cloudevents import (
    EventMetadata,
    InvalidEventHeaders,
    default_source,
    format_time,
    has_cloudevents_headers,
)
from eventplatform.errors import (
    DeserializationError,
    KafkaError,
    RecordTooLarge,
    SerializationError,
)
from eventplatform.producer import EventProducer, Outgoing, PublishResult
from eventplatform.schema import AvroEvent, load_catalogue, load_event_class
from eventplatform.serde import AvroDeserializer
from eventplatform.settings import Settings, load_settings

__all__ = ["app", "json_line", "read_events", "record_json", "written_note"]

app = typer.Typer(rich_markup_mode="markdown")

#: Events per ``publish_batch`` call: one wait for acknowledgements per chunk keeps a large file
#: within the delivery timeout and lets the progress bar move.
CHUNK = 5000
#: Problems listed before the rest are only counted.
SHOWN_PROBLEMS = 20
#: Confluent wire format: magic byte and 4-byte schema id before the Avro body.
WIRE_HEADER = 5


# -- produce ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """One valid input line: its number, the event, and its Kafka key."""

    number: int
    event: AvroEvent
    key: str | None


def _where(location: Sequence[int | str]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _describe(error: ErrorDetails) -> str:
    if error["type"] == "json_invalid":
        return f"not a JSON object: {error.get('ctx', {}).get('error', error['msg'])}"
    path = _where(error["loc"])
    return f"field {path}: {error['msg']}" if path else error["msg"]


def _not_utf8(error: UnicodeDecodeError) -> str:
    byte = error.object[error.start]
    return f"not UTF-8 text: byte 0x{byte:02x} at byte {error.start + 1} of the line"


def read_events(
    lines: Iterable[str | bytes],
    event_type: type[AvroEvent],
    *,
    key: str | None,
    key_field: str | None,
    max_record_bytes: int | None = None,
) -> tuple[list[ParsedLine], list[str]]:
    """Decode, validate and test-encode every line; blank lines are skipped.

    Args:
        lines: the input's lines, as text or as the bytes read (decoded here as UTF-8, so that
            a line that is not UTF-8 is reported like any other bad line).
        event_type: the class each line must validate against.
        key: the Kafka key of every event.
        key_field: key each event by this field instead.
        max_record_bytes: the producer's ``max_request_size``: a larger key and value is a
            problem of its line, found before anything is sent.

    Returns:
        The valid lines, and one problem per invalid field or line (``line 3, field
        items[0].quantity: Input should be a valid integer``).
    """
    parsed: list[ParsedLine] = []
    problems: list[str] = []
    schema = event_type.parsed_schema()
    buffer = BytesIO()
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(f"line {number}: {_not_utf8(exc)}")
                continue
        else:
            line = raw
        if number == 1:
            line = line.removeprefix("\ufeff")  # a byte-order mark, as some editors write
        if not line.strip():
            continue
        try:
            event = event_type.model_validate_json(line)
        except ValidationError as exc:
            problems += [f"line {number}: {_describe(error)}" for error in exc.errors()]
            continue
        buffer.seek(0)
        buffer.truncate()
        try:
            # Encoding now, not in the producer, names the line that does not fit the schema;
            # to_avro() refuses what a reader could not return equal, naming the field.
            record = event.to_avro()
            schemaless_writer(buffer, schema, record)
        except (SerializationError, ValueError, TypeError, KeyError, OverflowError) as exc:
            problems.append(f"line {number}: does not fit {event_type.__avro_name__}: {exc}")
            continue
        event_key = key
        if key_field is not None:
            value = record.get(key_field)
            event_key = None if value is None else str(value)
        if max_record_bytes is not None:
            # As the producer measures it (batching.BatchPlan.append): key and framed value.
            size = WIRE_HEADER + buffer.tell() + len((event_key or "").encode())
            if size > max_record_bytes:
                problems.append(
                    f"line {number}: the event is {size} bytes (key and encoded value), over "
                    f"producer.max_request_size ({max_record_bytes} bytes)"
                )
                continue
        parsed.append(ParsedLine(number, event, event_key))
    return parsed, problems


def _chunks(items: Sequence[ParsedLine], size: int) -> Iterator[Sequence[ParsedLine]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _produce(
    settings: Settings, topic: str, lines: Sequence[ParsedLine], *, source: str | None
) -> list[PublishResult]:
    results: list[PublishResult] = []
    servers = _clients.bootstrap_servers(settings)
    async with (
        _clients.registry_factory(settings) as registry,
        EventProducer(
            bootstrap_servers=servers, settings=settings, registry=registry, source=source
        ) as producer,
    ):
        with progress() as bar:
            task = bar.add_task(f"producing to {topic}", total=len(lines))
            for chunk in _chunks(lines, CHUNK):
                batch = [Outgoing(line.event, key=line.key) for line in chunk]
                try:
                    # publish_batch translates the errors of sending; the translation here
                    # covers what it does before (fetching the topic's partitions).
                    with _clients.kafka_errors_translated(f"producing to {topic!r}", servers):
                        results += await producer.publish_batch(batch, topic=topic)
                except KafkaError as exc:
                    exc.add_note(written_note(len(results), chunk, exc))
                    raise
                bar.advance(task, len(chunk))
    return results


def written_note(written: int, chunk: Sequence[ParsedLine], exc: KafkaError) -> str:
    """What of the input a failed ``produce`` wrote, for the note under its error.

    Earlier chunks were acknowledged, so they are written. Of the failing chunk nothing was
    sent when a record was too large; after any other failure some of its records may have
    been appended before the error (publish_batch is all-or-error, not all-or-nothing).
    """
    first, last = chunk[0].number, chunk[-1].number
    done = (
        f"{written} events (lines 1-{first - 1}) were written"
        if written
        else "no earlier event was written"
    )
    if isinstance(exc, RecordTooLarge):
        return f"{done}; nothing of lines {first}-{last} was sent"
    return (
        f"{done}; the events of lines {first}-{last} may or may not have been: check with "
        "`eventplatform consume` before producing them again (a rerun gives them new event "
        "ids, so consumers would not see them as duplicates)"
    )


def _event_type(schemas: Path, type_name: str) -> type[AvroEvent]:
    catalogue = load_catalogue(schemas)
    if type_name not in catalogue or catalogue[type_name].kind != "record":
        records = ", ".join(e.full_name for e in catalogue if e.kind == "record") or "none"
        raise typer.BadParameter(
            f"{type_name} is not a record type of {schemas} (records: {records})",
            param_hint="--type",
        )
    return load_event_class(catalogue[type_name].resolved, catalogue=catalogue)


@app.command("produce")
def produce(
    topic: Annotated[str, typer.Argument(metavar="TOPIC", help="The topic to publish to.")],
    type_name: Annotated[
        str,
        typer.Option("--type", metavar="FULL.NAME", help="The event type, e.g. com.acme.Paid."),
    ],
    key: Annotated[str | None, typer.Option("--key", help="The Kafka key of every event.")] = None,
    key_field: Annotated[
        str | None,
        typer.Option("--key-field", metavar="FIELD", help="Key each event by this field."),
    ] = None,
    schemas: Annotated[
        Path, typer.Option("--schemas", metavar="DIR", help="The catalogue holding the type.")
    ] = Path("schemas"),
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            readable=True,
            help="JSON lines to read (default: stdin).",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="CloudEvents source (default: setting producer.source)."),
    ] = None,
) -> None:
    """Publish JSON lines (one event per line, from stdin or --input) as typed events.

    Each line is decoded as UTF-8, validated against the --type's schema from the catalogue,
    encoded and checked against producer.max_request_size before anything is sent: a bad line
    is reported with its line number and field path, and then nothing is written. The events
    are published in batches (CloudEvents headers, Confluent wire format, schema
    registered per the settings) and the count is printed. If the cluster fails part way, the
    error says which lines were written and which may have been.
    """
    if key is not None and key_field is not None:
        raise typer.BadParameter("give --key or --key-field, not both", param_hint="--key")
    with fail_on_errors():
        event_type = _event_type(schemas, type_name)
        fields = [f["name"] for f in event_type.avro_schema()["fields"]]
        if key_field is not None and key_field not in fields:
            raise typer.BadParameter(
                f"{type_name} has no field {key_field!r} (fields: {', '.join(fields)})",
                param_hint="--key-field",
            )
        # Settings first: their errors come before reading a large input.
        settings = load_settings()
        # Bytes, from a file and from stdin alike: each line is decoded by read_events, so a
        # line that is not UTF-8 is named like any other bad line, whatever the locale.
        try:
            data = input_file.read_bytes() if input_file else sys.stdin.buffer.read()
        except OSError as exc:
            raise typer.BadParameter(
                f"{input_file} cannot be read: {exc.strerror or exc}", param_hint="--input"
            ) from exc
        lines, problems = read_events(
            data.splitlines(),
            event_type,
            key=key,
            key_field=key_field,
            max_record_bytes=settings.producer.max_request_size,
        )
        if problems:
            for problem in problems[:SHOWN_PROBLEMS]:
                err_console.print(
                    f"[bold red]✗[/] {escape(problem)}", highlight=False, soft_wrap=True
                )
            more = len(problems) - SHOWN_PROBLEMS
            if more > 0:
                err_console.print(f"  … and {more} more")
            err_console.print(
                f"[bold red]error:[/] {len(problems)} problem(s) in the input; nothing was written"
            )
            raise typer.Exit(1)
        results = _clients.run(_produce(settings, topic, lines, source=source))
    partitions = sorted({r.partition for r in results})
    console.print(
        f"produced {len(results)} {type_name} events to {escape(topic)} "
        f"(partitions {', '.join(map(str, partitions)) or '-'})",
        highlight=False,
    )


# -- consume ---------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")  # Avro JSON encoding: one code point per byte
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_line(value: Any) -> str:
    """``value`` (a decoded Avro value, or :func:`record_json`) as one line of JSON."""
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _meta(
    record: ConsumerRecord[bytes, bytes],
    headers: Sequence[tuple[str, bytes]],
    where: dict[str, Any],
    type_name: str | None,
    source: str | None,
) -> dict[str, Any] | None:
    meta: EventMetadata
    if not has_cloudevents_headers(headers):
        if type_name is None:
            return None  # a tombstone, or the writer type is not known
        # Another producer's record: the metadata an EventApp derives for it.
        meta = EventMetadata.from_record(
            **where, timestamp=record.timestamp, type=type_name, source=source, headers=headers
        )
    else:
        try:
            meta = EventMetadata.from_headers(headers, **where)
        except InvalidEventHeaders:
            return None  # malformed CloudEvents headers: they stay raw
    found: dict[str, Any] = {
        "specversion": meta.specversion,
        "id": meta.id,
        "source": meta.source,
        "type": meta.type,
        "time": format_time(meta.time),
        "subject": meta.subject,
        "content_type": meta.content_type,
        "idempotency_key": meta.idempotency_key,
        "traceparent": meta.traceparent,
        "tracestate": meta.tracestate,
    }
    found = {k: v for k, v in found.items() if v is not None}
    if meta.extensions:
        found["extensions"] = dict(meta.extensions)
    if meta.derived:
        found["derived"] = True
    return found


def record_json(
    record: ConsumerRecord[bytes, bytes],
    schema_id: int | None,
    value: Any,
    *,
    type_name: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """The JSON object ``consume`` prints for a decoded record.

    ``type_name`` (the writer schema's full name) and ``source`` (default ``/topics/<topic>``)
    make the derived metadata of a record without CloudEvents headers.
    """
    headers = list(record.headers or ())
    where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    meta = _meta(record, headers, where, type_name, source)
    out: dict[str, Any] = {
        **where,
        "timestamp": record.timestamp,
        "key": record.key.decode("utf-8", "backslashreplace") if record.key is not None else None,
        "meta": meta,
        "schema_id": schema_id,
        "value": value,
    }
    known: set[str] = set()
    if meta is not None:
        known = {"traceparent", "tracestate"}  # in meta, derived or not
        if not meta.get("derived"):
            known.add("content-type")
    extra = {
        name: raw.decode("utf-8", "backslashreplace") if raw is not None else None
        for name, raw in headers
        if not (meta is not None and (name.startswith("ce_") or name in known))
    }
    if extra:
        out["headers"] = extra
    return out


async def _require_topic(consumer: AIOKafkaConsumer, topic: str, servers: str) -> None:
    # Metadata for all topics: a request naming the topic could make a broker with
    # auto.create.topics.enable create it, and a typo would then wait for records forever.
    with _clients.kafka_errors_translated("listing topics", servers):
        names = await consumer.topics()
    if topic not in names:
        raise KafkaError(f"topic {topic!r} does not exist on {servers}")


#: Milliseconds one poll of ``consume`` waits for records (and so, at most, for Ctrl-C).
_POLL_MS = 500
#: Seconds ``consume`` waits for its consumer to stop.
_STOP_GRACE = 15.0


@dataclass(slots=True)
class _Tally:
    printed: int = 0
    failed: int = 0

    @property
    def seen(self) -> int:
        return self.printed + self.failed


async def _decode_and_print(
    deserializer: AvroDeserializer,
    record: ConsumerRecord[bytes, bytes],
    tally: _Tally,
    source: str,
) -> None:
    type_name: str | None = None
    try:
        if record.value is None:  # a tombstone
            schema_id, value = None, None
        else:
            schema_id, value = await deserializer.deserialize_generic(
                record.value, topic=record.topic, partition=record.partition, offset=record.offset
            )
            type_name = (await deserializer.writer_schema(schema_id)).type_name
    except DeserializationError as exc:
        tally.failed += 1
        err_console.print(f"[bold red]error:[/] {type(exc).__name__}: ", end="", soft_wrap=True)
        err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        return
    line = record_json(record, schema_id, value, type_name=type_name, source=source)
    print(json_line(line), flush=True)
    tally.printed += 1


async def _consume(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool,
    max_records: int | None,
    group: str | None,
    idle_timeout: float | None,
    tally: _Tally,
) -> None:
    servers = _clients.bootstrap_servers(settings)
    source = settings.consumer.topic_sources.get(topic) or default_source(topic)
    loop = asyncio.get_running_loop()
    async with _clients.registry_factory(settings) as registry:
        deserializer = AvroDeserializer(registry)
        consumer = AIOKafkaConsumer(
            group_id=group,
            enable_auto_commit=False,
            # As kafka-console-consumer: --from-beginning applies where the group has no offset.
            auto_offset_reset="earliest" if from_beginning else "latest",
            # Records of aborted or open transactions (KIP-98) are not events that happened.
            isolation_level="read_committed",
            **_clients.kafka_options(settings),
        )
        try:
            with _clients.kafka_errors_translated("connecting to Kafka", servers):
                await consumer.start()
            await _require_topic(consumer, topic, servers)
            # Without a group, aiokafka assigns every partition of a subscribed topic to this
            # consumer, starting at the auto_offset_reset position.
            consumer.subscribe([topic])
            if not from_beginning:
                where = f"group {group}'s committed offsets, else " if group else ""
                err_console.print(
                    f"[dim]reading {escape(topic)} from {where}new records only: waiting for "
                    "them (--from-beginning reads those already there; Ctrl-C stops)[/]",
                    soft_wrap=True,  # the topic stays whole, for copying
                )
            last_record = loop.time()
            interrupted = _interruptible(loop)
            while (max_records is None or tally.seen < max_records) and not interrupted.is_set():
                with _clients.kafka_errors_translated(f"consuming {topic!r}", servers):
                    batches = await consumer.getmany(timeout_ms=_POLL_MS)
                if not batches:
                    if idle_timeout is not None and loop.time() - last_record >= idle_timeout:
                        break
                    continue
                last_record = loop.time()
                done: dict[TopicPartition, int] = {}
                for tp, records in batches.items():
                    for record in records:
                        if max_records is not None and tally.seen >= max_records:
                            break
                        await _decode_and_print(deserializer, record, tally, source)
                        done[tp] = record.offset + 1
                if group is not None and done:
                    # Only what was printed: a record left over past --max is the next run's.
                    with _clients.kafka_errors_translated(f"committing {group!r}", servers):
                        await consumer.commit(done)
        finally:
            with suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
            try:
                async with asyncio.timeout(_STOP_GRACE):
                    await consumer.stop()
            except TimeoutError:
                err_console.print(
                    f"[yellow]warning:[/] the consumer did not stop within {_STOP_GRACE:g}s; "
                    "leaving it"
                )


def _interruptible(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    """An event Ctrl-C sets, ending the consume loop at its next poll (at most
    :data:`_POLL_MS` later) instead of cancelling whatever is awaited: a cancellation that
    lands as an aiokafka request completes can be lost (Python 3.11's ``wait_for``), leaving
    the command running. A second Ctrl-C interrupts at once. Off the main thread (a test
    invoking the command) signals cannot be handled, and Ctrl-C keeps asyncio's default."""
    interrupted = asyncio.Event()

    def interrupt() -> None:
        interrupted.set()
        loop.remove_signal_handler(signal.SIGINT)  # the next one raises KeyboardInterrupt

    with suppress(ValueError, RuntimeError):  # not the main thread
        loop.add_signal_handler(signal.SIGINT, interrupt)
    return interrupted


@app.command("consume")
def consume(
    topic: Annotated[str, typer.Argument(metavar="TOPIC", help="The topic to read.")],
    from_beginning: Annotated[
        bool,
        typer.Option(
            "--from-beginning", help="Start at the oldest record (where the group has no offset)."
        ),
    ] = False,
    max_records: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after this many records.")
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", help="Consumer group: share the work and commit offsets."),
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            "--idle-timeout", metavar="SECONDS", min=0, help="Stop after this long without records."
        ),
    ] = None,
) -> None:
    """Print each record of TOPIC as one JSON line, until --max, --idle-timeout or Ctrl-C.

    Each line holds topic, partition, offset, timestamp, key, the CloudEvents metadata
    (meta), the writer schema id and the value decoded with that schema from the registry.
    A record that cannot be decoded is reported on stderr with its position, and consuming
    goes on; the exit status is then 1. Without --group, every partition is read and no
    offset is committed; with it, offsets are committed after the records are printed.
    """
    tally = _Tally()
    # Ctrl-C is how an open-ended consume ends: not an error.
    with fail_on_errors(), suppress(KeyboardInterrupt):
        _clients.run(
            _consume(
                load_settings(),
                topic,
                from_beginning=from_beginning,
                max_records=max_records,
                group=group,
                idle_timeout=idle_timeout,
                tally=tally,
            )
        )
    err_console.print(f"[dim]{tally.printed} records printed, {tally.failed} undecodable[/]")
    if tally.failed:
        raise typer.Exit(1)

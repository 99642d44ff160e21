"""``eventplatform produce`` and ``consume``: typed events in and out of a topic as JSON lines.

``produce`` reads one JSON object per line and validates each against the event type's class,
bound at run time to its ``.avsc`` in the catalogue
(:func:`~eventplatform.schema.load_event_class`). Every line is validated, and encoded once,
before the first event is sent: one bad line names its line number and field path, and nothing
is written. The events then go out through :class:`~eventplatform.producer.EventProducer`'s
batch path, with CloudEvents headers, in Confluent's wire format.

``consume`` prints each record as one JSON object: its position, key, CloudEvents metadata
(``meta``) and value decoded generically with the writer schema from the registry. A record
that cannot be decoded is reported on stderr with its position and the reason, and consuming
goes on. Values are rendered as JSON the way the produce side reads them: timestamps and dates
in ISO 8601, decimals and UUIDs as strings; bytes and fixed follow Avro's JSON encoding (a
string of code points 0-255, Avro specification "JSON Encoding").

Both mount directly on the root command (``app`` has no name of its own).
"""

from __future__ import annotations

import asyncio
import json
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
from eventplatform.cloudevents import EventMetadata, InvalidEventHeaders, format_time
from eventplatform.errors import DeserializationError, KafkaError, SerializationError
from eventplatform.producer import EventProducer, Outgoing, PublishResult
from eventplatform.schema import AvroEvent, load_catalogue, load_event_class
from eventplatform.serde import AvroDeserializer
from eventplatform.settings import Settings, load_settings

__all__ = ["app", "json_line", "read_events", "record_json"]

app = typer.Typer(rich_markup_mode="markdown")

#: Events per ``publish_batch`` call: one wait for acknowledgements per chunk keeps a large file
#: within the delivery timeout and lets the progress bar move.
CHUNK = 5000
#: Problems listed before the rest are only counted.
SHOWN_PROBLEMS = 20


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


def read_events(
    lines: Iterable[str], event_type: type[AvroEvent], *, key: str | None, key_field: str | None
) -> tuple[list[ParsedLine], list[str]]:
    """Validate and test-encode every line; blank lines are skipped.

    Returns:
        The valid lines, and one problem per invalid field or line (``line 3, field
        items[0].quantity: Input should be a valid integer``).
    """
    parsed: list[ParsedLine] = []
    problems: list[str] = []
    schema = event_type.parsed_schema()
    buffer = BytesIO()
    for number, line in enumerate(lines, start=1):
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
        EventProducer(settings=settings, registry=registry, source=source) as producer,
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
                    if results:
                        # Earlier chunks are durable; say how far the input got.
                        raise type(exc)(
                            f"{exc} (the first {len(results)} events, up to line "
                            f"{chunk[0].number - 1}, were written)"
                        ) from exc
                    raise
                bar.advance(task, len(chunk))
    return results


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

    Each line is validated against the --type's schema from the catalogue and encoded before
    anything is sent: a bad line is reported with its line number and field path, and then
    nothing is written. The events are published in batches (CloudEvents headers, Confluent
    wire format, schema registered per the settings) and the count is printed.
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
        text = input_file.read_text(encoding="utf-8") if input_file else sys.stdin.read()
        lines, problems = read_events(text.splitlines(), event_type, key=key, key_field=key_field)
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
        results = asyncio.run(_produce(load_settings(), topic, lines, source=source))
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


def _meta(headers: Sequence[tuple[str, bytes]], where: dict[str, Any]) -> dict[str, Any] | None:
    try:
        meta = EventMetadata.from_headers(headers, **where)
    except InvalidEventHeaders:
        return None  # not a CloudEvent (a record from another producer): headers stay raw
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
    return found


def record_json(
    record: ConsumerRecord[bytes, bytes], schema_id: int | None, value: Any
) -> dict[str, Any]:
    """The JSON object ``consume`` prints for a decoded record."""
    headers = list(record.headers or ())
    where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    meta = _meta(headers, where)
    out: dict[str, Any] = {
        **where,
        "timestamp": record.timestamp,
        "key": record.key.decode("utf-8", "backslashreplace") if record.key is not None else None,
        "meta": meta,
        "schema_id": schema_id,
        "value": value,
    }
    known = {"content-type", "traceparent", "tracestate"} if meta is not None else set()
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


@dataclass(slots=True)
class _Tally:
    printed: int = 0
    failed: int = 0

    @property
    def seen(self) -> int:
        return self.printed + self.failed


async def _decode_and_print(
    deserializer: AvroDeserializer, record: ConsumerRecord[bytes, bytes], tally: _Tally
) -> None:
    try:
        if record.value is None:  # a tombstone
            schema_id, value = None, None
        else:
            schema_id, value = await deserializer.deserialize_generic(
                record.value, topic=record.topic, partition=record.partition, offset=record.offset
            )
    except DeserializationError as exc:
        tally.failed += 1
        err_console.print(f"[bold red]error:[/] {type(exc).__name__}: ", end="", soft_wrap=True)
        err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        return
    print(json_line(record_json(record, schema_id, value)), flush=True)
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
            last_record = loop.time()
            while max_records is None or tally.seen < max_records:
                with _clients.kafka_errors_translated(f"consuming {topic!r}", servers):
                    batches = await consumer.getmany(timeout_ms=500)
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
                        await _decode_and_print(deserializer, record, tally)
                        done[tp] = record.offset + 1
                if group is not None and done:
                    # Only what was printed: a record left over past --max is the next run's.
                    with _clients.kafka_errors_translated(f"committing {group!r}", servers):
                        await consumer.commit(done)
        finally:
            await consumer.stop()


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
        asyncio.run(
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

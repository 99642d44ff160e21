"""Confluent-framed Avro bytes → typed events (or dicts, for tools).

The writer schema comes from the registry by the id in the frame; the reader schema is the
event class's own. Avro schema resolution (Avro spec, "Schema Resolution") maps one onto the
other when they differ: fields added with defaults, fields removed, promoted numbers, enum
symbols.

Caching: each writer schema is fetched once per id (concurrent requests for the same id share
one registry call) and parsed once; the reader plan for each (writer id, event class) pair is
built once. A failed fetch is never cached. The consumer loop calls :meth:`AvroDeserializer.ensure`
with every id of a poll (no I/O when all are known), then decodes each record synchronously.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterable
from io import BytesIO
from typing import Any, TypeVar

import fastavro
from fastavro import schemaless_reader
from fastavro.read import SchemaResolutionError as _FastavroResolutionError

from eventplatform.errors import (
    CorruptPayload,
    DeserializationError,
    RegistryUnavailable,
    SchemaNotFound,
    SchemaResolutionError,
    TruncatedPayload,
    UnknownSchemaId,
)
from eventplatform.registry.base import Schema, SchemaRegistry
from eventplatform.schema import AvroEvent
from eventplatform.schema._codec.rawcodec import RawCodec, raw_codec
from eventplatform.schema._codec.rawschema import logical_signature
from eventplatform.serde.wire import HEADER_SIZE, read_header

__all__ = ["AvroDeserializer", "WriterSchema"]

E = TypeVar("E", bound=AvroEvent)

_TRUNCATION = (EOFError, IndexError, struct.error, StopIteration)


class WriterSchema:
    """A registered schema, parsed once.

    Attributes:
        id: the schema id.
        text: the schema as registered.
        parsed: fastavro's parsed form.
        canonical: its Parsing Canonical Form.
        full_name: the full name of a named schema (record, enum, fixed), else None.
        type_name: the event type of its records: ``full_name``, else the Avro type
            (``string``, ``array``, … and ``union`` for a union).
    """

    __slots__ = ("canonical", "full_name", "id", "parsed", "text", "type_name")

    def __init__(self, schema_id: int, text: str, parsed: Any) -> None:
        self.id = schema_id
        self.text = text
        self.parsed = parsed
        self.canonical = fastavro.schema.to_parsing_canonical_form(parsed)
        named = isinstance(parsed, dict) and "name" in parsed
        self.full_name: str | None = str(parsed["name"]) if named else None
        self.type_name: str = self.full_name or _avro_type(parsed)


def _avro_type(parsed: Any) -> str:
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, dict):
        return str(parsed.get("type"))
    return "union"


class _Reader:
    """Decodes one writer schema into one event class."""

    __slots__ = ("codec", "event_type", "reader_schema", "writer")

    def __init__(self, writer: WriterSchema, event_type: type[AvroEvent]) -> None:
        self.writer = writer
        self.event_type = event_type
        reader_parsed = event_type.parsed_schema()
        same = writer.canonical == fastavro.schema.to_parsing_canonical_form(reader_parsed)
        # Identical schemas need no resolution; fastavro then reads with the writer alone.
        self.reader_schema: Any = None if same else reader_parsed
        # The raw fast path needs the very same logical types too: the canonical form
        # drops them, and a decimal's scale changes the value its bytes stand for.
        codec = raw_codec(event_type) if same else None
        if codec is not None and codec.signature != logical_signature(writer.parsed):
            codec = None
        self.codec: RawCodec | None = codec


class AvroDeserializer:
    """Decode Confluent Avro into event classes, resolving writer against reader schemas.

    Args:
        registry: where writer schemas are fetched by id.
    """

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self._writers: dict[int, WriterSchema] = {}
        self._pending: dict[int, asyncio.Future[WriterSchema]] = {}
        self._readers: dict[tuple[int, type[AvroEvent]], _Reader] = {}

    def known(self, schema_id: int) -> bool:
        """Whether the writer schema ``schema_id`` is cached."""
        return schema_id in self._writers

    async def writer_schema(self, schema_id: int) -> WriterSchema:
        """The writer schema with ``schema_id``, fetched and parsed on first use.

        Raises:
            SchemaNotFound: the registry has no such id.
            RegistryUnavailable: the registry cannot be reached (retriable; not cached).
        """
        writer = self._writers.get(schema_id)
        if writer is not None:
            return writer
        pending = self._pending.get(schema_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[WriterSchema] = asyncio.get_running_loop().create_future()
        self._pending[schema_id] = future
        try:
            schema = await self.registry.get_by_id(schema_id)
            writer = WriterSchema(schema_id, schema.schema, await self._parse(schema))
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; waiters re-raise it
            raise
        finally:
            del self._pending[schema_id]
        self._writers[schema_id] = writer
        future.set_result(writer)
        return writer

    async def _parse(self, schema: Schema) -> Any:
        named: dict[str, Any] = {}
        for ref in schema.references:
            referenced = await self.registry.get_version(ref.subject, ref.version)
            fastavro.parse_schema(json.loads(referenced.schema), named_schemas=named)
        return fastavro.parse_schema(json.loads(schema.schema), named_schemas=named)

    async def ensure(self, schema_ids: Iterable[int]) -> None:
        """Fetch every unknown id among ``schema_ids`` (concurrently); no I/O when all known.

        Unknown ids are skipped silently here: decoding a record that carries one raises
        :class:`UnknownSchemaId` with its position.

        Raises:
            RegistryUnavailable: the registry cannot be reached.
        """
        missing = {i for i in schema_ids if i not in self._writers}
        if not missing:
            return
        results = await asyncio.gather(
            *(self.writer_schema(i) for i in missing), return_exceptions=True
        )
        for result in results:
            if isinstance(result, RegistryUnavailable):
                raise result
            if isinstance(result, BaseException) and not isinstance(result, SchemaNotFound):
                raise result

    def schema_id(
        self,
        data: bytes,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> int:
        """The schema id in a framed value.

        Raises:
            NotWireFormat: not Confluent-framed.
        """
        return read_header(data, topic=topic, partition=partition, offset=offset)

    def decode(
        self,
        data: bytes,
        event_type: type[E],
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> E:
        """Decode a framed value whose writer schema is already known (see :meth:`ensure`).

        Raises:
            NotWireFormat: not Confluent-framed, or bytes left over after the record.
            UnknownSchemaId: the writer schema is not in the registry.
            TruncatedPayload: the body ends early.
            SchemaResolutionError: the writer schema cannot be read as ``event_type``.
            DeserializationError: the decoded values fail the class's validation.
        """
        schema_id = read_header(data, topic=topic, partition=partition, offset=offset)
        reader = self._readers.get((schema_id, event_type))
        if reader is None:
            writer = self._writers.get(schema_id)
            if writer is None:
                raise UnknownSchemaId(
                    f"schema id {schema_id} is not in the registry",
                    topic=topic,
                    partition=partition,
                    offset=offset,
                )
            reader = self._readers[(schema_id, event_type)] = _Reader(writer, event_type)
        codec = reader.codec
        if codec is not None:
            buffer = BytesIO(data)
            buffer.seek(HEADER_SIZE)
            try:
                event = codec.read(buffer)
                if buffer.tell() == len(data):
                    return event  # type: ignore[no-any-return]
            except Exception:
                # Anything unusual (corrupt or truncated bytes, a decimal beyond its
                # precision) is decoded again below by the authoritative full-schema path,
                # which raises the precise error.
                pass
        record = self._read(data, reader.writer, reader.reader_schema, topic, partition, offset)
        try:
            return event_type.from_avro(record)
        except (ValueError, TypeError) as exc:  # pydantic.ValidationError is a ValueError
            raise DeserializationError(
                f"record of schema id {schema_id} does not validate as "
                f"{event_type.__avro_name__}: {exc}",
                topic=topic,
                partition=partition,
                offset=offset,
            ) from exc

    async def deserialize(
        self,
        data: bytes,
        event_type: type[E],
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> E:
        """:meth:`decode`, fetching the writer schema first if needed.

        Raises:
            Everything :meth:`decode` raises, and RegistryUnavailable.
        """
        schema_id = read_header(data, topic=topic, partition=partition, offset=offset)
        await self.ensure((schema_id,))
        return self.decode(data, event_type, topic=topic, partition=partition, offset=offset)

    async def deserialize_generic(
        self,
        data: bytes,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> tuple[int, Any]:
        """Decode with the writer schema alone into plain Python values (for tools).

        Returns:
            ``(schema id, value)``.

        Raises:
            The errors of :meth:`decode` (but no validation), and RegistryUnavailable.
        """
        schema_id = read_header(data, topic=topic, partition=partition, offset=offset)
        await self.ensure((schema_id,))
        writer = self._writers.get(schema_id)
        if writer is None:
            raise UnknownSchemaId(
                f"schema id {schema_id} is not in the registry",
                topic=topic,
                partition=partition,
                offset=offset,
            )
        return schema_id, self._read(data, writer, None, topic, partition, offset)

    @staticmethod
    def _read(
        data: bytes,
        writer: WriterSchema,
        reader_schema: Any,
        topic: str | None,
        partition: int | None,
        offset: int | None,
    ) -> Any:
        buffer = BytesIO(data)
        buffer.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(buffer, writer.parsed, reader_schema)
        except _FastavroResolutionError as exc:
            raise SchemaResolutionError(
                f"writer schema id {writer.id} cannot be read with the reader schema: {exc}",
                topic=topic,
                partition=partition,
                offset=offset,
            ) from exc
        except _TRUNCATION as exc:
            raise TruncatedPayload(
                f"Avro body of schema id {writer.id} ends early ({len(data)} bytes in all)",
                topic=topic,
                partition=partition,
                offset=offset,
            ) from exc
        except (ValueError, TypeError, UnicodeDecodeError, OverflowError) as exc:
            raise CorruptPayload(
                f"Avro body does not match schema id {writer.id}: {exc}",
                topic=topic,
                partition=partition,
                offset=offset,
            ) from exc
        if buffer.tell() != len(data):
            raise CorruptPayload(
                f"{len(data) - buffer.tell()} bytes left after the record of schema id "
                f"{writer.id}; the body is corrupt or not this schema",
                topic=topic,
                partition=partition,
                offset=offset,
            )
        return record

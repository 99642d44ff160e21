"""Typed events → Confluent-framed Avro bytes.

The registry is consulted once per (event class, subject): the schema is registered (or, with
``auto_register=False``, looked up) and the id and writer are cached. After that,
:meth:`AvroSerializer.serialize` is synchronous and allocation-light: the class's raw codec
(:mod:`eventplatform.schema._codec.rawcodec`; ``to_avro()`` for classes it cannot handle) →
fastavro's ``schemaless_writer`` into a buffer that already holds the 5-byte header.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

from eventplatform.errors import SerializationError
from eventplatform.registry.base import SchemaRegistry
from eventplatform.schema import AvroEvent
from eventplatform.schema._codec.avroio import record_writer
from eventplatform.schema._codec.rawcodec import raw_codec
from eventplatform.serde.subjects import SubjectNameStrategy, subject_name
from eventplatform.serde.wire import frame_header

__all__ = ["AvroSerializer", "PreparedWriter"]


class PreparedWriter:
    """Encodes events of one class for one subject; built once, used for every event."""

    __slots__ = ("encode_raw", "event_type", "header", "parsed", "schema_id", "subject", "write")

    def __init__(self, event_type: type[AvroEvent], subject: str, schema_id: int) -> None:
        self.event_type = event_type
        self.subject = subject
        self.schema_id = schema_id
        self.header = frame_header(schema_id)
        # The raw codec writes the same bytes about twice as fast (see
        # eventplatform.schema._codec.rawcodec); classes it cannot handle keep to_avro().
        codec = raw_codec(event_type)
        if codec is None:
            self.parsed: Any = event_type.parsed_schema()
            self.encode_raw: Any = event_type.to_avro
        else:
            self.parsed = codec.parsed
            self.encode_raw = codec.encode
        self.write = record_writer(self.parsed)

    def encode(self, event: AvroEvent) -> bytes:
        """Framed bytes of ``event``.

        Raises:
            SerializationError: the event's values do not fit its schema, or a reader could
                not return them equal (see :mod:`eventplatform.schema.limits`); the message
                and ``field`` name the field path.
        """
        try:
            return self.write(self.header, self.encode_raw(event))
        except (
            SerializationError,
            ValueError,
            TypeError,
            KeyError,
            OverflowError,
            AttributeError,
        ) as exc:
            raise self._explain(event, exc) from exc

    def _explain(self, event: AvroEvent, exc: Exception) -> SerializationError:
        """The error for a refused event, with the field path from the readable path.

        The raw codec's inline checks only know the field's record and name; ``to_avro()``
        walks the event and names the path (``items[2].unit_price``). It runs only here,
        after a failure, so valid events never pay for it.
        """
        cause: Exception = exc
        field: str | None = None
        if self.encode_raw is not self.event_type.to_avro:
            try:
                with warnings.catch_warnings():
                    # pydantic warns when it serializes an attribute of the wrong type; the
                    # error raised here says it better.
                    warnings.simplefilter("ignore")
                    event.to_avro()
            except SerializationError as precise:
                cause, field = precise, precise.field
            except Exception:  # the raw path's own error then says what it can
                pass
        elif isinstance(exc, SerializationError):
            field = exc.field
        return SerializationError(
            f"cannot encode {self.event_type.__avro_name__} for subject {self.subject!r}: {cause}",
            field=field,
        )


class AvroSerializer:
    """Serialize typed events for topics, registering their schemas under a strategy.

    Args:
        registry: where schemas are registered and ids come from.
        strategy: subject naming (``topic`` by default, as Confluent's serializers).
        auto_register: register a schema the subject does not hold yet; when False, only look
            it up and fail if it is not registered (the production setting when schema
            owners register contracts through ``eventplatform schemas register``).
        is_key: serialize record keys (subject ``<topic>-key``) rather than values.
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        *,
        strategy: SubjectNameStrategy = SubjectNameStrategy.TOPIC,
        auto_register: bool = True,
        is_key: bool = False,
    ) -> None:
        self.registry = registry
        self.strategy = SubjectNameStrategy(strategy)
        self.auto_register = auto_register
        self.is_key = is_key
        self._writers: dict[tuple[type[AvroEvent], str], PreparedWriter] = {}
        self._pending: dict[tuple[type[AvroEvent], str], asyncio.Future[PreparedWriter]] = {}

    def subject_for(self, event_type: type[AvroEvent], topic: str) -> str:
        """The subject governing ``event_type`` on ``topic``."""
        return subject_name(self.strategy, topic, event_type.__avro_name__, is_key=self.is_key)

    def cached(self, event_type: type[AvroEvent], topic: str) -> PreparedWriter | None:
        """The prepared writer, if :meth:`prepare` already ran for this pair."""
        return self._writers.get((event_type, topic))

    async def prepare(self, event_type: type[AvroEvent], topic: str) -> PreparedWriter:
        """Register or look up the schema of ``event_type`` for ``topic`` once, and cache it.

        Concurrent callers for the same pair share one registry request; a failure is not
        cached, so the next call asks again.

        Raises:
            IncompatibleSchema: the class's schema breaks the subject's compatibility level.
            SchemaNotFound: ``auto_register`` is off and the subject lacks the schema.
            RegistryUnavailable: the registry cannot be reached (retriable).
        """
        key = (event_type, topic)
        writer = self._writers.get(key)
        if writer is not None:
            return writer
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[PreparedWriter] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            subject = self.subject_for(event_type, topic)
            text = event_type.avro_schema_json()
            if self.auto_register:
                registered = await self.registry.register(subject, text)
            else:
                registered = await self.registry.lookup(subject, text)
            writer = PreparedWriter(event_type, subject, registered.id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed here; waiters re-raise it
            raise
        finally:
            del self._pending[key]
        self._writers[key] = writer
        future.set_result(writer)
        return writer

    def serialize_prepared(self, event: AvroEvent, topic: str) -> bytes:
        """Encode ``event`` for ``topic`` without awaiting; :meth:`prepare` must have run.

        Raises:
            SerializationError: not prepared, or the values do not fit the schema.
        """
        writer = self._writers.get((type(event), topic))
        if writer is None:
            raise SerializationError(
                f"{type(event).__name__} is not prepared for topic {topic!r}; "
                "await serializer.prepare(...) or use serialize()"
            )
        return writer.encode(event)

    async def serialize(self, event: AvroEvent, topic: str) -> bytes:
        """Encode ``event`` for ``topic``, registering its schema on first use.

        Raises:
            SerializationError: the values do not fit the schema.
            RegistryError: (or a subclass) the schema could not be registered or found.
        """
        writer = self._writers.get((type(event), topic))
        if writer is None:
            writer = await self.prepare(type(event), topic)
        return writer.encode(event)

"""Confluent's wire format: magic byte ``0``, a 4-byte big-endian schema id, the Avro body.

https://docs.confluent.io/platform/current/schema-registry/fundamentals/serdes-develop/index.html#wire-format
Everything that reads Confluent Avro (Kafka Connect's AvroConverter, ksqlDB, Kafka UI,
confluent-kafka's AvroDeserializer) reads what this writes, and the other way round.
"""

from __future__ import annotations

import struct

from eventplatform.errors import NotWireFormat

__all__ = ["HEADER_SIZE", "MAGIC_BYTE", "frame_header", "read_header"]

MAGIC_BYTE = 0
HEADER_SIZE = 5
_HEADER = struct.Struct(">bI")


def frame_header(schema_id: int) -> bytes:
    """The 5-byte prefix for ``schema_id``."""
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def read_header(
    data: bytes,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> int:
    """The schema id of a framed value.

    Raises:
        NotWireFormat: ``data`` is None, shorter than the header, or lacks the magic byte;
            the message names the record's position and what was found instead.
    """
    if data is None:
        raise NotWireFormat(
            "value is null (a tombstone), not Confluent Avro",
            topic=topic,
            partition=partition,
            offset=offset,
        )
    if len(data) < HEADER_SIZE:
        raise NotWireFormat(
            f"{len(data)} bytes is shorter than the 5-byte Confluent header",
            topic=topic,
            partition=partition,
            offset=offset,
        )
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise NotWireFormat(
            f"first byte is 0x{data[0]:02x}, not the Confluent magic byte 0x00 "
            f"(starts {bytes(data[:12])!r})",
            topic=topic,
            partition=partition,
            offset=offset,
        )
    return int(schema_id)

"""Typed events in Confluent's Avro wire format: serializer, deserializer, subject names."""

from eventplatform.serde.deserializer import AvroDeserializer
from eventplatform.serde.serializer import AvroSerializer, PreparedWriter
from eventplatform.serde.subjects import SubjectNameStrategy, subject_name
from eventplatform.serde.wire import HEADER_SIZE, MAGIC_BYTE, frame_header, read_header

__all__ = [
    "HEADER_SIZE",
    "MAGIC_BYTE",
    "AvroDeserializer",
    "AvroSerializer",
    "PreparedWriter",
    "SubjectNameStrategy",
    "frame_header",
    "read_header",
    "subject_name",
]

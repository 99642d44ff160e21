"""One dead letter as a document: where, why, the event's headers and its decoded value."""

from __future__ import annotations

from typing import Any

from eventplatform.dlq.letters import DeadLetterRecord
from eventplatform.errors import DeserializationError, RegistryError
from eventplatform.serde import AvroDeserializer

__all__ = ["describe"]


async def describe(letter: DeadLetterRecord, deserializer: AvroDeserializer) -> dict[str, Any]:
    """``letter`` as a JSON-ready document, its value decoded through the registry.

    A value that cannot be decoded (often the very reason it was dead-lettered) is shown as
    ``decode_error`` instead: showing a dead letter never fails on its payload.

    Raises:
        RegistryUnavailable: the registry cannot be reached.
    """
    document: dict[str, Any] = {
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "dead_lettered_at": letter.time.isoformat(),
        "key": letter.key.decode("utf-8", "backslashreplace") if letter.key is not None else None,
        "origin": {
            "topic": letter.origin_topic,
            "partition": letter.origin_partition,
            "offset": letter.origin_offset,
        },
        "error": {
            "dialect": letter.dialect.value,
            "reason": letter.reason,
            "class": letter.error_class,
            "message": letter.message,
            "stage": letter.stage,
            "group": letter.group,
            "attempts": letter.attempts,
        },
        "event_id": letter.event_id,
        "idempotency_key": letter.idempotency_key,
        "headers": {
            name: raw.decode("utf-8", "backslashreplace") for name, raw in letter.event_headers
        },
    }
    if letter.value is None:
        document |= {"schema_id": None, "value": None}
    else:
        try:
            schema_id, value = await deserializer.deserialize_generic(
                letter.value,
                topic=letter.origin_topic or letter.topic,
                partition=letter.partition,
                offset=letter.offset,
            )
        except (DeserializationError, RegistryError) as exc:
            if exc.retriable:
                raise
            document |= {"schema_id": None, "value": None, "decode_error": str(exc)}
        else:
            document |= {"schema_id": schema_id, "value": value}
    document["stacktrace"] = letter.stacktrace
    return document

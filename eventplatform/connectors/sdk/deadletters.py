"""Dead letters of sources: input that cannot become an event, written aside with its error.

DESIGN.md decision 7: failure is routed, never dropped. A JSON line or an outbox row that does
not validate into its event type is published *as it was read* to a dead-letter topic, with
the error headers Kafka Connect writes (KIP-298; the names are the EventApp's, see
:mod:`eventplatform.app.dlq`), and the source moves on. Where it came from goes in
``eventplatform.errors.source.*`` headers (a file's path, line and byte position; an outbox
row's id), since Connect's ``partition``/``offset`` headers describe Kafka positions.
"""

from __future__ import annotations

from collections.abc import Mapping

from eventplatform.app.dlq import (
    H_CLASS_NAME,
    H_CONNECTOR_NAME,
    H_EXCEPTION_CLASS_NAME,
    H_EXCEPTION_MESSAGE,
    H_STAGE,
    H_TOPIC,
    Stage,
)
from eventplatform.connectors.sdk.records import SourcePosition, SourceRecord

__all__ = ["SOURCE_HEADER_PREFIX", "dead_letter"]

#: Prefix of the headers naming where a dead letter was read.
SOURCE_HEADER_PREFIX = "eventplatform.errors.source."
_MAX_MESSAGE = 4096


def dead_letter(
    raw: bytes,
    *,
    connector: str,
    connector_class: str,
    dlq_topic: str,
    topic: str,
    error: BaseException,
    origin: Mapping[str, object],
    key: bytes | str | None = None,
    position: SourcePosition | None = None,
) -> SourceRecord:
    """The record that carries ``raw`` to ``dlq_topic`` because of ``error``.

    Args:
        raw: the input as read.
        connector: the connector's name; ``connector_class`` its class.
        dlq_topic: where the dead letter goes; ``topic`` where the event would have gone.
        error: why it could not become an event.
        origin: where it was read (``{"path": …, "line": …}``), one header per item.
        key: the Kafka key of the dead letter.
        position: the source position to commit once the dead letter is durable.
    """
    cls = type(error)
    headers = [
        (H_TOPIC, topic.encode()),
        (H_CONNECTOR_NAME, connector.encode()),
        (H_STAGE, Stage.VALUE_CONVERTER.value.encode()),
        (H_CLASS_NAME, connector_class.encode()),
        (H_EXCEPTION_CLASS_NAME, f"{cls.__module__}.{cls.__qualname__}".encode()),
        (H_EXCEPTION_MESSAGE, str(error)[:_MAX_MESSAGE].encode(errors="replace")),
    ]
    headers += [
        (f"{SOURCE_HEADER_PREFIX}{name}", str(value).encode()) for name, value in origin.items()
    ]
    return SourceRecord(value=raw, key=key, topic=dlq_topic, headers=headers, position=position)

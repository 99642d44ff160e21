"""Subject name strategies: which registry subject governs a topic's keys or values.

The three strategies of Confluent's serializers (``subject.name.strategy``):

- ``topic`` (TopicNameStrategy, the default): ``<topic>-value`` / ``<topic>-key``; one
  schema lineage per topic.
- ``record`` (RecordNameStrategy): the record's full name; one lineage per event type across
  topics, so a topic may carry several types.
- ``topic_record`` (TopicRecordNameStrategy): ``<topic>-<full name>``; several types per topic,
  each evolving separately per topic.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["SubjectNameStrategy", "subject_name"]


class SubjectNameStrategy(StrEnum):
    """How a subject name is derived (Confluent's ``subject.name.strategy``)."""

    TOPIC = "topic"
    RECORD = "record"
    TOPIC_RECORD = "topic_record"


def subject_name(
    strategy: SubjectNameStrategy, topic: str, record_name: str, *, is_key: bool = False
) -> str:
    """The subject for a record of ``record_name`` (full name) written to ``topic``."""
    if strategy is SubjectNameStrategy.TOPIC:
        return f"{topic}-{'key' if is_key else 'value'}"
    if strategy is SubjectNameStrategy.RECORD:
        return record_name
    return f"{topic}-{record_name}"

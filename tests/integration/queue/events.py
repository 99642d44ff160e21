"""Event types of the queue tests."""

from __future__ import annotations

from eventplatform.schema import AvroEvent


class Job(AvroEvent, namespace="com.example.jobs"):
    """A unit of work."""

    job_id: str
    size: int = 0


class Report(AvroEvent, namespace="com.example.jobs"):
    """Another type on the same topic (no queue of these in the tests)."""

    report_id: str

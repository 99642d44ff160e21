"""Replaying dead letters onto the topics they came from, once their cause is fixed.

Each dead letter goes back as the record it was: the same key (so the same partition, while
the topic keeps its partition count), the same value bytes and the event's own headers —
CloudEvents ``ce_id``, the idempotency key, ``traceparent`` — without the error headers. The
consumer therefore deduplicates it like any redelivery: a dead-lettered key was released, not
recorded as done (see :mod:`eventplatform.app.dlq`), so the first replay is handled, and a
second replay of the same letters finds the key done and changes nothing.

Records are written in batches through the producer's raw-record batch send
(:meth:`~eventplatform.producer.EventProducer.send_raw_batch`), one wait for the acks of a
batch, in dead-letter offset order per origin topic.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eventplatform.dlq.letters import DeadLetterRecord

if TYPE_CHECKING:
    from eventplatform.producer import EventProducer, RawRecord

__all__ = ["ReplayReport", "Skipped", "replay"]

BATCH = 500


@dataclass(frozen=True, slots=True)
class Skipped:
    """A selected dead letter that was not replayed, and why."""

    letter: DeadLetterRecord
    reason: str


@dataclass(slots=True)
class ReplayReport:
    """What a replay did (or, with ``dry_run``, would do).

    Attributes:
        dry_run: nothing was written.
        replayed: the letters written back (or that would be), in order.
        skipped: the letters that cannot be replayed, with the reason.
        by_topic: how many went to each topic.
    """

    dry_run: bool
    replayed: list[DeadLetterRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    by_topic: dict[str, int] = field(default_factory=dict)


async def replay(
    letters: AsyncIterable[DeadLetterRecord],
    *,
    producer: EventProducer | None,
    target: str | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH,
    on_written: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Write ``letters`` back to their origin topics (or ``target``).

    Args:
        letters: the dead letters, e.g. :meth:`DeadLetterReader.scan`'s.
        producer: a started producer; may be None with ``dry_run``.
        target: write every letter to this topic instead of its origin.
        dry_run: decide and report only; write nothing.
        batch_size: records per :meth:`~eventplatform.producer.EventProducer.send_raw_batch`.
        on_written: told how many records a batch acknowledged (or would have).

    Raises:
        ValueError: ``producer`` is None without ``dry_run``.
        PublishError, PublishTimeout: Kafka refused or did not acknowledge a batch; the
            batches before it are written (replaying them again is harmless: consumers
            deduplicate them).
    """
    if producer is None and not dry_run:
        raise ValueError("replay() needs a started producer unless dry_run is set")
    report = ReplayReport(dry_run=dry_run)
    pending: dict[str, list[DeadLetterRecord]] = {}

    async def flush(topic: str) -> None:
        batch = pending.pop(topic, [])
        if not batch:
            return
        if not dry_run:
            assert producer is not None
            records: list[RawRecord] = [
                (letter.key, letter.value, letter.event_headers) for letter in batch
            ]
            await producer.send_raw_batch(topic, records)
        report.replayed += batch
        report.by_topic[topic] = report.by_topic.get(topic, 0) + len(batch)
        if on_written:
            on_written(len(batch))

    async for letter in letters:
        why_not = letter.replayable if target is None else None
        if why_not is not None:
            report.skipped.append(Skipped(letter, why_not))
            continue
        topic = target or letter.origin_topic
        assert topic is not None
        pending.setdefault(topic, []).append(letter)
        if len(pending[topic]) >= batch_size:
            await flush(topic)
    for topic in list(pending):
        await flush(topic)
    return report

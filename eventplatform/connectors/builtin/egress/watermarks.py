"""Committable offsets of a partition whose events settle out of order.

The webhook egress reads events in offset order but settles them in any order: each endpoint
delivers at its own pace. A consumer offset commit says "everything below this offset is
done", so the offset committed for a partition is the offset of its first event that is not
settled yet, or one past the last event read when all are (the "low watermark" of Kafka
Connect's ``OffsetSyncWriter``, and of ``max.in.flight`` consumers generally). After a crash
the events from there on are read again; those whose deliveries had already succeeded are
delivered again with the same ``webhook-id``, which receivers deduplicate.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["OffsetTracker"]


class OffsetTracker:
    """Settlement of the events read from one partition.

    Args:
        on_settled: called after an event settled (to commit, or to resume reading).
    """

    __slots__ = ("_end", "_on_settled", "_pending", "revoked")

    def __init__(self, on_settled: Callable[[], None] | None = None) -> None:
        # offset -> deliveries not settled yet; insertion order is offset order.
        self._pending: dict[int, int] = {}
        self._end: int | None = None
        self._on_settled = on_settled
        #: The partition was taken away (a rebalance): its events are dropped, not delivered.
        self.revoked = False

    def __repr__(self) -> str:
        return f"<OffsetTracker committable={self.committable} unsettled={len(self._pending)}>"

    def track(self, offset: int, deliveries: int) -> None:
        """Record that the event at ``offset`` was read and has ``deliveries`` to settle.

        Offsets must be given in increasing order; an event with no delivery is settled now.

        Raises:
            ValueError: ``offset`` is not past the last one tracked.
        """
        if self._end is not None and offset < self._end:
            raise ValueError(f"offset {offset} tracked after {self._end - 1}")
        self._end = offset + 1
        if deliveries > 0:
            self._pending[offset] = deliveries

    def settle(self, offset: int) -> None:
        """Record that one delivery of the event at ``offset`` settled."""
        remaining = self._pending.get(offset)
        if remaining is None:
            return
        if remaining > 1:
            self._pending[offset] = remaining - 1
            return
        del self._pending[offset]
        if self._on_settled is not None:
            self._on_settled()

    @property
    def unsettled(self) -> int:
        """Events read whose deliveries are not all settled."""
        return len(self._pending)

    @property
    def committable(self) -> int | None:
        """The offset to commit: the first unsettled event's, else one past the last read.

        None before any event was tracked.
        """
        for offset in self._pending:
            return offset
        return self._end

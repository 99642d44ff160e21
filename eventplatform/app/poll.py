"""The state of one poll while it is processed, and the only place it changes.

A poll goes through three hands: the consumption loop opens it (:meth:`PollState.open`: the
store batch, the claim of its keys, the Kafka transaction of its transactional topics; or
:meth:`PollState.open_units`: each event claims its key in a store unit of its own), the
dispatcher asks what to do with each key (:meth:`PollState.check`) and records the keys it
finished (:meth:`PollState.finish`), and the loop, when the poll's Kafka transaction commits,
marks the keys of the transactional handlers done (:meth:`PollState.transaction_committed`).
Both read it; neither assigns to it, so what a poll knows and when it learns it is in this
module.
"""

from __future__ import annotations

import logging
from typing import Any

from eventplatform.app.delivery import Delivery, Outcome
from eventplatform.app.transaction import PollTransaction
from eventplatform.errors import IdempotencyStoreError, ResourceStateError
from eventplatform.idempotency import Batch, Claim

__all__ = ["PollState"]

log = logging.getLogger("eventplatform.app")

TP = Any  # aiokafka TopicPartition


class PollState:
    """One poll: its deliveries, store batch, claim, Kafka transaction and finished keys.

    Args:
        batches: the poll's deliveries, one list per partition.
        txn_tps: the partitions whose topics are handled in the poll's Kafka transaction.
    """

    __slots__ = (
        "_batch",
        "_claim",
        "_committed",
        "_finished",
        "_txn",
        "_txn_keys",
        "_units",
        "batches",
        "txn_tps",
    )

    def __init__(self, batches: list[list[Delivery]], txn_tps: set[TP]) -> None:
        self.batches = batches
        self.txn_tps = txn_tps
        self._batch: Batch | None = None
        self._claim = Claim()
        self._txn: PollTransaction | None = None
        self._finished: set[str] = set()  # keys handled or skipped in this poll
        self._txn_keys: list[str] = []  # done only once the Kafka transaction commits
        self._committed = False
        self._units = False

    def open_units(self) -> None:
        """The poll runs without a store batch: each event's key unit claims and commits it."""
        self._units = True

    @property
    def units(self) -> bool:
        """Whether each event runs in a key unit of its own (see :meth:`open_units`)."""
        return self._units

    def open(self, batch: Batch, claim: Claim, txn: PollTransaction | None) -> None:
        """The store batch the poll runs in, what claiming its keys decided, its transaction."""
        self._batch = batch
        self._claim = claim
        self._txn = txn

    @property
    def batch(self) -> Batch:
        """The store batch of the poll.

        Raises:
            ResourceStateError: before :meth:`open`.
        """
        if self._batch is None:
            raise ResourceStateError("the poll has no store batch yet")
        return self._batch

    @property
    def txn(self) -> PollTransaction | None:
        """The poll's Kafka transaction; None when no topic of the poll is transactional."""
        return self._txn

    @property
    def committed(self) -> bool:
        """Whether the poll's Kafka transaction committed."""
        return self._committed

    def check(self, key: str) -> Outcome | None:
        """What to do with an event of ``key`` before running it.

        Returns:
            ``DUPLICATE`` when the key was finished earlier (in this poll or before it),
            ``DEFERRED`` when another member holds it, None to run it.
        """
        if key in self._finished or key in self._claim.done:
            return Outcome.DUPLICATE
        if key in self._claim.busy:
            return Outcome.DEFERRED
        return None

    def finish(self, key: str, *, in_transaction: bool, skipped: bool) -> None:
        """Record that the event of ``key`` was handled (or skipped) in this poll.

        The key is marked done in the store batch now, unless its effects commit elsewhere:
        in the poll's Kafka transaction (``in_transaction``: done once it commits), or in the
        handler's store unit, which completed the key when it exited normally (an inbox
        batch, not skipped; a skip rolled the unit back), or in the event's key unit, which
        committed it (a poll of key units; the dispatcher marks a skipped key itself).
        """
        self._finished.add(key)
        if self._units:
            return  # the key unit committed the done-mark with the handler's writes
        if in_transaction:
            self._txn_keys.append(key)
        elif skipped or not self.batch.transactional:
            self._complete(key)

    def found_done(self, key: str) -> None:
        """A key unit found ``key`` done: later events of the poll with it are duplicates."""
        self._finished.add(key)

    def transaction_committed(self) -> None:
        """The poll's Kafka transaction committed: its handlers' keys are done."""
        self._committed = True
        for key in self._txn_keys:
            self._complete(key)

    def _complete(self, key: str) -> None:
        try:
            self.batch.complete(key)
        except IdempotencyStoreError as exc:
            # The lease passed to another member (see ConsumptionLoop._renew).
            log.warning("cannot record idempotency key %r as done: %s", key, exc)

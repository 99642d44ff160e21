"""Counters an :class:`~eventplatform.app.EventApp` keeps while it runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["AppStats"]


@dataclass(slots=True)
class AppStats:
    """What an app did since it started; live counters, updated by the consumption loop.

    Attributes:
        polls: non-empty ``getmany`` batches processed.
        received: records those batches held.
        handled: events whose handler returned (effects durable once their batch committed).
        skipped: events whose handler raised :class:`~eventplatform.app.SkipEvent`.
        skipped_duplicates: events whose idempotency key was already done (in the store, or
            earlier in the same batch); their handler did not run.
        unhandled: records of a type no handler of their topic takes (skipped, not
            dead-lettered).
        dead_lettered: records written to a dead-letter topic (undecodable ones included).
        retries: handler attempts after the first.
        deferred: events left for a later poll (key leased by another member, store or
            dead-letter topic unreachable, stop requested during a backoff); the offset was
            not committed past them.
        commits: successful offset commits (consumer commits and Kafka transactions).
        commit_failures: commits refused because the group rebalanced (``CommitFailedError``:
            another member owns the partition now) or that failed otherwise.
        rebalances: partition assignments received.
        connection_errors: polls, publishes and commits that failed on the broker connection
            and were retried after a backoff.
        store_errors: batches the idempotency store failed, retried after a backoff.
        transactions_aborted: Kafka transactions aborted (their batch was redone).
    """

    polls: int = 0
    received: int = 0
    handled: int = 0
    skipped: int = 0
    skipped_duplicates: int = 0
    unhandled: int = 0
    dead_lettered: int = 0
    retries: int = 0
    deferred: int = 0
    commits: int = 0
    commit_failures: int = 0
    rebalances: int = 0
    connection_errors: int = 0
    store_errors: int = 0
    transactions_aborted: int = 0

    def as_dict(self) -> dict[str, int]:
        """A snapshot of the counters."""
        return asdict(self)

"""The apps the proofs run in their own processes, with ``eventplatform serve --factory``.

Each is a factory (``--factory``) that reads the environment when it is called, in the child:
the ``EVENTPLATFORM_*`` settings (bootstrap servers, registry topic, consumer group, store,
timeouts) and the proof's own variables:

``PROOF_TOPIC``
    the topic of :class:`~tests.integration.proofs.events.Deposit` events to consume.
``PROOF_EFFECTS_TABLE`` (:func:`inbox`)
    the effect table; one row per handled event, written through ``ctx.transaction`` so that
    it commits in the same database transaction as the event's idempotency key. It has no
    unique constraint on purpose: a second application of a key shows up as a second row.
``PROOF_OUTPUT_TOPIC`` (:func:`relay`)
    where the transactional relay publishes one :class:`Receipt` per deposit.
"""

from __future__ import annotations

import asyncio
import os
import time

from eventplatform.app import Context, EventApp, RetryLater
from eventplatform.settings import load_settings
from tests.integration.proofs.events import Deposit, Receipt

EFFECT_COLUMNS = ("idempotency_key", "event_id", "seq", "record_partition", "record_offset", "pid")


class PoisonDeposit(Exception):
    """Raised by the inbox handler for every attempt at a deposit marked ``poison``."""


def inbox() -> EventApp:
    """An inbox app: each deposit inserts one effect row in the store's transaction."""
    settings = load_settings()
    postgres = settings.idempotency.store.startswith("postgres")
    marks = [f"${n}" for n in range(1, 7)] if postgres else ["?"] * 6
    insert = (
        f"INSERT INTO {os.environ['PROOF_EFFECTS_TABLE']} ({', '.join(EFFECT_COLUMNS)}) "
        f"VALUES ({', '.join(marks)})"
    )
    pid = os.getpid()
    app = EventApp("proof-inbox", settings=settings)

    @app.handle(Deposit, topic=os.environ["PROOF_TOPIC"])
    async def apply(event: Deposit, ctx: Context) -> None:
        if event.poison:
            raise PoisonDeposit(f"deposit {event.seq} is poison (attempt {ctx.attempt})")
        await ctx.transaction.execute(
            insert, ctx.idempotency_key, ctx.metadata.id, event.seq, ctx.partition, ctx.offset, pid
        )

    return app


def relay() -> EventApp:
    """A consume-transform-produce app: one receipt per deposit, in Kafka transactions.

    ``PROOF_HANDLER_DELAY`` (seconds, default 0) is I/O each deposit waits for, so that a poll
    takes a while and a freeze lands inside its transaction.
    """
    output = os.environ["PROOF_OUTPUT_TOPIC"]
    delay = float(os.environ.get("PROOF_HANDLER_DELAY", "0"))
    app = EventApp("proof-relay")

    @app.handle(Deposit, topic=os.environ["PROOF_TOPIC"], transactional=True)
    async def forward(event: Deposit, ctx: Context) -> None:
        if delay:
            await asyncio.sleep(delay)  # the I/O of a real handler
        receipt = Receipt(input_id=ctx.metadata.id, seq=event.seq)
        await ctx.publish(receipt, topic=output, key=ctx.key)

    return app


class TemporaryOutage(Exception):
    """Raised by the worker while ``PROOF_FAIL=retry``: its downstream is down for now."""


def worker() -> EventApp:
    """An inbox ``@app.work`` app: each deposit inserts one effect row in the store's transaction.

    Its own variables:

    ``PROOF_WORK_GROUP``
        the share group.
    ``PROOF_CONCURRENCY`` (default 16), ``PROOF_DELIVERY_LIMIT`` (default: the retry
    settings' attempts), ``PROOF_LOCK_MS`` (``share.record.lock.duration.ms`` of the group)
    ``PROOF_HANDLER_DELAY``
        seconds of I/O each deposit waits for (``asyncio.sleep``), default 0.
    ``PROOF_ATTEMPTS_FILE``
        a file each call of the handler appends ``seq pid delivery time`` to (outside the
        transaction, so failed and rolled-back attempts show too).
    ``PROOF_FAIL``
        ``retry``: calls raise ``RetryLater(after=PROOF_RETRY_AFTER)`` (a worker whose
        downstream is down) on deliveries up to ``PROOF_FAIL_UNTIL`` (default: all);
        ``poison`` deposits raise ``PoisonDeposit`` in any case.
    ``PROOF_HANG_SEQ`` / ``PROOF_HANG_SECONDS``
        the deposit whose first delivery blocks the process (``time.sleep``: no renewals, no
        heartbeats) for that long before applying it: a worker that hangs past its lock.
    """
    settings = load_settings()
    postgres = settings.idempotency.store.startswith("postgres")
    marks = [f"${n}" for n in range(1, 7)] if postgres else ["?"] * 6
    insert = (
        f"INSERT INTO {os.environ['PROOF_EFFECTS_TABLE']} ({', '.join(EFFECT_COLUMNS)}) "
        f"VALUES ({', '.join(marks)})"
    )
    pid = os.getpid()
    delay = float(os.environ.get("PROOF_HANDLER_DELAY", "0"))
    attempts_file = os.environ.get("PROOF_ATTEMPTS_FILE")
    fail = os.environ.get("PROOF_FAIL", "")
    retry_after = float(os.environ.get("PROOF_RETRY_AFTER", "2"))
    fail_until = int(os.environ.get("PROOF_FAIL_UNTIL", "1000"))
    hang_seq = int(os.environ.get("PROOF_HANG_SEQ", "-1"))
    hang_seconds = float(os.environ.get("PROOF_HANG_SECONDS", "0"))
    limit = os.environ.get("PROOF_DELIVERY_LIMIT")
    lock_ms = os.environ.get("PROOF_LOCK_MS")
    app = EventApp("proof-worker", settings=settings)

    @app.work(
        Deposit,
        topic=os.environ["PROOF_TOPIC"],
        group=os.environ["PROOF_WORK_GROUP"],
        concurrency=int(os.environ.get("PROOF_CONCURRENCY", "16")),
        delivery_limit=int(limit) if limit else None,
        group_configs={"share.record.lock.duration.ms": lock_ms} if lock_ms else None,
    )
    async def apply(event: Deposit, ctx: Context) -> None:
        if attempts_file:
            with open(attempts_file, "a") as out:  # noqa: ASYNC230 - a tiny append, on purpose
                out.write(f"{event.seq} {pid} {ctx.attempt} {time.time():.3f}\n")
        if event.seq == hang_seq and ctx.attempt == 1:
            time.sleep(hang_seconds)  # noqa: ASYNC251 - hangs the whole process, on purpose
        if delay:
            await asyncio.sleep(delay)  # the I/O of a real handler
        if event.poison:
            raise PoisonDeposit(f"deposit {event.seq} is poison (delivery {ctx.attempt})")
        if fail == "retry" and ctx.attempt <= fail_until:
            raise RetryLater(retry_after, reason=f"downstream is down (deposit {event.seq})")
        await ctx.transaction.execute(
            insert, ctx.idempotency_key, ctx.metadata.id, event.seq, ctx.partition, ctx.offset, pid
        )

    return app

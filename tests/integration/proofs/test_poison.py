"""Poison proof: every record is either handled or dead-lettered, with Kafka Connect headers.

Good deposits are mixed, in random order over two partitions, with four kinds of poison: bytes
that are not Confluent-framed Avro, framed Avro under a schema id the registry never issued,
valid Avro with malformed CloudEvents headers (a ``ce_time`` without UTC offset), and deposits
whose handler raises on every attempt. (Valid Avro with no ``ce_*`` header at all is not
poison: any Confluent producer writes it, and it is handled.)
The inbox app (its own process, SQLite store) must apply each good deposit once and route
each poison record to ``<topic>.dlq`` carrying the original key, value and headers plus
Kafka Connect's ``__connect.errors.*`` headers (KIP-298) naming where it came from and what
failed; the group's lag ends at 0 (no partition got stuck behind poison), and handled +
dead-lettered == produced.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from eventplatform.cloudevents import EventMetadata
from eventplatform.producer import EventProducer
from eventplatform.serde import AvroSerializer, SubjectNameStrategy, frame_header
from tests.integration.proofs.conftest import Names, app_environment
from tests.integration.proofs.effects import EffectTable, exactly_once, explain
from tests.integration.proofs.events import Deposit
from tests.integration.proofs.processes import AppProcess, until
from tests.integration.proofs.streams import GroupProgress, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD = 400
EACH_POISON = 12
PARTITIONS = 2
ATTEMPTS = 3

#: What each kind of poison must be dead-lettered as: (stage, exception class).
EXPECTED = {
    "garbage": ("VALUE_CONVERTER", "eventplatform.errors.NotWireFormat"),
    "unknown-schema": ("VALUE_CONVERTER", "eventplatform.errors.UnknownSchemaId"),
    "bad-headers": ("HEADER_CONVERTER", "eventplatform.errors.InvalidEventHeaders"),
    "handler-fails": ("TASK_PUT", "tests.integration.proofs.services.PoisonDeposit"),
}


def _headers(record: Any) -> dict[str, str]:
    return {name: (value or b"").decode(errors="replace") for name, value in record.headers}


@pytest.mark.timeout(120)
async def test_poison_is_dead_lettered_with_its_origin_and_everything_else_is_handled(
    sqlite_effects: EffectTable,
    names: Names,
    producer: EventProducer,
    create_topic: Callable[..., Awaitable[str]],
    kafka_admin: AIOKafkaAdminClient,
    kafka_bootstrap_servers: str,
    logs: Path,
    rng: random.Random,
    report: Callable[[str], None],
) -> None:
    effects = sqlite_effects
    started = time.monotonic()
    await create_topic(names.topic, partitions=PARTITIONS)
    dlq = await create_topic(f"{names.topic}.dlq", partitions=1)
    serializer = AvroSerializer(producer.registry, strategy=SubjectNameStrategy.TOPIC)
    plan = ["good"] * GOOD + [kind for kind in EXPECTED for _ in range(EACH_POISON)]
    rng.shuffle(plan)

    kinds: dict[tuple[int, int], str] = {}  # (partition, offset) -> kind
    good_keys: list[str] = []
    for seq, kind in enumerate(plan):
        account = f"acct-{rng.randrange(16)}"
        if kind in ("good", "handler-fails"):
            result = await producer.publish(
                Deposit(seq=seq, account=account, poison=kind == "handler-fails"),
                key=account,
                topic=names.topic,
            )
            if kind == "good":
                good_keys.append(result.idempotency_key)
        else:
            meta = EventMetadata.new(source="/proofs", type=Deposit.__avro_name__)
            headers = meta.to_headers()
            if kind == "garbage":
                # Anything but the magic byte 0 first: not Confluent-framed at all.
                value = bytes([rng.randrange(1, 256)]) + rng.randbytes(rng.randrange(40))
            elif kind == "unknown-schema":
                value = frame_header(2_000_000_000 + seq) + b"\x02\x04ab"
            else:
                value = await serializer.serialize(Deposit(seq=seq, account=account), names.topic)
                naive = b"2026-01-02T03:04:05"  # RFC 3339 requires an offset
                headers = [(n, naive if n == "ce_time" else v) for n, v in headers]
            result = await producer.send_raw(
                names.topic, value, key=account.encode(), headers=headers
            )
        kinds[(result.partition, result.offset)] = kind
    poison = len(plan) - GOOD

    env = app_environment(
        kafka_bootstrap_servers,
        names,
        effects.store_url,
        PROOF_EFFECTS_TABLE=effects.name,
        EVENTPLATFORM_CONSUMER__RETRY__MAX_ATTEMPTS=str(ATTEMPTS),
        EVENTPLATFORM_CONSUMER__RETRY__INITIAL_BACKOFF="0.01",
        EVENTPLATFORM_CONSUMER__RETRY__MAX_BACKOFF="0.05",
    )
    app = AppProcess("inbox", instance_id="poison-1", env=env, logs=logs)
    group = GroupProgress(
        bootstrap_servers=kafka_bootstrap_servers,
        admin=kafka_admin,
        group=names.group,
        topic=names.topic,
        partitions=PARTITIONS,
    )
    async with app, group:
        await app.start()

        async def settled() -> bool:
            return await group.lag() == 0

        await until(settled, within=60, what="the group to get past every record", watch=(app,))
        code = await app.stop()
        assert code == 0, f"the app did not stop cleanly:\n{app.tail()}"

    originals = {
        (r.partition, r.offset): r
        for r in await read_topic(kafka_bootstrap_servers, names.topic, partitions=PARTITIONS)
    }
    letters = await read_topic(kafka_bootstrap_servers, dlq, partitions=1)
    rows, offenders = await exactly_once(effects, good_keys)
    lettered: Counter[str] = Counter()
    problems: list[str] = []
    for letter in letters:
        h = _headers(letter)
        origin = (int(h["__connect.errors.partition"]), int(h["__connect.errors.offset"]))
        kind = kinds.get(origin, "?")
        lettered[kind] += 1
        original = originals[origin]
        stage, exception = EXPECTED.get(kind, ("?", "?"))
        checks = {
            "topic": h["__connect.errors.topic"] == names.topic,
            "stage": h["__connect.errors.stage"] == stage,
            "exception class": h["__connect.errors.exception.class.name"] == exception,
            "message": bool(h["__connect.errors.exception.message"]),
            "stacktrace": exception.rsplit(".", 1)[-1]
            in h["__connect.errors.exception.stacktrace"],
            "connector": h["__connect.errors.connector.name"] == "proof-inbox",
            "task": h["__connect.errors.task.id"] == "poison-1",
            "class": bool(h["__connect.errors.class.name"]),
            "group": h["eventplatform.errors.group"] == names.group,
            "attempts": h["eventplatform.errors.attempts"]
            == (str(ATTEMPTS) if kind == "handler-fails" else "0"),
            "key": letter.key == original.key,
            "value": letter.value == original.value,
            "headers": letter.headers[: len(original.headers)] == original.headers,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            problems.append(f"{kind} at {origin}: wrong {', '.join(failed)}: {h}")

    report(
        f"poison: produced={len(plan)} good={GOOD} poison={poison} "
        f"({', '.join(f'{k}={EACH_POISON}' for k in EXPECTED)}); handled rows={rows} "
        f"dead-lettered={len(letters)} ({', '.join(f'{k}={n}' for k, n in lettered.items())}); "
        f"handled+dead-lettered={rows + len(letters)} in {time.monotonic() - started:.0f}s"
    )
    assert not offenders, f"{await explain(effects, offenders)}\n{app.tail()}"
    assert not problems, "\n".join(problems[:10])
    assert lettered == dict.fromkeys(EXPECTED, EACH_POISON), lettered
    assert rows + len(letters) == len(plan)

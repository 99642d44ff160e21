"""One of two processes registering the same schemas on the cluster's Kafka-log registry.

Run as ``python -m tests.integration.cluster.proofs.registry_worker WORKER`` with the
cluster's ``EVENTPLATFORM_KAFKA__*`` variables and ``EVENTPLATFORM_REGISTRY__TOPIC``
(driven by ``test_registry_failover.py``). Line protocol on stdin/stdout: it prints ``ready``
once started; on ``go A`` (then ``go B``) it runs that phase of :func:`plan` and prints
``done <json results>``; on ``dump`` it prints its registry's snapshot as JSON and exits.

Both workers run the same :func:`plan`, worker 1 with its subjects in the reverse order, so that
their writes race on the log. A result is ``[step, "registered", version, id]``,
``[step, "refused"]`` (an incompatible schema) or ``[step, "compatible"|"incompatible"]``
(a check), where ``step`` names subject and schema.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from eventplatform.errors import IncompatibleSchema
from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.settings import load_settings

SUBJECTS = ("accounts-value", "deposits-value", "receipts-value", "transfers-value")
VERSIONS = 6


def schema(subject: str, fields: int, *, required: bool = False) -> str:
    """A record of the subject with ``fields`` defaulted int fields (each version adds one:
    backward compatible), or with a new field that has no default (``required``: not)."""
    document: dict[str, Any] = {
        "type": "record",
        "name": subject.replace("-", "_"),
        "namespace": "proofs.registry",
        "fields": [{"name": f"f{n}", "type": "int", "default": n} for n in range(fields)],
    }
    if required:
        document["fields"].append({"name": "must", "type": "string"})
    return json.dumps(document)


def plan(phase: str, subjects: tuple[str, ...] = SUBJECTS) -> list[tuple[str, str, int]]:
    """The steps of a phase: (subject, kind, fields); kind ``register`` (``again``: the first
    version a second time), ``incompatible`` or ``check``; subjects in the order given."""
    half = VERSIONS // 2
    if phase == "A":
        return [(s, "register", n) for n in range(1, half + 1) for s in subjects] + [
            (s, "incompatible", half) for s in subjects
        ]
    return (
        [(s, "register", n) for n in range(half + 1, VERSIONS + 1) for s in subjects]
        + [(s, "incompatible", VERSIONS) for s in subjects]
        + [(s, "check", VERSIONS + 1) for s in subjects]
        + [(s, "again", 1) for s in subjects]
    )


async def run(registry: KafkaLogRegistry, phase: str, worker: int) -> list[list[Any]]:
    steps = plan(phase, SUBJECTS if worker == 0 else SUBJECTS[::-1])
    results: list[list[Any]] = []
    for subject, kind, fields in steps:
        step = f"{subject}/{kind}/{fields}"
        if kind == "check":
            checked = await registry.check_compatibility(subject, schema(subject, fields))
            results.append([step, "compatible" if checked.is_compatible else "incompatible"])
            checked = await registry.check_compatibility(
                subject, schema(subject, fields, required=True)
            )
            results.append(
                [f"{step}/required", "compatible" if checked.is_compatible else "incompatible"]
            )
            continue
        try:
            registered = await registry.register(
                subject, schema(subject, fields, required=kind == "incompatible")
            )
        except IncompatibleSchema:
            results.append([step, "refused"])
        else:
            results.append([step, "registered", registered.version, registered.id])
    return results


async def line() -> str:
    text: str = await asyncio.to_thread(sys.stdin.readline)
    return text.strip()


def say(text: str) -> None:
    print(text, flush=True)


async def main(worker: int) -> None:
    async with KafkaLogRegistry(settings=load_settings(), writer=f"worker-{worker}") as registry:
        say("ready")
        while (command := await line()).startswith("go "):
            say("done " + json.dumps(await run(registry, command.removeprefix("go "), worker)))
        if command != "dump":
            raise SystemExit(f"expected 'go PHASE' or 'dump', got {command!r}")
        say(json.dumps(await registry.snapshot()))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))

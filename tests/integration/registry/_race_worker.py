"""One of the processes racing on a Kafka-log registry (driven by ``test_kafkalog_race.py``).

Usage: ``python _race_worker.py BOOTSTRAP TOPIC WORKER``. Protocol on stdin/stdout, one line
each: the worker prints ``ready`` once started, waits for ``go``, runs its plan as fast as it
can, prints ``done <json results>``, waits for ``dump``, prints ``<json snapshot>`` and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from eventplatform.errors import IncompatibleSchema, RegistryError
from eventplatform.registry.base import CompatibilityLevel
from eventplatform.registry.kafkalog import KafkaLogRegistry

SUBJECTS = ("orders-value", "customers-value", "shared-value")
ROUNDS = 6


def schema(*fields: str, required: str | None = None) -> str:
    """A record whose fields all have defaults (so each is compatible with the others)."""
    document: dict[str, Any] = {
        "type": "record",
        "name": "Event",
        "namespace": "race",
        "fields": [{"name": name, "type": "int", "default": 0} for name in fields],
    }
    if required is not None:
        document["fields"].append({"name": required, "type": "string"})
    return json.dumps(document)


def common(round_: int) -> str:
    """The schema both workers register in round ``round_``."""
    return schema(*(f"f{i}" for i in range(round_ + 1)))


async def line() -> str:
    text: str = await asyncio.to_thread(sys.stdin.readline)
    return text.strip()


def say(text: str) -> None:
    print(text, flush=True)


async def run(registry: KafkaLogRegistry, worker: int) -> list[list[Any]]:
    results: list[list[Any]] = []
    levels = [CompatibilityLevel.FULL, CompatibilityLevel.BACKWARD]
    for round_ in range(ROUNDS):
        for subject in SUBJECTS:
            for text in (common(round_), schema(f"f{round_}", f"w{worker}_r{round_}")):
                registered = await registry.register(subject, text)
                results.append(["registered", subject, registered.version, registered.id])
        if round_ % 2 == worker % 2:
            await registry.set_compatibility(levels[round_ % 2], "shared-value")
            await registry.set_compatibility(levels[(round_ + worker) % 2])
        try:
            refused = await registry.register("orders-value", schema("f0", required="must"))
            results.append(["registered", "orders-value", refused.version, refused.id])
        except IncompatibleSchema:
            results.append(["refused", "orders-value"])
        if round_ == 3:
            try:
                deleted = await registry.delete_version("customers-value", "latest")
                results.append(["deleted", "customers-value", deleted])
            except RegistryError as exc:
                results.append(["delete-failed", "customers-value", exc.error_code])
    return results


async def main(servers: str, topic: str, worker: int) -> None:
    async with KafkaLogRegistry(
        bootstrap_servers=servers, topic=topic, writer=f"worker-{worker}"
    ) as registry:
        say("ready")
        if await line() != "go":
            raise SystemExit("expected 'go'")
        results = await run(registry, worker)
        say("done " + json.dumps(results))
        if await line() != "dump":
            raise SystemExit("expected 'dump'")
        say(json.dumps(await registry.snapshot()))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))

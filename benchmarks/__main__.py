"""``python -m benchmarks [NAME …]``: run the ratio benchmarks (all by default)."""

from __future__ import annotations

import importlib
import sys
from contextlib import ExitStack

BENCHMARKS = [
    "serde",
    "publish",
    "consume",
    "inbox",
    "queue",
    "transactions",
    "latency",
    "ingress",
    "egress",
    "recovery",
    "telemetry",
]
#: The benchmarks that need a Kafka broker; one is provisioned for all of them.
ON_KAFKA = {
    "publish",
    "consume",
    "inbox",
    "queue",
    "transactions",
    "latency",
    "ingress",
    "egress",
    "recovery",
    "telemetry",
}


def main() -> None:
    """Run the named benchmarks in order."""
    names = sys.argv[1:] or BENCHMARKS
    for name in names:
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    with ExitStack() as stack:
        if ON_KAFKA.intersection(names):
            from benchmarks.broker import kafka

            stack.enter_context(kafka())
        for name in names:
            importlib.import_module(f"benchmarks.{name}").main()


main()

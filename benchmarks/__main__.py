"""``python -m benchmarks [NAME …] [--quick]``: run the ratio benchmarks (all by default).

``cluster`` starts clusters of its own (two, of three brokers each: minutes on a small
machine), so it runs only when named. ``--quick`` asks the benchmarks that have one
(``cluster``) for a scaled-down smoke run.
"""

from __future__ import annotations

import importlib
import os
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
    "cluster",
]
#: Run only when named: they bring their own brokers and take long.
ON_REQUEST = {"cluster"}
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
    args = sys.argv[1:]
    if "--quick" in args:
        os.environ["BENCH_QUICK"] = "1"
    names = [a for a in args if a != "--quick"] or [n for n in BENCHMARKS if n not in ON_REQUEST]
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

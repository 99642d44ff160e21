"""``python -m benchmarks [NAME …]``: run the ratio benchmarks (all by default)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["serde"]


def main() -> None:
    """Run the named benchmarks in order."""
    names = sys.argv[1:] or BENCHMARKS
    for name in names:
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        importlib.import_module(f"benchmarks.{name}").main()


main()

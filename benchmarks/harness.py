"""Timing helpers shared by the benchmarks: interleaved runs, medians, a ratio table.

Every benchmark runs its reference in the same process, on the same data (and broker), in
alternating rounds so that drift of the machine affects both sides alike, and reports the
median of the rounds. A ratio above 1 means eventplatform is faster (reference time / ours).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

__all__ = ["Comparison", "Result", "console", "print_results", "time_async", "time_sync"]

console = Console()


@dataclass
class Result:
    """Per-round figures of one measured thing (seconds per operation unless ``unit`` says)."""

    name: str
    rounds: list[float] = field(default_factory=list)
    unit: str = "µs/op"
    scale: float = 1e6

    @property
    def median(self) -> float:
        """The median of the rounds."""
        return statistics.median(self.rounds)


@dataclass
class Comparison:
    """Ours against a reference; ``goal`` is the least acceptable ratio, if one is set."""

    title: str
    ours: Result
    reference: Result
    goal: float | None = None
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        """How many times better ours is (reference/ours for times, ours/reference for rates)."""
        if self.higher_is_better:
            return self.ours.median / self.reference.median
        return self.reference.median / self.ours.median


def time_sync(fn: Callable[[], object], ops: int) -> float:
    """Seconds per operation of ``fn`` called ``ops`` times."""
    start = time.perf_counter()
    for _ in range(ops):
        fn()
    return (time.perf_counter() - start) / ops


async def time_async(fn: Callable[[], Awaitable[object]], ops: int) -> float:
    """Seconds per operation of awaiting ``fn()`` ``ops`` times."""
    start = time.perf_counter()
    for _ in range(ops):
        await fn()
    return (time.perf_counter() - start) / ops


def print_results(title: str, comparisons: list[Comparison], notes: list[str] = ()) -> None:  # type: ignore[assignment]
    """A table of medians and ratios."""
    table = Table(title=title, show_lines=False)
    for column in ("benchmark", "eventplatform", "reference", "ratio", "goal"):
        table.add_column(column, justify="right" if column != "benchmark" else "left")
    for c in comparisons:
        goal = "" if c.goal is None else f"≥ {c.goal:.2f}×"
        verdict = "" if c.goal is None else (" ✓" if c.ratio >= c.goal else " ✗")
        table.add_row(
            f"{c.title}\n[dim]vs {c.reference.name}[/]",
            f"{c.ours.median * c.ours.scale:,.2f} {c.ours.unit}",
            f"{c.reference.median * c.reference.scale:,.2f} {c.reference.unit}",
            f"{c.ratio:.2f}×",
            goal + verdict,
        )
    console.print(table)
    for note in notes:
        console.print(f"[dim]{note}[/]")

"""Tables that stay readable in a narrow terminal (80 columns).

rich shares a too-narrow width out by shrinking every column, so ``webhook-ingress`` becomes
``webhook-ingr`` / ``ess`` while a long free-text cell next to it had room to wrap. :func:`fit`
gives identifier columns (names, types, topics, subjects) their full width, shortest first,
as long as the free-text columns keep a readable minimum; only an identifier that cannot fit
in any case is folded. Free text (settings, errors, values) wraps at spaces.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["fit"]

#: Columns of free text keep at least this many characters (or their widest cell, if less).
TEXT_MIN = 12


def fit(table: Table, console: Console, *, identifiers: Sequence[str]) -> Table:
    """Give the ``identifiers`` columns (by header) their longest cell's width when they fit.

    Call after the rows are added; returns ``table``.
    """
    columns = table.columns
    padding = 3 if table.box is not None else 2  # a border and a space each side, shared
    budget = console.width - (padding * len(columns) + 1)
    wanted: list[tuple[int, int]] = []  # (width, column index)
    for index, column in enumerate(columns):
        header = str(column.header)
        widest = max([len(header), *(_width(cell) for cell in column.cells)])
        if header not in identifiers:
            budget -= min(TEXT_MIN, widest)  # a number column needs no more than it shows
            continue
        wanted.append((widest, index))
    for width, index in sorted(wanted):
        if width > budget:
            break
        columns[index].min_width = width
        columns[index].no_wrap = True
        budget -= width
    return table


def _width(cell: object) -> int:
    """The widest line of a cell (markup strings; other renderables count as 0)."""
    if not isinstance(cell, str):
        return 0
    return max(line.cell_len for line in Text.from_markup(cell).split("\n", allow_blank=True))

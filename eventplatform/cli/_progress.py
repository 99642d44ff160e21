"""Progress for long CLI work (DESIGN.md decision 9): a bar on stderr, silent without a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from eventplatform.cli._common import err_console

__all__ = ["progress"]


@contextmanager
def progress() -> Iterator[Progress]:
    """A transient progress bar on stderr: it leaves nothing behind when done, and draws
    nothing when stderr is not a terminal, so piped and captured output stays clean."""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    )
    with bar:
        yield bar

"""Helpers shared by CLI commands: consoles and turning library errors into exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from eventplatform.errors import EventPlatformError

__all__ = ["console", "err_console", "fail_on_errors"]

console = Console()
err_console = Console(stderr=True)


@contextmanager
def fail_on_errors() -> Iterator[None]:
    """Print an eventplatform error as one readable paragraph and exit 1 (no traceback).

    Notes added on the way up (``exc.add_note``, e.g. how much of an input was written) follow
    it, one per line.
    """
    try:
        yield
    except EventPlatformError as exc:
        err_console.print(f"[bold red]error:[/] {type(exc).__name__}: ", end="")
        err_console.print(str(exc), markup=False, highlight=False)
        for note in getattr(exc, "__notes__", ()):
            err_console.print(f"  {note}", markup=False, highlight=False)
        raise typer.Exit(1) from exc

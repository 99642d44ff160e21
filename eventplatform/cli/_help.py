"""How ``--help`` shows options: a flag takes no value, so it shows no ``<bool>`` metavar.

typer (0.16+) labels every option with its type, flags included (``--no-tty <bool>``), which
reads as if the flag took a value. :func:`hide_flag_metavars` makes flags show none; it wraps
``TyperOption.display_type_rich`` and does nothing when a typer release no longer has it (the
help then shows typer's default, which a test of ours notices).
"""

from __future__ import annotations

from typing import Any

import click
from typer import core

__all__ = ["hide_flag_metavars"]


def hide_flag_metavars() -> None:
    """Show no type label for flag options in ``--help`` (idempotent)."""
    option = getattr(core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if option is None or shown is None or getattr(shown, "_eventplatform", False):
        return

    def display_type_rich(self: Any, ctx: click.Context) -> str | None:
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        return shown(self, ctx)  # type: ignore[no-any-return]

    display_type_rich._eventplatform = True  # type: ignore[attr-defined]
    option.display_type_rich = display_type_rich

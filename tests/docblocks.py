"""The fenced code blocks of the README files, and how the suite runs each kind.

A block's info string says what it is (the first word is the language, as Markdown renders it):

- ``python`` / ``toml`` / anything whose first line is a ``# path`` comment: a *file* of the
  example project, written to that path (``# connectors/orders-in.toml``, ``# myapp/events.py``);
- ``python`` without a path: a *snippet*; the snippets of one README build on each other and
  run in order in one namespace, with top-level ``await`` allowed (as ``python -m asyncio``);
- ``sh``: commands run by ``bash -e`` in the example project; long-running commands (``up``,
  ``serve``, ``connectors run``, ``kafka start``) are started in the background and stopped
  with SIGINT by the test, which must then see them exit 0;
- ``no-run`` after the language: deliberately not executed (rare; the test that covers the
  block instead is named in ``docs/decisions.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LONG_RUNNING", "Block", "blocks"]

REPO = Path(__file__).resolve().parent.parent

#: Commands that run until Ctrl-C; a shell block starts them in the background.
LONG_RUNNING = re.compile(r"^eventplatform (up|serve|connectors run|kafka start)\b")

_FENCE = re.compile(r"^```(\S*)(.*)$")
_PATH = re.compile(r"^# ([\w./-]+\.(?:py|toml|avsc|json|jsonl))\s*$")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: where it is, its language, its flags and its text."""

    source: str
    line: int
    language: str
    flags: tuple[str, ...]
    text: str

    @property
    def path(self) -> str | None:
        """The project file the block is, when its first line is a ``# path`` comment."""
        first = self.text.split("\n", 1)[0]
        match = _PATH.match(first)
        return match.group(1) if match else None

    @property
    def kind(self) -> str:
        """``file``, ``snippet``, ``shell`` or ``no-run``; ``unknown`` for anything else."""
        if "no-run" in self.flags:
            return "no-run"
        if self.path is not None:
            return "file"
        if self.language == "python":
            return "snippet"
        if self.language == "sh":
            return "shell"
        return "unknown"

    def __str__(self) -> str:
        return f"{self.source}:{self.line} ({self.language} {self.kind})"


def blocks(name: str) -> list[Block]:
    """The fenced blocks of ``name`` (a path relative to the repository), in order."""
    found: list[Block] = []
    lines = (REPO / name).read_text().splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        start = index
        body: list[str] = []
        index += 1
        while not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        language, flags = match.group(1), tuple(match.group(2).split())
        found.append(Block(name, start + 1, language, flags, "\n".join(body) + "\n"))
        index += 1
    return found

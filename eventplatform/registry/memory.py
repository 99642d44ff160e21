"""A schema registry held in this process: for tests, tools and examples without a broker.

It is the Kafka-log registry with a Python list for a log: the same decisions, the same state
machine (:class:`~eventplatform.registry.state.RegistryState`), the same ids (a new schema's id
is the position of its registration in the log, which starts with an ``init`` record so that
no id is 0). Being the only writer to its log, it never sees a command voided.
"""

from __future__ import annotations

from eventplatform.registry.commandlog import CommandLogRegistry
from eventplatform.registry.commands import Command, Init
from eventplatform.registry.state import ApplyResult

__all__ = ["MemoryRegistry"]


class MemoryRegistry(CommandLogRegistry):
    """A process-local registry implementing the whole registry protocol.

    Use it as ``async with MemoryRegistry() as registry:``; its state lives until it is
    garbage-collected, also after ``close()`` (which only ends its use).

    Args:
        writer: names this registry in the commands it writes.
    """

    def __init__(self, *, writer: str | None = None) -> None:
        super().__init__(writer=writer or "memory")
        self._log: list[Command] = []

    @property
    def log(self) -> tuple[Command, ...]:
        """Every command appended so far, in order (position = index)."""
        return tuple(self._log)

    async def _open(self) -> None:
        if not self._log:
            await self._append(Init())

    async def _shutdown(self) -> None:
        return None

    async def _catch_up(self) -> None:
        return None  # the list is applied as it grows

    async def _append(self, command: Command) -> ApplyResult:
        position = len(self._log)
        self._log.append(command)
        return self._state.apply(position, command)

    def _where(self) -> str:
        return "in-memory registry"

    def __repr__(self) -> str:
        return f"MemoryRegistry(log={len(self._log)} commands)"

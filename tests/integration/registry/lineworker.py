"""A worker process driven over a line protocol: the registry race and failover tests' helper.

The test writes a command per line to the worker's stdin and expects an answer line that
starts with a given prefix on its stdout; anything else (or nothing in time) kills the worker
and fails the test with what it wrote on stderr.
"""

from __future__ import annotations

import asyncio

import pytest

__all__ = ["STEP_TIMEOUT", "LineWorker"]

#: Seconds a worker may take for one step.
STEP_TIMEOUT = 120.0


class LineWorker:
    """A worker process and its line protocol."""

    def __init__(self, process: asyncio.subprocess.Process, number: int) -> None:
        self.process = process
        self.number = number

    async def expect(self, prefix: str) -> str:
        """The next answer line, without ``prefix``; fails the test on another answer."""
        assert self.process.stdout is not None
        try:
            raw = await asyncio.wait_for(self.process.stdout.readline(), STEP_TIMEOUT)
        except TimeoutError:
            raw = b"(nothing)"
        text = raw.decode().rstrip("\n")
        if not text.startswith(prefix):
            assert self.process.stderr is not None
            self.process.kill()
            errors = (await self.process.stderr.read()).decode()
            pytest.fail(f"worker {self.number} said {text!r}, expected {prefix!r}:\n{errors}")
        return text.removeprefix(prefix)

    def send(self, text: str) -> None:
        """Write one command line."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{text}\n".encode())

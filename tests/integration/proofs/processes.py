"""App processes for the proofs: ``eventplatform serve`` children that the tests kill.

:class:`AppProcess` runs one app instance (one ``--instance-id``) through any number of
incarnations: :meth:`~AppProcess.start` spawns a child and waits for its ``ready`` line,
:meth:`~AppProcess.kill` SIGKILLs it (a crash: nothing is flushed, no LeaveGroup),
:meth:`~AppProcess.stop` SIGTERMs it (graceful). Each incarnation's stderr (the app's log) goes
to its own file so that a failing proof can show the tail of the one that misbehaved.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from tests import waiting

ROOT = Path(__file__).resolve().parents[3]
SERVICES = "tests.integration.proofs.services"


def child_environment(**settings: str) -> dict[str, str]:
    """The environment of an app process: ours without ``EVENTPLATFORM_*``, plus ``settings``.

    Settings of the test process (a CI broker address, a developer's store) must not leak into
    the child; only the test tooling's ``EVENTPLATFORM_TEST_*`` variables pass.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("EVENTPLATFORM_") or name.startswith("EVENTPLATFORM_TEST_")
    }
    env.update(settings)
    return env


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (empty when it does not exist)."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class AppProcess:
    """One app instance run as a child process, restartable after a kill.

    Args:
        factory: ``function`` in :mod:`tests.integration.proofs.services` building the app.
        instance_id: ``--instance-id`` (the transactional id's suffix), kept across restarts.
        env: the child's environment (see :func:`child_environment`).
        logs: folder for the incarnations' stderr files.
        label: names the log files (``<label>-<incarnation>.log``); default ``instance_id``.
    """

    def __init__(
        self,
        factory: str,
        *,
        instance_id: str,
        env: Mapping[str, str],
        logs: Path,
        label: str | None = None,
    ) -> None:
        self.spec = f"{SERVICES}:{factory}"
        self.instance_id = instance_id
        self.label = label or instance_id
        self.env = dict(env)
        self.logs = logs
        self.incarnations = 0
        self.kills = 0
        self._process: asyncio.subprocess.Process | None = None
        self._log: Path | None = None

    def __repr__(self) -> str:
        return f"<AppProcess {self.label} incarnation {self.incarnations}>"

    @property
    def alive(self) -> bool:
        """Whether the current incarnation is running."""
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int:
        """The current incarnation's process id."""
        assert self._process is not None
        return self._process.pid

    def tail(self, lines: int = 40) -> str:
        """The end of the current (or last) incarnation's log, for failure messages."""
        if self._log is None:
            return "(never started)"
        return f"--- {self._log.name} ---\n{tail(self._log, lines)}"

    async def start(self, *, within: float = 90.0) -> None:
        """Spawn an incarnation and wait until it printed ``ready`` (it joined the group).

        Raises:
            AssertionError: it exited or stayed silent for ``within`` seconds (with its log).
        """
        assert not self.alive, f"{self!r} is running already"
        self.incarnations += 1
        self._log = self.logs / f"{self.label}-{self.incarnations}.log"
        with self._log.open("wb") as stderr:
            self._process = process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "eventplatform",
                "serve",
                self.spec,
                "--factory",
                "--instance-id",
                self.instance_id,
                cwd=ROOT,
                env=self.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), within)
        except TimeoutError:
            line = b""
        if not line.startswith(b"ready "):
            await self.kill()
            raise AssertionError(f"{self!r} did not become ready:\n{self.tail()}")

    async def kill(self) -> None:
        """SIGKILL the incarnation (a crash) and reap it."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGKILL)
        self.kills += 1
        await self._reap(process)

    def freeze(self) -> None:
        """SIGSTOP the incarnation: alive but silent, like a process stuck in a long GC pause."""
        process = self._process
        assert process is not None, f"{self!r} was never started"
        process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen incarnation."""
        process = self._process
        assert process is not None, f"{self!r} was never started"
        process.send_signal(signal.SIGCONT)

    async def exit_status(self, *, within: float) -> int:
        """Wait for the incarnation to exit by itself; return its status.

        Raises:
            AssertionError: it still ran after ``within`` seconds (it is killed then).
        """
        process = self._process
        assert process is not None
        try:
            await asyncio.wait_for(process.wait(), within)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"{self!r} kept running for {within}s:\n{self.tail()}") from None
        return await self._reap(process)

    async def stop(self, *, within: float = 60.0) -> int:
        """SIGTERM the incarnation and wait for its graceful exit; return its exit status.

        Raises:
            AssertionError: it did not exit within ``within`` seconds (it is killed then).
        """
        process = self._process
        assert process is not None, f"{self!r} was never started"
        assert process.returncode is None, f"{self!r} is not running"
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), within)
        except TimeoutError:
            await self.kill()
            raise AssertionError(
                f"{self!r} ignored SIGTERM for {within}s:\n{self.tail()}"
            ) from None
        return await self._reap(process)

    @staticmethod
    async def _reap(process: asyncio.subprocess.Process) -> int:
        code = await process.wait()
        if process.stdout is not None:
            await process.stdout.read()  # to EOF, so that the pipe's transport closes
        return code

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kill()


async def until(
    predicate: Callable[[], Awaitable[bool]],
    *,
    within: float,
    what: str,
    watch: tuple[AppProcess, ...] = (),
    interval: float = 0.02,
) -> None:
    """Poll ``predicate`` until it holds (:func:`tests.waiting.until`, watching processes).

    Raises:
        AssertionError: ``within`` seconds passed, or a watched process died meanwhile; the
            message carries the tails of the watched processes' logs.
    """

    def died() -> str | None:
        dead = [p for p in watch if not p.alive]
        return f"{dead[0]!r} exited" if dead else None

    await waiting.until(
        predicate,
        within=within,
        what=what,
        interval=interval,
        abort=died,
        details=lambda: "\n".join(p.tail() for p in watch),
    )

"""A throwaway PostgreSQL server for tests, started from the binaries installed on the machine.

:class:`TempPostgres` runs ``initdb`` into a temporary folder and starts ``postgres`` on a free
loopback port, with its unix socket in the same folder, so nothing is shared with a system
server. It is for tests only: authentication is ``trust`` on 127.0.0.1 and ``fsync`` is off.

The server is always ended: :meth:`TempPostgres.stop` asks for a fast shutdown, a ``weakref``
finaliser covers a forgotten handle and interpreter exit, and the postmaster is started as a
direct child (not daemonised by ``pg_ctl``) with ``PR_SET_PDEATHSIG``, so it also dies when the
test process is SIGKILLed.

``initdb`` refuses to run as root. When the effective uid is 0 the tools run as the
``postgres`` system user that the Debian/Ubuntu packages create, and the temporary folder is
handed to that user. The switch is done by :class:`subprocess.Popen` (``user=``/``group=``)
rather than ``runuser``, because the death signal has to be armed *after* the uid change: the
kernel clears it on a credential change, which ``runuser`` would make after we armed it.

The session fixture :func:`postgres_dsn` yields ``$EVENTPLATFORM_TEST_POSTGRES_DSN`` when it is
set, and otherwise the DSN of a :class:`TempPostgres` started for the session. Run
``python -m eventplatform.testing.postgres`` to start one by hand; it prints ``dsn=…`` and
serves until interrupted.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventplatform.errors import PostgresStartError

__all__ = ["ENV_DSN", "TempPostgres", "find_bin_dir", "postgres_dsn"]

ENV_DSN = "EVENTPLATFORM_TEST_POSTGRES_DSN"
_SYSTEM_USER = "postgres"
_SUPERUSER = "postgres"
_PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 30

# Durability settings a throwaway server does not need; they make initdb and commits cheap.
_SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "100",
    "logging_collector": "off",
}


def find_bin_dir(search: Path = Path("/usr/lib/postgresql")) -> Path:
    """The folder holding ``initdb`` and ``postgres``: the newest Debian/Ubuntu version first.

    Looks in ``<search>/<version>/bin`` (``/usr/lib/postgresql``, where the ``postgresql``
    packages put the server binaries, outside ``PATH``), then next to an ``initdb`` or
    ``pg_config`` on ``PATH``.

    Raises:
        PostgresStartError: no PostgreSQL server binaries were found.
    """
    candidates: list[tuple[int, Path]] = []
    for path in search.glob("*/bin"):
        if re.fullmatch(r"\d+", path.parent.name):
            candidates.append((int(path.parent.name), path))
    for _, path in sorted(candidates, reverse=True):
        if _has_server(path):
            return path
    initdb = shutil.which("initdb")
    if initdb and _has_server(Path(initdb).parent):
        return Path(initdb).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        path = Path(out.stdout.strip())
        if out.returncode == 0 and _has_server(path):
            return path
    raise PostgresStartError(
        f"PostgreSQL server binaries (initdb, postgres) were not found in {search}/*/bin or "
        "on PATH: install them (`apt-get install postgresql` on Debian/Ubuntu), or point "
        f"{ENV_DSN} at an existing server."
    )


def _has_server(path: Path) -> bool:
    return all((path / tool).is_file() for tool in ("initdb", "postgres", "pg_isready"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pdeathsig_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that arms ``PR_SET_PDEATHSIG`` in the child, or None off Linux.

    Linux sends SIGINT (PostgreSQL's "fast shutdown") to the postmaster when the thread that
    started it dies, even by SIGKILL. Popen runs the hook after switching to the postgres user,
    so the credential change cannot clear it. libc is loaded here, in the parent: after the
    switch the child may no longer be allowed to read the Python installation to import ctypes.
    """
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl

    def arm() -> None:  # pragma: no cover - runs in the child
        prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG

    return arm


@dataclass
class _Server:
    popen: subprocess.Popen[bytes] | None = None


def _stop(server: _Server, workdir: Path | None, keep: bool) -> None:
    popen = server.popen
    if popen is not None and popen.poll() is None:
        # SIGINT is a fast shutdown: roll back open transactions, disconnect, exit.
        popen.send_signal(signal.SIGINT)
        try:
            popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=10)
    server.popen = None
    if workdir is not None and not keep:
        shutil.rmtree(workdir, ignore_errors=True)


class TempPostgres:
    """A PostgreSQL server in a temporary folder on 127.0.0.1, removed when stopped.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with TempPostgres() as pg:
            conn = await asyncpg.connect(pg.dsn)
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        start_timeout: float = 60.0,
        settings: Mapping[str, str] | None = None,
        keep_data: bool = False,
    ) -> None:
        self.bin_dir = bin_dir
        self.start_timeout = start_timeout
        self.settings = {**_SERVER_SETTINGS, **(settings or {})}
        self.keep_data = keep_data
        self.workdir: Path | None = None
        self.port: int | None = None
        self._server = _Server()
        self._finalizer: weakref.finalize[Any, TempPostgres] | None = None

    @property
    def running(self) -> bool:
        """Whether the postmaster process is alive."""
        return self._server.popen is not None and self._server.popen.poll() is None

    @property
    def dsn(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres`` of the running server.

        Raises:
            PostgresStartError: the server is not running.
        """
        if self.port is None or not self.running:
            raise PostgresStartError("the throwaway PostgreSQL is not running; call start()")
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/postgres"

    @property
    def socket_dir(self) -> Path:
        """The folder holding the server's unix socket.

        Raises:
            PostgresStartError: the server was never started.
        """
        if self.workdir is None:
            raise PostgresStartError("the throwaway PostgreSQL was never started")
        return self.workdir / "socket"

    def __enter__(self) -> TempPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Create a cluster with ``initdb`` and start the server; return once it accepts.

        Raises:
            PostgresStartError: the binaries are missing, ``initdb`` failed, or the server
                exited or did not accept connections within ``start_timeout``.
        """
        if self.running:
            return
        bin_dir = self.bin_dir or find_bin_dir()
        run_as = self._system_user()
        self.workdir = Path(tempfile.mkdtemp(prefix="eventplatform-postgres-"))
        self._finalizer = weakref.finalize(self, _stop, self._server, self.workdir, self.keep_data)
        try:
            (self.workdir / "socket").mkdir()
            if run_as is not None:
                for path in (self.workdir, self.workdir / "socket"):
                    os.chown(path, run_as.pw_uid, run_as.pw_gid)
            self._initdb(bin_dir, run_as)
            for attempt in range(_PORT_ATTEMPTS):
                if self._serve(bin_dir, run_as, last=attempt == _PORT_ATTEMPTS - 1):
                    return
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Shut the server down (fast shutdown, SIGKILL after 30 s) and delete it. Idempotent."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self.port = None

    @staticmethod
    def _system_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(_SYSTEM_USER)
        except KeyError:
            raise PostgresStartError(
                f"running as root, and initdb refuses root; there is no {_SYSTEM_USER!r} "
                "system user to run it as. Install the server package (`apt-get install "
                f"postgresql`), run the tests as another user, or set {ENV_DSN}."
            ) from None

    def _popen_user(self, run_as: pwd.struct_passwd | None) -> dict[str, Any]:
        if run_as is None:
            return {}
        return {"user": run_as.pw_uid, "group": run_as.pw_gid, "extra_groups": []}

    def _initdb(self, bin_dir: Path, run_as: pwd.struct_passwd | None) -> None:
        assert self.workdir is not None
        cmd = [
            str(bin_dir / "initdb"),
            "-D", str(self.workdir / "data"),
            "-U", _SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]  # fmt: skip
        try:
            out = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                cwd=self.workdir,
                timeout=self.start_timeout,
                check=False,
                **self._popen_user(run_as),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresStartError(f"could not run {cmd[0]}: {exc}") from exc
        if out.returncode != 0:
            raise PostgresStartError(
                f"initdb failed (exit {out.returncode}):\n{_tail(out.stdout + out.stderr)}"
            )

    def _serve(self, bin_dir: Path, run_as: pwd.struct_passwd | None, *, last: bool) -> bool:
        assert self.workdir is not None
        port = _free_port()
        log_path = self.workdir / "server.log"
        args = [str(bin_dir / "postgres"), "-D", str(self.workdir / "data"), "-p", str(port)]
        args += ["-k", str(self.workdir / "socket")]
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        with open(log_path, "ab") as log:
            self._server.popen = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                preexec_fn=_pdeathsig_hook(),  # noqa: PLW1509 - see _pdeathsig_hook
                start_new_session=True,
                **self._popen_user(run_as),
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            popen = self._server.popen
            if popen.poll() is not None:
                text = log_path.read_text(errors="replace")
                # Another process took the port between choosing and binding it: try another.
                if "could not bind" in text and not last:
                    self._server.popen = None
                    return False
                raise PostgresStartError(
                    f"PostgreSQL exited during start (code {popen.returncode}); log "
                    f"{log_path}:\n{_tail(text)}"
                )
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                self.port = port
                return True
            time.sleep(0.1)
        raise PostgresStartError(
            f"PostgreSQL did not accept connections within {self.start_timeout:.0f}s; log "
            f"{log_path}:\n{_tail(log_path.read_text(errors='replace'))}"
        )


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a real PostgreSQL server for the whole test session.

    ``$EVENTPLATFORM_TEST_POSTGRES_DSN`` when set (CI with a service container, a developer's
    own server); otherwise a :class:`TempPostgres` started for the session. Tests share the
    server, so each should use its own tables or schema.
    """
    dsn = os.environ.get(ENV_DSN, "").strip()
    if dsn:
        yield dsn
        return
    with TempPostgres() as server:
        yield server.dsn


def main() -> None:
    """Start a :class:`TempPostgres`, print ``dsn=…`` and serve until SIGINT or SIGTERM."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler of its own.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    with TempPostgres() as server:
        print(f"dsn={server.dsn}", flush=True)
        try:
            while server.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

"""An example project in a temporary folder, where README blocks run as a user would run them.

See :mod:`tests.docblocks` for how each kind of block is run. The environment points the CLI
and the library at the test broker; subprocesses import this checkout (``PYTHONPATH``) and
find ``eventplatform`` and ``python3`` of the test's interpreter first on ``PATH``.
"""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tomllib
import types
import uuid
from pathlib import Path
from typing import Any

from tests.docblocks import LONG_RUNNING, REPO, Block

__all__ = ["Background", "Project", "free_port"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Background:
    """A long-running command of a shell block, its output in files of the project."""

    def __init__(self, command: str, root: Path, env: dict[str, str], index: int) -> None:
        self.command = command
        self.out = root / f".bg{index}.out"
        self.err = root / f".bg{index}.err"
        with self.out.open("wb") as stdout, self.err.open("wb") as stderr:
            self.process = subprocess.Popen(
                ["bash", "-c", f"exec {command}"], cwd=root, env=env, stdout=stdout, stderr=stderr
            )

    def output(self) -> str:
        return self.out.read_text()

    def errors(self) -> str:
        return self.err.read_text()

    async def interrupt(self, within: float = 90.0) -> int:
        """SIGINT (Ctrl-C), then the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return await asyncio.to_thread(self.process.wait, within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


class Project:
    """The folder the blocks of one README run in, and what they left behind."""

    def __init__(self, root: Path, bootstrap_servers: str, **env: str) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.site = root / ".site"  # where "installed" distributions' metadata goes
        self.site.mkdir()
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")},
            "PATH": path,
            "PYTHONPATH": os.pathsep.join([str(REPO), str(root), str(self.site)]),
            "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
            "COLUMNS": "100",
            **env,
        }
        # A module of its own, as the REPL's __main__ is: pydantic resolves annotations there.
        module = types.ModuleType(f"readme_{uuid.uuid4().hex[:8]}")
        sys.modules[module.__name__] = module
        self.namespace: dict[str, Any] = module.__dict__
        self.shell_output: list[str] = []
        self.background: list[Background] = []
        self.substitutions: dict[str, str] = {}

    def write(self, block: Block) -> Path:
        """Write a file block to its path; a ``pyproject.toml`` is also installed."""
        assert block.path is not None
        target = self.root / block.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text)
        if block.path == "pyproject.toml":
            self.install(tomllib.loads(block.text))
        return target

    def install(self, pyproject: dict[str, Any]) -> None:
        """What ``pip install -e .`` leaves for importlib.metadata: a dist-info with the
        project's entry points, on ``sys.path`` (the project itself is on PYTHONPATH)."""
        name = pyproject.get("project", {}).get("name", "example-project").replace("-", "_")
        dist = self.site / f"{name}-0.0.0.dist-info"
        dist.mkdir(exist_ok=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.0\n")
        lines = []
        for group, entries in pyproject.get("project", {}).get("entry-points", {}).items():
            lines.append(f"[{group}]")
            lines += [f"{key} = {value}" for key, value in entries.items()]
        (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")

    async def shell(self, block: Block) -> str:
        """Run a shell block, line by line in order; long-running commands start in the
        background once the lines before them succeeded."""
        text = block.text
        for old, new in self.substitutions.items():
            text = text.replace(old, new)
        output: list[str] = []
        pending: list[str] = []
        for line in [*text.splitlines(), None]:
            command = None if line is None else line.split("  #", 1)[0].strip()
            if command is not None and not LONG_RUNNING.match(command):
                pending.append(line or "")
                continue
            if any(part.strip() for part in pending):
                output.append(await self._foreground(block, "\n".join(pending)))
            pending = []
            if command is not None:
                index = len(self.background)
                self.background.append(Background(command, self.root, self.env, index))
        self.shell_output.append("".join(output))
        return self.shell_output[-1]

    async def _foreground(self, block: Block, script: str) -> str:
        done = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-e", "-c", script],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{block} failed ({done.returncode}): {done.stderr}"
        return done.stdout

    async def snippet(self, block: Block) -> None:
        """Run a snippet in the README's namespace, top-level ``await`` allowed."""
        tree = compile(
            block.text,
            f"{block.source}:{block.line}",
            "exec",
            flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        )
        result = eval(tree, self.namespace)  # the README's own code
        if asyncio.iscoroutine(result):
            await result

    async def run(self, blocks: list[Block]) -> None:
        """Every block in order (``no-run`` ones skipped)."""
        for block in blocks:
            if block.kind == "file":
                self.write(block)
            elif block.kind == "snippet":
                await self.snippet(block)
            elif block.kind == "shell":
                await self.shell(block)
            else:
                assert block.kind == "no-run", f"{block}: no way to run it"

    async def stop_background(self) -> list[int]:
        """Ctrl-C every background command; their exit statuses."""
        return [await command.interrupt() for command in self.background]

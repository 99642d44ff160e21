"""``scripts/bootstrap`` says what it does before the quiet pip install of a first ``make``.

Run in a copy of the script with a stand-in Python (no network, no real install): the stand-in
creates ``.venv/bin/python``, which records each pip call after what bootstrap printed so far.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

STAND_IN = """#!/usr/bin/env bash
# python3 stand-in: `--version`, `-c …` (the version check), `-m venv DIR`, `-m pip …`.
case "$1" in
  --version) echo "Python 3.11.9" ;;
  -c) exit 0 ;;
  -m) if [ "$2" = venv ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; else
        echo "pip $*" >> "$(dirname "$0")/../../calls"; fi ;;
esac
"""


def test_bootstrap_says_what_it_installs_before_pip_and_once(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "bootstrap", tmp_path / "scripts" / "bootstrap")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    python = tmp_path / "python3"
    python.write_text(STAND_IN)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PYTHON": str(python)}

    def bootstrap() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(tmp_path / "scripts" / "bootstrap"), "dev"],
            check=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = bootstrap()
    assert first.stderr.splitlines() == [
        "bootstrap: creating .venv with Python 3.11.9",
        "bootstrap: installing eventplatform[dev] and its dependencies into .venv "
        "(about a minute the first time)",
        "bootstrap: .venv is ready",
    ]
    assert (tmp_path / "calls").read_text().count("pip -m pip install") == 2
    again = bootstrap()  # nothing changed: nothing to say, nothing installed
    assert again.stderr == ""
    assert (tmp_path / "calls").read_text().count("pip -m pip install") == 2

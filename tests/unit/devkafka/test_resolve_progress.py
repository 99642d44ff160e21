"""The jar resolve of a first start says what it is doing (no silent minute)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from eventplatform.devkafka.local import _run_telling


def test_a_long_resolve_tells_what_it_is_doing_until_it_ends(tmp_path: Path) -> None:
    """The first `make up` resolves jars for up to minutes: a line every interval, not silence."""

    done = tmp_path / "done"
    said: list[str] = []

    def progress(message: str) -> None:
        said.append(message)
        if len(said) == 2:
            done.write_text("")  # the child waits for this: two heartbeats, then it ends

    child = (
        "import pathlib, sys, time\n"
        f"while not pathlib.Path({str(done)!r}).exists(): time.sleep(0.01)\n"
        "print('resolved')"
    )
    out = _run_telling([sys.executable, "-c", child], 60, progress, "resolving", every=0.2)
    assert out.returncode == 0
    assert out.stdout == "resolved\n"
    assert len(said) == 2
    assert all(re.fullmatch(r"resolving: \d+ s so far", message) for message in said)


def test_a_resolve_past_its_timeout_is_killed(tmp_path: Path) -> None:

    forever = [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"]
    with pytest.raises(subprocess.TimeoutExpired):
        _run_telling(forever, 0.3, None, "resolving", every=0.1)

"""kafka-tools (for the benchmarks' perf test) is an extra jar set the broker never waits for."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from eventplatform.devkafka import local


@pytest.fixture
def maven(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Maven stand-in: records each command and writes the jars it would have resolved."""
    calls: list[list[str]] = []

    def run(cmd: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        out = Path(next(a for a in cmd if a.startswith("-DoutputDirectory=")).split("=", 1)[1])
        (out / "kafka_2.13-4.4.0.jar").write_bytes(b"")
        if "-Dkafka.tools=true" in cmd:
            (out / "kafka-tools-4.4.0.jar").write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(local, "find_maven", lambda: "mvn")
    monkeypatch.setattr(local, "_run_telling", run)
    return calls


def test_the_broker_resolve_leaves_kafka_tools_out(tmp_path: Path, maven: list[list[str]]) -> None:
    libs = local.resolve_jars("4.4.0", cache_root=tmp_path)
    assert libs == tmp_path / "kafka" / "4.4.0" / "libs"
    assert not any("kafka.tools" in arg for arg in maven[0])
    assert not list(libs.glob("kafka-tools-*.jar"))


def test_the_tools_set_is_resolved_into_its_own_folder_once(
    tmp_path: Path, maven: list[list[str]]
) -> None:
    tools = local.resolve_jars("4.4.0", cache_root=tmp_path, tools=True)
    assert tools == local.jar_cache_dir("4.4.0", tmp_path, tools=True)
    assert tools != local.jar_cache_dir("4.4.0", tmp_path)
    assert "-Dkafka.tools=true" in maven[0]
    assert list(tools.glob("kafka-tools-*.jar"))
    assert local.resolve_jars("4.4.0", cache_root=tmp_path, tools=True) == tools
    assert len(maven) == 1  # cached: no second Maven run
    assert not local.jar_cache_dir("4.4.0", tmp_path).exists()


def test_the_pom_declares_kafka_tools_only_in_its_profile() -> None:
    pom = (Path(local.__file__).parent / "pom.xml").read_text()
    profile = pom[
        pom.index("<id>tools</id>") : pom.index("</profile>", pom.index("<id>tools</id>"))
    ]
    assert "<artifactId>kafka-tools</artifactId>" in profile
    assert pom.count("<artifactId>kafka-tools</artifactId>") == 1

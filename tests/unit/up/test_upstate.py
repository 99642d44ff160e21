"""The state file of ``eventplatform up``, the CLI's use of it, and ``--fresh``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from eventplatform.cli._clients import bootstrap_servers, with_running_up
from eventplatform.errors import ConfigurationError, PortInUse
from eventplatform.settings import Settings
from eventplatform.upstate import (
    STATE_FILE,
    Listener,
    UpState,
    check_ports,
    forget_fresh,
    read_state,
    remove_state,
    write_state,
)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_state_is_read_back(tmp_path: Path) -> None:
    state = UpState(
        pid=os.getpid(),
        bootstrap_servers="127.0.0.1:9092",
        registry_url="http://127.0.0.1:8081",
        ingress_urls=("http://127.0.0.1:8080",),
        connector_urls={"orders": "http://127.0.0.1:8080/hooks/orders"},
    )
    write_state(tmp_path, state)
    assert read_state(tmp_path) == state


def test_a_state_whose_process_is_gone_is_ignored(tmp_path: Path) -> None:
    write_state(tmp_path, UpState(pid=dead_pid(), bootstrap_servers="h:1", registry_url="u"))
    assert read_state(tmp_path) is None


def test_a_malformed_state_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / STATE_FILE).write_text("{not json")
    assert read_state(tmp_path) is None


def test_only_the_writer_removes_the_state(tmp_path: Path) -> None:
    write_state(tmp_path, UpState(pid=os.getpid(), bootstrap_servers="h:1", registry_url="u"))
    remove_state(tmp_path, os.getpid() + 1)
    assert (tmp_path / STATE_FILE).exists()
    remove_state(tmp_path, os.getpid())
    assert not (tmp_path / STATE_FILE).exists()


def test_the_cli_uses_the_running_up_only_when_no_servers_are_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="eventplatform up"):
        bootstrap_servers(Settings())
    write_state(
        tmp_path, UpState(pid=os.getpid(), bootstrap_servers="127.0.0.1:19092", registry_url="u")
    )
    assert bootstrap_servers(Settings()) == "127.0.0.1:19092"
    configured = Settings(kafka={"bootstrap_servers": "10.0.0.1:9092"})
    assert with_running_up(configured).kafka.bootstrap_servers == "10.0.0.1:9092"


def test_fresh_forgets_the_broker_and_the_state_but_keeps_other_files(tmp_path: Path) -> None:
    var = tmp_path / "var"
    (var / "kafka" / "node-1").mkdir(parents=True)
    (var / "kafka" / "cluster.id").write_text("x")
    (var / "received.jsonl").write_text("{}\n")
    write_state(tmp_path, UpState(pid=os.getpid(), bootstrap_servers="h:1", registry_url="u"))
    removed = forget_fresh(tmp_path, [])
    assert var / "kafka" in removed
    assert not (var / "kafka").exists()
    assert not (tmp_path / STATE_FILE).exists()
    assert (var / "received.jsonl").exists()


def test_a_taken_port_names_what_and_the_setting() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse) as info:
            check_ports([Listener("127.0.0.1", port, "the schema registry", "--registry-port")])
    assert info.value.port == port
    assert info.value.setting == "--registry-port"
    assert f"port {port} on 127.0.0.1 (the schema registry)" in str(info.value)


def test_fresh_removes_the_sqlite_stores_the_connector_files_name(tmp_path: Path) -> None:
    import shutil

    from eventplatform.connectors.runtime.instances import load_instances

    repo = Path(__file__).resolve().parents[3]
    shutil.copytree(repo / "connectors", tmp_path / "connectors")
    shutil.copytree(repo / "schemas", tmp_path / "schemas")
    var = tmp_path / "var"
    var.mkdir()
    for name in ("orders-ingress.db", "orders-ingress.db-wal", "orders-file.db", "mine.db"):
        (var / name).write_bytes(b"")
    forget_fresh(tmp_path, load_instances(tmp_path / "connectors"))
    assert sorted(p.name for p in var.iterdir()) == ["mine.db"]


def test_a_secured_up_gives_the_cli_its_credentials_by_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.chdir(tmp_path)
    password_file = tmp_path / "var" / "kafka" / "secrets" / "admin"
    password_file.parent.mkdir(parents=True)
    password_file.write_text("s3cret-in-a-file\n")
    state = UpState(
        pid=os.getpid(),
        bootstrap_servers="127.0.0.1:19092",
        registry_url="u",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="admin",
        ssl_cafile=str(tmp_path / "ca.pem"),
        sasl_password_file=str(password_file),
    )
    write_state(tmp_path, state)
    assert read_state(tmp_path) == state
    assert "s3cret" not in (tmp_path / STATE_FILE).read_text()
    kafka = with_running_up(Settings()).kafka
    assert kafka.security_protocol == "SASL_SSL"
    assert kafka.sasl_username == "admin"
    assert kafka.ssl_cafile == tmp_path / "ca.pem"
    assert kafka.sasl_password is None
    assert kafka.sasl_password_file == password_file
    password = kafka.password()
    assert password is not None
    assert password.get_secret_value() == "s3cret-in-a-file"

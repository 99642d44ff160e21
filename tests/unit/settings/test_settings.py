"""Settings resolve from env and files, and reject unknown or malformed values by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventplatform.errors import ConfigurationError
from eventplatform.settings import load_settings, parse_bootstrap_servers


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.chdir(tmp_path)


def test_prefixed_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", "a:1, b:2")
    assert load_settings().kafka.bootstrap_servers == "a:1,b:2"


def test_common_kafka_variable_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    assert load_settings().kafka.bootstrap_servers == "broker:9092"


def test_prefixed_variable_beats_common_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "common:9092")
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", "mine:9092")
    assert load_settings().kafka.bootstrap_servers == "mine:9092"


def test_malformed_bootstrap_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", "localhost")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "kafka.bootstrap_servers" in str(info.value)
    assert "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS" in str(info.value)
    assert "'localhost' is not host:port" in str(info.value)


def test_port_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside 1-65535"):
        parse_bootstrap_servers("h:70000")


def test_ipv6_and_plaintext_prefix() -> None:
    assert parse_bootstrap_servers("[::1]:9092,PLAINTEXT://k:1") == [("::1", 9092), ("k", 1)]


def test_unknown_env_key_fails_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVER", "a:1")
    with pytest.raises(ConfigurationError, match="EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVER "):
        load_settings()


def test_toml_file_and_unknown_key(tmp_path: Path) -> None:
    (tmp_path / "eventplatform.toml").write_text('[kafka]\nbootstrap_servers = "t:9"\n')
    assert load_settings().kafka.bootstrap_servers == "t:9"
    (tmp_path / "eventplatform.toml").write_text('[kafka]\nbootstrapservers = "t:9"\n')
    with pytest.raises(ConfigurationError, match=r"kafka\.bootstrapservers"):
        load_settings()


def test_pyproject_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.eventplatform.devkafka]\nversion = "3.9.1"\n')
    assert load_settings().devkafka.version == "3.9.1"


def test_env_beats_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "eventplatform.toml").write_text('[devkafka]\nheap = "1g"\n')
    monkeypatch.setenv("EVENTPLATFORM_DEVKAFKA__HEAP", "256m")
    assert load_settings().devkafka.heap == "256m"


def test_test_tooling_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTPLATFORM_TEST_POSTGRES_DSN", "postgresql://x")
    assert load_settings().kafka.bootstrap_servers is None


def test_connection_options_carry_security_settings() -> None:
    from eventplatform.settings import KafkaSettings

    plain = KafkaSettings(client_id="svc").connection_options()
    assert plain == {"client_id": "svc", "security_protocol": "PLAINTEXT"}
    sasl = KafkaSettings(
        security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p"
    ).connection_options()
    assert sasl["sasl_plain_username"] == "u"
    assert sasl["sasl_plain_password"] == "p"
    assert sasl["ssl_context"] is not None

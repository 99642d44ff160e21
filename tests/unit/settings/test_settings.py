"""Settings resolve from env and files, and reject unknown or malformed values by name."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest
from pydantic import ValidationError

from eventplatform.errors import ConfigurationError
from eventplatform.settings import KafkaSettings, load_settings, parse_bootstrap_servers


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
    plain = KafkaSettings(client_id="svc").connection_options()
    assert plain == {"client_id": "svc", "security_protocol": "PLAINTEXT"}
    sasl = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",  # validated into a SecretStr
    ).connection_options()
    assert sasl["sasl_plain_username"] == "u"
    assert sasl["sasl_plain_password"] == "p"
    assert sasl["ssl_context"] is not None


# -- secrets ----------------------------------------------------------------------------------

PASSWORD = "hunter2-sasl-Secret"


def test_the_sasl_password_never_shows_in_dumps_reprs_or_strings(tmp_path: Path) -> None:
    (tmp_path / "eventplatform.toml").write_text(
        '[kafka]\nsecurity_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "SCRAM-SHA-512"\n'
        f'sasl_username = "svc"\nsasl_password = "{PASSWORD}"\n'
    )
    settings = load_settings()

    shown = [
        repr(settings),
        str(settings),
        repr(settings.kafka),
        str(settings.kafka),
        repr(settings.model_dump()),
        settings.model_dump_json(),
        repr(settings.model_dump(mode="json")),
    ]
    for text in shown:
        assert PASSWORD not in text
    assert json.loads(settings.model_dump_json())["kafka"]["sasl_password"] == "**********"
    assert "sasl_username" in settings.model_dump_json()  # the dump is there, only masked


def test_the_registry_password_never_shows_in_dumps_and_is_unwrapped_for_basic_auth(
    tmp_path: Path,
) -> None:
    (tmp_path / "eventplatform.toml").write_text(
        f'[registry]\nurl = "https://registry.example:8081"\nusername = "svc"\n'
        f'password = "{PASSWORD}"\n'
    )
    settings = load_settings()

    for text in (repr(settings), str(settings.registry), settings.model_dump_json()):
        assert PASSWORD not in text
    assert repr(settings.model_dump()).count(PASSWORD) == 0
    assert settings.registry.password_value() == PASSWORD


def test_connection_options_unwrap_the_password_for_the_client() -> None:
    options = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="svc",
        sasl_password=PASSWORD,  # validated into a SecretStr
    ).connection_options()

    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["sasl_plain_password"] == PASSWORD
    assert type(options["sasl_plain_password"]) is str


def test_an_invalid_setting_next_to_the_password_does_not_leak_it(tmp_path: Path) -> None:
    (tmp_path / "eventplatform.toml").write_text(
        f'[kafka]\nsasl_mechanism = "PLAIN"\nsasl_password = "{PASSWORD}"\nclient_id = 7\n'
    )
    with pytest.raises(ConfigurationError) as info:
        load_settings()

    rendered = "".join(traceback.format_exception(info.value))
    assert "kafka.client_id" in rendered
    assert PASSWORD not in rendered
    assert info.value.__cause__ is None  # pydantic's error, which holds the inputs, is not chained


def test_a_password_of_the_wrong_type_is_named_but_not_shown(tmp_path: Path) -> None:
    (tmp_path / "eventplatform.toml").write_text("[kafka]\nsasl_password = 98765432123\n")
    with pytest.raises(ConfigurationError) as info:
        load_settings()

    rendered = "".join(traceback.format_exception(info.value))
    assert "setting kafka.sasl_password" in rendered
    assert "98765432123" not in rendered


# -- SASL mechanisms --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", ["plain", "SCRAM-SHA-1", "SCRAM", "PLAIN ", ""])
def test_an_unknown_sasl_mechanism_is_refused_whatever_the_protocol(
    monkeypatch: pytest.MonkeyPatch, protocol: str, mechanism: str
) -> None:
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__SECURITY_PROTOCOL", protocol)
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__SASL_MECHANISM", mechanism)

    with pytest.raises(ConfigurationError) as info:
        load_settings()

    message = str(info.value)
    assert "setting kafka.sasl_mechanism" in message
    assert "environment variable EVENTPLATFORM_KAFKA__SASL_MECHANISM" in message
    assert f"{mechanism!r} is not a SASL mechanism" in message
    assert message.endswith("valid names: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
    assert "Value error" not in message


@pytest.mark.parametrize(
    ("mechanism", "why"),
    [("GSSAPI", "gssapi library"), ("OAUTHBEARER", "token-provider object")],
)
def test_mechanisms_settings_cannot_configure_say_why(mechanism: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        KafkaSettings(sasl_mechanism=mechanism)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_each_valid_mechanism_loads(monkeypatch: pytest.MonkeyPatch, mechanism: str) -> None:
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__SASL_MECHANISM", mechanism)
    assert load_settings().kafka.sasl_mechanism == mechanism


# -- where a bad value came from --------------------------------------------------------------


def test_a_bad_value_from_eventplatform_toml_is_blamed_on_the_file_and_key(
    tmp_path: Path,
) -> None:
    (tmp_path / "eventplatform.toml").write_text('[producer]\nlinger_ms = "soon"\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings()

    message = str(info.value)
    assert (
        f"setting producer.linger_ms ({tmp_path / 'eventplatform.toml'}, key producer.linger_ms)"
        in message
    )
    assert "environment variable" not in message
    assert "EVENTPLATFORM_PRODUCER__LINGER_MS" not in message


def test_an_unknown_key_in_eventplatform_toml_is_blamed_on_the_file(tmp_path: Path) -> None:
    (tmp_path / "eventplatform.toml").write_text('[kafka]\nbootstrapservers = "t:9"\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings()

    assert f"({tmp_path / 'eventplatform.toml'}, key kafka.bootstrapservers)" in str(info.value)
    assert "EVENTPLATFORM_" not in str(info.value)


def test_a_bad_value_from_pyproject_is_blamed_on_its_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.eventplatform.devkafka]\nheap = "lots"\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings()

    where = f"{tmp_path / 'pyproject.toml'}, key tool.eventplatform.devkafka.heap"
    assert f"setting devkafka.heap ({where})" in str(info.value)


def test_the_environment_is_blamed_when_it_overrides_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "eventplatform.toml").write_text('[devkafka]\nheap = "1g"\n')
    monkeypatch.setenv("EVENTPLATFORM_DEVKAFKA__HEAP", "lots")
    with pytest.raises(ConfigurationError) as info:
        load_settings()

    assert "setting devkafka.heap (environment variable EVENTPLATFORM_DEVKAFKA__HEAP)" in str(
        info.value
    )
    assert "eventplatform.toml" not in str(info.value)


def test_a_file_value_is_blamed_on_the_file_when_the_environment_sets_another_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "eventplatform.toml").write_text('[devkafka]\nheap = "lots"\n')
    monkeypatch.setenv("EVENTPLATFORM_DEVKAFKA__VERSION", "4.1.1")
    with pytest.raises(ConfigurationError) as info:
        load_settings()

    assert f"({tmp_path / 'eventplatform.toml'}, key devkafka.heap)" in str(info.value)


def test_a_section_given_as_json_in_the_environment_is_blamed_on_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENTPLATFORM_PRODUCER", '{"linger_ms": -1}')
    with pytest.raises(ConfigurationError) as info:
        load_settings()

    assert "setting producer.linger_ms (environment variable EVENTPLATFORM_PRODUCER)" in str(
        info.value
    )


def test_a_malformed_settings_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "eventplatform.toml").write_text("[kafka\n")
    with pytest.raises(ConfigurationError) as info:
        load_settings()

    assert str(info.value).startswith(f"invalid settings file {tmp_path / 'eventplatform.toml'}: ")
    assert "line 1" in str(info.value)

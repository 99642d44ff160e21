"""Connector instance files: ${ENV} references, validation, errors that name file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventplatform.connectors.builtin.files.source import FileSource, FileSourceConfig
from eventplatform.connectors.builtin.ingress.connector import WebhookIngress
from eventplatform.connectors.runtime.instances import (
    EventTypeResolver,
    load_instance,
    load_instances,
    substitute_env,
)
from eventplatform.errors import ConnectorConfigError

SCHEMA = {
    "type": "record",
    "name": "Ping",
    "namespace": "tests.unit",
    "doc": "A ping.",
    "fields": [{"name": "n", "type": "int", "doc": "Its number."}],
}
PLAIN = (
    'type = "file-source"\ntopic = "t"\nevent_type = "tests.unit.Ping"\n[settings]\npath = "/x"\n'
)
SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    schema = tmp_path / "schemas" / "tests" / "unit" / "Ping.avsc"
    schema.parent.mkdir(parents=True)
    schema.write_text(json.dumps(SCHEMA))
    (tmp_path / "connectors").mkdir()
    return tmp_path / "connectors"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def test_env_references_are_resolved_with_defaults_and_escapes() -> None:
    env = {"SECRET": "s3cr3t", "PORT": "8081"}
    data = {"a": "${SECRET}", "b": ["x-${PORT}", "${MISSING:-fallback}"], "c": "$$5", "d": 3}
    assert substitute_env(data, env) == {
        "a": "s3cr3t",
        "b": ["x-8081", "fallback"],
        "c": "$5",
        "d": 3,
    }


def test_an_unset_variable_names_its_key() -> None:
    with pytest.raises(ConnectorConfigError, match=r"settings\.keys\[1\]: environment variable K"):
        substitute_env({"settings": {"keys": ["ok", "${K}"]}}, {})


def test_a_stray_dollar_is_an_error() -> None:
    with pytest.raises(ConnectorConfigError, match="write \\$\\$ for a literal"):
        substitute_env({"x": "cost $5"}, {})


def test_an_instance_resolves_its_type_event_type_and_settings(deployment: Path) -> None:
    path = write(
        deployment,
        "pings",
        'type = "file-source"\ntopic = "pings"\nevent_type = "tests.unit.Ping"\n'
        '[settings]\npath = "${PINGS_PATH}"\nkey_field = "n"\n',
    )
    spec = load_instance(path, env={"PINGS_PATH": "/tmp/pings.jsonl"})
    assert spec.name == "pings"
    assert spec.connector_class is FileSource
    assert isinstance(spec.config, FileSourceConfig)
    assert spec.config.path == Path("/tmp/pings.jsonl")
    assert spec.event_type is not None
    assert spec.event_type.__avro_name__ == "tests.unit.Ping"
    assert spec.role == "source"


def test_secrets_stay_out_of_reprs_and_dumps(deployment: Path) -> None:
    path = write(
        deployment,
        "hooks",
        'type = "webhook-ingress"\ntopic = "t"\nevent_type = "tests.unit.Ping"\n'
        '[settings]\nsigning_secrets = ["${HOOK_SECRET}"]\napi_keys = ["${HOOK_KEY}"]\n',
    )
    spec = load_instance(path, env={"HOOK_SECRET": SECRET, "HOOK_KEY": "very-secret-key"})
    assert spec.connector_class is WebhookIngress
    shown = repr(spec) + str(spec.config.model_dump(mode="json"))
    assert "very-secret-key" not in shown
    assert SECRET not in shown
    assert "**********" in shown


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (
            'type = "file-source"\ntopic = "t"\nevent_type = "tests.unit.Ping"\n[settings]\n'
            'path = "/x"\npoll_interval = -1\n',
            "settings.poll_interval",
            "greater than 0",
        ),
        (
            'type = "file-source"\ntopic = "t"\nevent_type = "tests.unit.Ping"\n[settings]\n'
            'path = "/x"\nsurprise = 1\n',
            "settings.surprise",
            "Extra inputs",
        ),
        ('type = "nope"\n', "type", "no connector type 'nope'"),
        ('type = "file-source"\ncolour = "red"\n', "colour", "Extra inputs"),
        (
            'type = "file-source"\nevent_type = "tests.unit.Ping"\n[settings]\npath = "/x"\n',
            "topic",
            "needs a topic",
        ),
        (
            'type = "file-source"\ntopic = "t"\nevent_type = "tests.unit.Nope"\n[settings]\n'
            'path = "/x"\n',
            "event_type",
            "not in the schema catalogue",
        ),
        (
            'type = "file-source"\ntopic = "t"\nevent_type = "nowhere.module:Cls"\n[settings]\n'
            'path = "/x"\n',
            "event_type",
            "cannot be imported",
        ),
        (
            'type = "webhook-ingress"\ntopic = "t"\nevent_type = "tests.unit.Ping"\n',
            "settings",
            "signing_secrets and/or api_keys",
        ),
        (
            'type = "webhook-ingress"\ntopic = "t"\nevent_type = "tests.unit.Ping"\n[settings]\n'
            'signing_secrets = ["whsec_***"]\n',
            "settings.signing_secrets",
            "base64",
        ),
        ('name = "bad name"\ntype = "file-source"\n', "name", "must start with"),
        ("type = \n", None, "not valid TOML"),
    ],
)
def test_errors_name_the_file_and_the_key(
    deployment: Path, text: str, key: str | None, reason: str
) -> None:
    path = write(deployment, "broken", text)
    with pytest.raises(ConnectorConfigError) as caught:
        load_instance(path, env={})
    assert caught.value.path == str(path)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{path}: ")
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ('path = "/x"\nkey_feild = "id"\n', "settings.key_feild: Extra inputs are not permitted"),
        (
            'path = "/x"\npoll_interval = 0\nsurprise = 1\n',
            "settings.poll_interval: Input should be greater than 0; "
            "settings.surprise: Extra inputs are not permitted",
        ),
    ],
)
def test_a_settings_error_names_each_field_once(
    deployment: Path, settings: str, expected: str
) -> None:
    text = 'type = "file-source"\ntopic = "t"\nevent_type = "tests.unit.Ping"\n[settings]\n'
    path = write(deployment, "typo", text + settings)

    with pytest.raises(ConnectorConfigError) as caught:
        load_instance(path, env={})

    assert str(caught.value) == f"{path}: {expected}"
    assert caught.value.key == expected.split(":", 1)[0]


def test_instances_are_listed_by_name_and_disabled_ones_left_out(deployment: Path) -> None:
    body = PLAIN
    write(deployment, "b", body)
    write(deployment, "a", body)
    write(deployment, "c", "enabled = false\n" + body)
    assert [s.name for s in load_instances(deployment)] == ["a", "b"]
    assert [s.name for s in load_instances(deployment, names=["c", "a"])] == ["c", "a"]
    with pytest.raises(ConnectorConfigError, match="no connector instance named 'z'"):
        load_instances(deployment, names=["z"])


def test_two_instances_may_not_share_a_name(deployment: Path) -> None:
    body = PLAIN
    write(deployment, "a", body)
    write(deployment, "b", 'name = "a"\n' + body)
    with pytest.raises(ConnectorConfigError, match="'a' is also the name in"):
        load_instances(deployment)


def test_event_types_also_import_as_module_and_class() -> None:
    resolved = EventTypeResolver().resolve("tests.integration.connectors.helpers:Tick")
    assert resolved.__avro_name__ == "tests.connectors.Tick"

"""``apps`` commands without a broker: arguments, passwords and connection errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli.conftest import Invoke

UNREACHABLE = "127.0.0.1:1"


@pytest.fixture
def unreachable_cluster(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", UNREACHABLE)
    return UNREACHABLE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "billing"), "at least one --read or --write"),
        (("add", "bad name", "--read", "orders"), "app name 'bad name'"),
        (("add", "a", "--read", "or/ders"), "topic 'or/ders'"),
        (("add", "a", "--read", "x", "--mechanism", "PLAIN"), "PLAIN"),
        (("add", "a", "--read", "x", "--iterations", "100"), "4096"),
    ],
)
def test_bad_arguments_are_usage_errors_before_connecting(
    cli: Invoke, unreachable_cluster: str, args: tuple[str, ...], message: str
) -> None:
    result = cli("apps", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "KafkaError" not in result.stderr  # it never connected


def test_there_is_no_password_argument(cli: Invoke, unreachable_cluster: str) -> None:
    result = cli("apps", "add", "a", "--read", "x", "--password", "s3cret")
    assert result.exit_code == 2
    assert "No such option" in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("--password-stdin",), "\n", "the password from standard input is empty"),
        (("--password-file", "missing"), None, "cannot read --password-file missing"),
        (("--password-file", "p", "--password-stdin"), "x\n", "not both"),
    ],
)
def test_an_unusable_password_source_is_refused_naming_it(
    cli: Invoke, unreachable_cluster: str, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    Path("p").write_text("x\n")
    result = cli("apps", "add", "a", "--read", "x", *args, input=stdin)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args", [("list",), ("revoke", "a"), ("add", "a", "--read", "x", "--password-stdin")]
)
def test_an_unreachable_cluster_is_a_kafka_error_and_never_shows_the_password(
    cli: Invoke, unreachable_cluster: str, args: tuple[str, ...]
) -> None:
    result = cli("apps", *args, input="chosen-s3cret\n")
    assert result.exit_code == 1
    assert UNREACHABLE in result.stderr
    assert "Traceback" not in result.stderr
    assert "chosen-s3cret" not in result.stderr + result.stdout


def test_without_a_cluster_configured_the_error_says_what_to_set(
    cli: Invoke, workdir: Path
) -> None:
    result = cli("apps", "list")
    assert result.exit_code == 1
    assert "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS" in result.stderr

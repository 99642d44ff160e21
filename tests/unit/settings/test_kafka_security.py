"""Client-side TLS settings and the replication of the topics eventplatform creates."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from eventplatform.access import denied
from eventplatform.devkafka.tls import make_tls
from eventplatform.errors import AuthenticationFailed, AuthorizationFailed, ConfigurationError
from eventplatform.settings import KafkaSettings


@pytest.mark.parametrize(
    ("brokers", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2))]
)
def test_replication_follows_the_cluster_by_default(
    brokers: int, expected: tuple[int, int]
) -> None:
    assert KafkaSettings().topic_replication(brokers) == expected


def test_replication_settings_win() -> None:
    kafka = KafkaSettings(replication_factor=2, min_insync_replicas=2)
    assert kafka.topic_replication(5) == (2, 2)


def test_the_ssl_context_trusts_the_ca_file_and_checks_host_names(tmp_path: Path) -> None:
    files = make_tls(tmp_path)
    kafka = KafkaSettings(security_protocol="SASL_SSL", ssl_cafile=files.ca_file)
    context = kafka.connection_options()["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1
    relaxed = kafka.model_copy(update={"ssl_check_hostname": False})
    assert not relaxed.connection_options()["ssl_context"].check_hostname


def test_a_client_certificate_is_loaded_for_mutual_tls(tmp_path: Path) -> None:
    files = make_tls(tmp_path)  # the keystore holds a key and its chain: usable as both
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=files.ca_file,
        ssl_certfile=files.keystore,
        ssl_keyfile=files.keystore,
    )
    assert isinstance(kafka.connection_options()["ssl_context"], ssl.SSLContext)


def test_an_unreadable_tls_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile=missing)
    with pytest.raises(ConfigurationError, match=f"kafka.ssl_cafile={missing}"):
        kafka.connection_options()


def test_secrets_stay_out_of_reprs_and_dumps() -> None:
    kafka = KafkaSettings(
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="admin",
        sasl_password=SecretStr("hunter2-sasl"),
        ssl_password=SecretStr("hunter2-key"),
    )
    for text in (repr(kafka), str(kafka.model_dump()), kafka.model_dump_json()):
        assert "hunter2" not in text


def test_authorisation_errors_name_the_principal_and_the_resource() -> None:
    kafka = KafkaSettings(sasl_mechanism="SCRAM-SHA-512", sasl_username="app")
    error = denied(TopicAuthorizationFailedError("payroll"), kafka)
    assert isinstance(error, AuthorizationFailed)
    assert error.principal == "User:app"
    assert error.resource == "topic:payroll"
    assert "User:app" in str(error)
    assert "'payroll'" in str(error)
    cluster = denied(ClusterAuthorizationFailedError(), kafka)
    assert isinstance(cluster, AuthorizationFailed)
    assert cluster.resource == "cluster"
    assert "IDEMPOTENT_WRITE" in str(cluster)
    assert isinstance(denied(SaslAuthenticationFailed(), kafka), AuthenticationFailed)
    assert denied(ValueError("other"), kafka) is None


def test_the_password_file_is_read_at_connect_and_never_shown(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text("from-a-file-123\n")
    kafka = KafkaSettings(
        sasl_mechanism="SCRAM-SHA-512", sasl_username="app", sasl_password_file=secret_file
    )
    assert kafka.connection_options()["sasl_plain_password"] == "from-a-file-123"
    secret_file.write_text("rotated-456")  # read on every connect: a rotation needs no restart
    assert kafka.connection_options()["sasl_plain_password"] == "rotated-456"
    assert "rotated-456" not in repr(kafka) + kafka.model_dump_json()


def test_a_missing_or_empty_password_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = KafkaSettings(
        sasl_mechanism="PLAIN", sasl_username="app", sasl_password_file=tmp_path / "nope"
    )
    with pytest.raises(ConfigurationError, match=r"kafka\.sasl_password_file"):
        missing.connection_options()
    (tmp_path / "empty").write_text("\n")
    empty = missing.model_copy(update={"sasl_password_file": tmp_path / "empty"})
    with pytest.raises(ConfigurationError, match="is empty"):
        empty.connection_options()


def test_a_password_and_a_password_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        KafkaSettings(sasl_password=SecretStr("x"), sasl_password_file=tmp_path / "p")

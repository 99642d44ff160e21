"""The ACLs an app's grants become, and the summary ``apps list`` makes of ACLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from eventplatform.apps import AppCredentials, ClientConfig
from eventplatform.apps.grants import (
    Acl,
    AppGrants,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    summarise,
)
from eventplatform.settings import KafkaSettings, RegistrySettings

T, G, X = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED
READ, WRITE = Operation.READ, Operation.WRITE


def test_reads_writes_groups_and_transactional_ids_of_an_app() -> None:
    grants = AppGrants("billing", read=("orders",), write=("payments",), registry_topic="_s")
    assert grants.principal == "User:billing"
    assert grants.group_id == "billing"
    assert grants.acls() == [
        Acl(T, "orders", LIT, READ),
        Acl(T, "payments", LIT, WRITE),
        Acl(T, "orders.dlq", LIT, WRITE),
        Acl(T, "_s", LIT, READ),
        Acl(G, "billing", LIT, READ),
        Acl(X, "billing", LIT, WRITE),
        Acl(G, "billing.", PRE, READ),
        Acl(X, "billing.", PRE, WRITE),
    ]


def test_a_reader_gets_no_transactional_ids_and_prefixes_are_explicit() -> None:
    grants = AppGrants("r", read=("orders.*", "*", "x"), group_prefix="team-r.", dlq_suffix=None)
    assert grants.acls() == [
        Acl(T, "orders.", PRE, READ),
        Acl(T, "*", LIT, READ),
        Acl(T, "x", LIT, READ),
        Acl(G, "team-r.", PRE, READ),
    ]
    assert grants.group_id == "team-r.r"
    # Dead letters of prefixed or wildcard reads cannot be named by a suffix.
    dead = AppGrants("r", read=("orders.*", "*", "x")).acls()
    assert [a for a in dead if a.operation == WRITE] == [Acl(T, "x.dlq", LIT, WRITE)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "app name"),
        ({"name": "a", "read": ("or*ders",)}, "must be 1-200"),
        ({"name": "a", "write": ("a/b",)}, "topic"),
        ({"name": "a", "group_prefix": " "}, "group prefix"),
    ],
)
def test_bad_names_are_refused_saying_which(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AppGrants(**kwargs)  # type: ignore[arg-type]


def test_summaries_are_scram_users_that_hold_acls() -> None:
    acls = [
        ("User:a", Acl(T, "orders", LIT, READ)),
        ("User:a", Acl(T, "pay", PRE, WRITE)),
        ("User:a", Acl(G, "a.", PRE, READ)),
        ("User:a", Acl(ResourceType.CLUSTER, "kafka-cluster", LIT, Operation.ALTER)),
        ("User:a", Acl(T, "secret", LIT, READ, Permission.DENY)),
        ("User:mtls-service", Acl(T, "orders", LIT, READ)),  # no SCRAM credential
    ]
    credentials = {"a": {"SCRAM-SHA-512": 8192}, "admin": {"SCRAM-SHA-512": 4096}}
    (app,) = summarise(credentials, acls)
    assert app.name == "a"
    assert app.reads == ["orders"]
    assert app.writes == ["pay*"]
    assert app.groups == ["a.*"]
    assert app.transactional_ids == []
    assert sorted(app.other) == ["ALTER cluster", "DENY READ topic 'secret'"]
    assert app.as_dict()["principal"] == "User:a"


def test_the_printed_configuration_and_what_never_shows_the_password(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    grants = AppGrants("billing", read=("orders",), registry_topic="_schemas")
    credentials = AppCredentials(grants, "SCRAM-SHA-512", SecretStr('pa"ss\\secr3t'))
    kafka = KafkaSettings(
        bootstrap_servers="b1:9093,b2:9093", security_protocol="SSL", ssl_cafile=ca
    )
    config = ClientConfig(credentials, kafka, RegistrySettings())
    env = config.env()
    assert env["EVENTPLATFORM_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["EVENTPLATFORM_KAFKA__SASL_PASSWORD"] == 'pa"ss\\secr3t'
    assert env["EVENTPLATFORM_KAFKA__SSL_CAFILE"] == str(ca)
    assert env["EVENTPLATFORM_CONSUMER__GROUP_ID"] == "billing"
    assert env["EVENTPLATFORM_REGISTRY__TOPIC"] == "_schemas"
    assert env["EVENTPLATFORM_REGISTRY__AUTO_REGISTER"] == "false"
    assert config.librdkafka()["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert config.java()["sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="billing" password="pa\\"ss\\\\secr3t";'
    )
    text = config.render()
    assert "EVENTPLATFORM_KAFKA__SASL_PASSWORD='pa\"ss\\secr3t'" in text  # shell-quoted
    assert "ssl.truststore.location=" + str(ca) in text
    for shown in (repr(config), repr(credentials), str(credentials)):
        assert "secr3t" not in shown

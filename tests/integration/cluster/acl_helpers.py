"""Test-only ACL grants on the SASL_SSL cluster, made as its super user.

Kafka's own ``kafka-acls`` tool lives in the ``kafka-tools`` jar, which the broker's cached
jars do not include; aiokafka has no CreateAcls. confluent-kafka (the ``dev`` extra, librdkafka)
does, so the tests grant through its ``AdminClient`` as ``admin``. The library's own grants
are ``eventplatform apps``; these tests do not depend on them.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from eventplatform.devkafka.local import LocalCluster


def admin_of(cluster: LocalCluster) -> AdminClient:
    kafka = cluster.kafka_settings()
    assert kafka.sasl_password is not None
    assert kafka.ssl_cafile is not None
    return AdminClient(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": str(kafka.sasl_username),
            "sasl.password": kafka.sasl_password.get_secret_value(),
            "ssl.ca.location": str(kafka.ssl_cafile),
        }
    )


def grant(
    cluster: LocalCluster,
    principal: str,
    *,
    read: Iterable[str] = (),
    write: Iterable[str] = (),
    groups: Iterable[str] = (),
) -> None:
    """Allow ``principal`` (``User:NAME``) to read and write topics and use consumer groups.

    Raises:
        confluent_kafka.KafkaException: the cluster refused a binding.
    """

    def allow(kind: ResourceType, name: str, operation: AclOperation) -> AclBinding:
        return AclBinding(
            kind, name, ResourcePatternType.LITERAL, principal, "*", operation,
            AclPermissionType.ALLOW,
        )  # fmt: skip

    bindings = [allow(ResourceType.TOPIC, t, AclOperation.READ) for t in read]
    bindings += [allow(ResourceType.TOPIC, t, AclOperation.WRITE) for t in write]
    bindings += [allow(ResourceType.GROUP, g, AclOperation.READ) for g in groups]
    # The client must outlive its futures: a collected handle fails them with _DESTROY.
    admin = admin_of(cluster)
    for future in admin.create_acls(bindings, request_timeout=30).values():
        future.result(timeout=60)


def add_user(cluster: LocalCluster, name: str, password: str) -> None:
    """A SCRAM-SHA-512 user of the tests' own, with no ACL yet.

    Tests that grant ACLs use such a user rather than the cluster's ``app``, which other
    tests in the session rely on having none.

    Raises:
        confluent_kafka.KafkaException: the cluster refused it.
    """
    upsert = UserScramCredentialUpsertion(
        name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), password.encode()
    )
    admin = admin_of(cluster)
    for future in admin.alter_user_scram_credentials([upsert], request_timeout=30).values():
        future.result(timeout=60)

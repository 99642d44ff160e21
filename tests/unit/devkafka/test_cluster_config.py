"""A local cluster's layout and configuration, without starting a JVM."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from eventplatform.devkafka import Probe, Provider, choose
from eventplatform.devkafka.local import (
    ClusterDir,
    LocalCluster,
    SaslSsl,
    ensure_port_free,
    node_properties,
)
from eventplatform.devkafka.tls import make_tls
from eventplatform.errors import ConfigurationError, NoBrokerAvailable, PortInUse
from eventplatform.settings import DevKafkaSettings, KafkaSettings, Settings

VOTERS = "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"


def test_a_three_node_cluster_replicates_internal_topics_with_two_in_sync(tmp_path: Path) -> None:
    node = ClusterDir(tmp_path, persistent=False).node(2, port=9094, controller_port=9095)
    props = node_properties(node, version="4.4.0", voters=VOTERS, brokers=3)
    assert props["controller.quorum.voters"] == VOTERS
    assert props["process.roles"] == "broker,controller"
    for name in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
        "default.replication.factor",
    ):
        assert props[name] == "3", name
    for name in (
        "min.insync.replicas",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[name] == "2", name


def test_a_single_node_keeps_one_copy(tmp_path: Path) -> None:
    node = ClusterDir(tmp_path, persistent=False).node(1, port=9092, controller_port=9093)
    props = node_properties(node, version="4.4.0", voters="1@127.0.0.1:9093")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert "broker.session.timeout.ms" not in props


def test_sasl_ssl_listeners_scram_and_the_standard_authoriser(tmp_path: Path) -> None:
    cluster = ClusterDir(tmp_path, persistent=False)
    node = cluster.node(1, port=9092, controller_port=9093)
    security = SaslSsl(tls=cluster.tls(), admin_password=cluster.secret("admin"))
    props = node_properties(node, version="4.4.0", voters=VOTERS, brokers=3, security=security)
    assert props["listeners"] == "CLIENT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["listener.security.protocol.map"] == "CLIENT:SASL_SSL,CONTROLLER:SASL_SSL"
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["super.users"] == "User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    # The password is in the JAAS configs (the broker needs it), and only there.
    password = security.admin_password.get_secret_value()
    holding = {k for k, v in props.items() if password in v}
    assert holding == {
        "listener.name.client.scram-sha-512.sasl.jaas.config",
        "listener.name.controller.plain.sasl.jaas.config",
    }
    assert password not in repr(security)


def test_the_ca_and_broker_certificate_are_made_once_and_the_key_is_private(
    tmp_path: Path,
) -> None:
    from cryptography import x509

    files = make_tls(tmp_path / "tls")
    assert make_tls(tmp_path / "tls") == files
    assert stat.S_IMODE(files.keystore.stat().st_mode) == 0o600
    keystore = files.keystore.read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----")
    cert = x509.load_pem_x509_certificates(keystore.encode())[0]
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}


def test_a_kept_secret_is_drawn_once_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = ClusterDir(tmp_path, persistent=True).secret("admin")
    again = ClusterDir(tmp_path, persistent=True).secret("admin")
    assert first.get_secret_value() == again.get_secret_value()
    assert len(first.get_secret_value()) >= 32
    assert stat.S_IMODE((tmp_path / "secrets" / "admin").stat().st_mode) == 0o600


def test_fixed_ports_interleave_with_a_stride_of_two() -> None:
    cluster = LocalCluster(version="4.4.0", brokers=3, port=29092, controller_port=29093)
    assert cluster._ports() == [(29092, 29093), (29094, 29095), (29096, 29097)]


def test_fixed_ports_that_collide_are_refused_naming_the_settings() -> None:
    cluster = LocalCluster(version="4.4.0", brokers=3, port=29092, controller_port=29094)
    with pytest.raises(ConfigurationError, match="EVENTPLATFORM_DEVKAFKA__CONTROLLER_PORT"):
        cluster._ports()


def test_a_taken_port_of_a_later_node_is_named() -> None:
    def free(port: int) -> bool:
        try:
            ensure_port_free(port, what="test", setting="test")
        except PortInUse:
            return False
        return True

    for _attempt in range(50):  # a port whose neighbours node 1 and node 2 need are free
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            if not all(free(p) for p in (port - 2, port - 1, port + 1)):
                continue
            cluster = LocalCluster(
                version="4.4.0", brokers=2, port=port - 2, controller_port=port - 1
            )
            with pytest.raises(PortInUse, match="node 2"):
                cluster._ports()
            return
    raise AssertionError("no port with free neighbours found in 50 tries")


def test_users_need_sasl_ssl_and_the_size_is_bounded() -> None:
    with pytest.raises(ConfigurationError, match="sasl_ssl"):
        LocalCluster(version="4.4.0", users={"app": SecretStr("x")})
    with pytest.raises(ConfigurationError, match="1 to 9"):
        LocalCluster(version="4.4.0", brokers=0)


def test_a_cluster_or_sasl_ssl_chooses_java_over_docker() -> None:
    machine = Probe(docker=True, java_major=17, maven=True)
    # No bootstrap servers, whatever the shell exports: configured ones win without a probe.
    unset = KafkaSettings(bootstrap_servers=None)
    for devkafka in (DevKafkaSettings(brokers=3), DevKafkaSettings(security="sasl_ssl")):
        chosen = choose(Settings(kafka=unset, devkafka=devkafka), lambda m=machine: m)
        assert chosen.provider is Provider.LOCAL
    forced = DevKafkaSettings(brokers=3, provider="docker")
    with pytest.raises(NoBrokerAvailable, match="PROVIDER=local"):
        choose(Settings(kafka=unset, devkafka=forced), lambda: machine)


def test_a_kept_folder_of_another_size_is_refused_before_anything_starts(tmp_path: Path) -> None:
    cluster = ClusterDir(tmp_path, persistent=True)
    node = cluster.node(1, port=1, controller_port=2)
    node.log_dir.mkdir()
    (node.log_dir / "meta.properties").write_text("cluster.id=abc\nnode.id=1\n")
    three = LocalCluster(version="4.4.0", brokers=3, data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="holds a cluster of 1 broker"):
        three._start_in("java", tmp_path, cluster, [(1, 2), (3, 4), (5, 6)])

"""Choose and start a Kafka broker for development and tests (DESIGN.md decision 1).

The order is fixed:

1. bootstrap servers from settings or the environment → use that cluster, start nothing;
2. a reachable Docker engine → testcontainers' Kafka container in KRaft mode;
3. Java 17+ and Maven → :class:`~eventplatform.devkafka.local.LocalKafka` from Maven jars;
4. otherwise :class:`~eventplatform.errors.NoBrokerAvailable`, saying what to install.

``devkafka.provider`` can force ``docker`` or ``local``. ``devkafka.port``, ``controller_port``
and ``data_dir`` (fixed ports, storage kept across runs) apply to the local path only:
testcontainers chooses its own. So do ``devkafka.brokers`` (a cluster) and
``devkafka.security = "sasl_ssl"``: with either, ``auto`` skips Docker. The decision is a
pure function of a :class:`Probe` so that it is unit-tested without Docker or Java being present.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from eventplatform.devkafka import local
from eventplatform.errors import JavaNotFound, JavaTooOld, NoBrokerAvailable, ProvisioningError
from eventplatform.settings import KafkaSettings, Settings

__all__ = ["Broker", "Choice", "Probe", "Provider", "choose", "provision", "system_probe"]

log = logging.getLogger(__name__)


class Provider(StrEnum):
    """Where the broker comes from."""

    EXTERNAL = "external"
    DOCKER = "docker"
    LOCAL = "local"


@dataclass(frozen=True)
class Probe:
    """What the machine offers, as the decision sees it."""

    docker: bool
    java_major: int | None
    maven: bool
    docker_detail: str = ""


@dataclass(frozen=True)
class Choice:
    """The decision: a provider and, for ``EXTERNAL``, the servers to use."""

    provider: Provider
    bootstrap_servers: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Broker:
    """A broker (or cluster) ready for clients.

    Attributes:
        bootstrap_servers: ``host:port[,…]``.
        provider: where it came from.
        version: the Kafka version or image, when provisioned here.
        log_path: the (first) broker's log, for the local path.
        brokers: how many brokers were started (0 for an external cluster: unknown).
        settings: what a client needs to reach it as the admin: bootstrap servers, and on a
            SASL_SSL cluster the protocol, SCRAM mechanism, admin username, password
            (:class:`~pydantic.SecretStr`) and CA file (``ssl_cafile``).
        password_file: the file (mode 0600) holding the admin password, if any.
    """

    bootstrap_servers: str
    provider: Provider
    version: str | None = None
    log_path: Path | None = None
    brokers: int = 1
    settings: KafkaSettings | None = None
    password_file: Path | None = None

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate to trust (SASL_SSL), else None."""
        return self.settings.ssl_cafile if self.settings else None

    @property
    def username(self) -> str | None:
        """The admin user (SASL_SSL), else None."""
        return self.settings.sasl_username if self.settings else None

    @property
    def password(self) -> SecretStr | None:
        """The admin password (SASL_SSL), else None."""
        return self.settings.sasl_password if self.settings else None

    def kafka_settings(self, base: KafkaSettings | None = None) -> KafkaSettings:
        """``base`` (default: defaults) pointed at this broker, with its credentials."""
        base = base or KafkaSettings()
        if self.settings is None:
            return base.model_copy(update={"bootstrap_servers": self.bootstrap_servers})
        update = {
            name: getattr(self.settings, name)
            for name in (
                "bootstrap_servers", "security_protocol", "sasl_mechanism", "sasl_username",
                "sasl_password", "ssl_cafile",
            )
        }  # fmt: skip
        return base.model_copy(update=update)


def docker_available() -> tuple[bool, str]:
    """Whether a Docker engine answers a ping, and why not.

    The docker SDK comes with the ``docker`` extra (testcontainers); without it Docker is
    treated as absent.
    """
    try:
        import docker  # noqa: PLC0415 - optional dependency

        _kafka_container_class()
    except ImportError:
        return False, "the docker extra is not installed (pip install 'eventplatform[docker]')"
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        # Checked first because the SDK leaks its socket when the daemon is absent.
        return False, "no Docker engine (DOCKER_HOST unset, no /var/run/docker.sock)"
    try:
        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # the SDK raises DockerException, requests' and OS errors
        return False, f"no Docker engine answered ({type(exc).__name__})"
    return True, "Docker engine reachable"


def system_probe() -> Probe:
    """Look at this machine: Docker engine, ``java`` version, ``mvn``."""
    docker_ok, detail = docker_available()
    try:
        major = local.java_major_version()
    except JavaNotFound:
        major = None
    return Probe(
        docker=docker_ok,
        java_major=major,
        maven=local.find_maven() is not None,
        docker_detail=detail,
    )


def choose(settings: Settings, probe: Callable[[], Probe] = system_probe) -> Choice:
    """Decide where the broker comes from. Probes the machine only when it must.

    Raises:
        NoBrokerAvailable: nothing applies; the message lists the three ways to fix it.
        JavaNotFound, JavaTooOld: ``provider=local`` was forced and no suitable Java exists.
    """
    servers = settings.kafka.bootstrap_servers
    if servers:
        return Choice(Provider.EXTERNAL, servers, "bootstrap servers configured")
    forced = settings.devkafka.provider
    dev = settings.devkafka
    # testcontainers' module starts one PLAINTEXT broker: a cluster or SASL_SSL is local only.
    local_only = dev.brokers > 1 or dev.security != "plaintext"
    found = probe()
    if forced == "docker":
        if local_only:
            raise NoBrokerAvailable(
                f"devkafka.provider is 'docker' but devkafka.brokers={dev.brokers} / "
                f"devkafka.security={dev.security} need the Java + Maven path: set "
                "EVENTPLATFORM_DEVKAFKA__PROVIDER=local (or auto)."
            )
        if not found.docker:
            raise NoBrokerAvailable(
                f"devkafka.provider is 'docker' but {found.docker_detail}. Start Docker, or "
                "set EVENTPLATFORM_DEVKAFKA__PROVIDER=auto."
            )
        return Choice(Provider.DOCKER, reason=found.docker_detail)
    if forced == "auto" and found.docker and not local_only:
        return Choice(Provider.DOCKER, reason=found.docker_detail)
    java_ok = found.java_major is not None and found.java_major >= local.MIN_JAVA
    if java_ok and found.maven:
        return Choice(Provider.LOCAL, reason=f"Java {found.java_major} and Maven found")
    if forced == "local":
        if found.java_major is None:
            raise JavaNotFound("devkafka.provider is 'local' but no java was found: " + _HOW)
        if not java_ok:
            raise JavaTooOld(
                f"devkafka.provider is 'local' but java is version {found.java_major}; "
                f"Apache Kafka needs Java {local.MIN_JAVA}+: " + _HOW
            )
        raise NoBrokerAvailable("devkafka.provider is 'local' but mvn was not found: " + _HOW)
    missing = []
    if found.java_major is None:
        missing.append("no java found")
    elif not java_ok:
        missing.append(f"java is version {found.java_major}, Kafka needs {local.MIN_JAVA}+")
    if not found.maven:
        missing.append("no mvn found")
    raise NoBrokerAvailable(
        "no Kafka broker available: no bootstrap servers configured, "
        f"{found.docker_detail or 'no Docker engine'}, and {', '.join(missing)}. " + _HOW
    )


_HOW = (
    "Provide one of: (1) an existing cluster: export "
    "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS=host:9092; (2) a running Docker engine plus "
    "pip install 'eventplatform[docker]'; (3) Java 17+ and Maven on PATH (e.g. apt-get install "
    "openjdk-17-jre-headless maven), which run Apache Kafka from Maven Central jars."
)


@contextmanager
def provision(
    settings: Settings,
    *,
    probe: Callable[[], Probe] = system_probe,
    progress: Callable[[str], None] | None = None,
) -> Iterator[Broker]:
    """Provide a ready broker for the duration of the ``with`` block, and stop what it started.

    Raises:
        ProvisioningError: (or a subclass) no broker could be provided or started.
    """
    choice = choose(settings, probe)
    dev = settings.devkafka
    log.info("Kafka broker: %s (%s)", choice.provider, choice.reason)
    if choice.provider is Provider.EXTERNAL:
        assert choice.bootstrap_servers is not None
        yield Broker(choice.bootstrap_servers, Provider.EXTERNAL)
    elif choice.provider is Provider.DOCKER:
        with _docker_broker(dev.image, progress) as servers:
            yield Broker(servers, Provider.DOCKER, version=dev.image)
    else:
        with local.LocalCluster(
            version=dev.version,
            brokers=dev.brokers,
            cache_root=dev.cache_dir,
            start_timeout=dev.start_timeout,
            resolve_timeout=dev.resolve_timeout,
            heap=dev.heap,
            port=dev.port,
            controller_port=dev.controller_port,
            data_dir=dev.data_dir,
            security=dev.security,
            progress=progress,
        ) as kafka:
            yield Broker(
                kafka.bootstrap_servers,
                Provider.LOCAL,
                dev.version,
                kafka.node(1).log_path,
                brokers=dev.brokers,
                settings=kafka.kafka_settings() if dev.security != "plaintext" else None,
                password_file=kafka.admin_password_file,
            )


def _kafka_container_class() -> Any:
    """testcontainers' KafkaContainer; 4.x moved it to ``testcontainers.community.kafka``.

    Raises:
        ImportError: testcontainers is not installed.
    """
    try:
        from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415
    except ImportError:
        from testcontainers.kafka import KafkaContainer  # noqa: PLC0415
    return KafkaContainer


@contextmanager
def _docker_broker(image: str, progress: Callable[[str], None] | None) -> Iterator[str]:
    KafkaContainer = _kafka_container_class()
    if progress:
        progress(f"starting {image} with testcontainers (KRaft)")
    container = KafkaContainer(image).with_kraft()
    try:
        container.start()
    except Exception as exc:
        raise ProvisioningError(
            f"starting the Kafka container {image} failed: {exc}. Check `docker info`, or set "
            "EVENTPLATFORM_DEVKAFKA__PROVIDER=local to use Java and Maven instead."
        ) from exc
    try:
        yield str(container.get_bootstrap_server())
    finally:
        container.stop()

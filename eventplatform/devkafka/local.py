"""KRaft Apache Kafka nodes run from jars resolved out of Maven Central: one, or a cluster.

The jars come from the ``pom.xml`` beside this module through ``mvn dependency:copy-dependencies``
and are cached per Kafka version in the user's cache directory, so only the first start of a
version pays for the download (about 60 MB). Every node is a combined broker and controller
(:func:`node_properties` builds its configuration) in a static controller quorum
(``controller.quorum.voters``), which formats and starts the same way on Kafka 3.9 and 4.x.
:class:`LocalKafka` is one node; :class:`LocalCluster` is several (three for replication
with ``min.insync.replicas=2``), each formatted with the same cluster id, and can stop, kill and
restart one of them. Either can listen with SASL_SSL: a throwaway CA (:mod:`.tls`),
SCRAM-SHA-512 users and Kafka's standard authoriser. The files live in a :class:`ClusterDir`:
a temporary folder by default, or a kept one (``data_dir``) whose storage, cluster id and
credentials survive restarts. Ports are free loopback ports unless given.

The broker processes are always ended: :meth:`LocalCluster.stop` terminates them, a ``weakref``
finaliser covers a forgotten handle and interpreter exit, and on Linux each child is started
with ``PR_SET_PDEATHSIG`` so that it dies with its parent even when the parent is SIGKILLed.
"""

from __future__ import annotations

import base64
import ctypes
import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import SecretStr

from eventplatform.devkafka import cluster_info
from eventplatform.devkafka.tls import TlsFiles, make_tls
from eventplatform.errors import (
    BrokerResolutionError,
    BrokerStartError,
    ConfigurationError,
    JavaNotFound,
    JavaTooOld,
    PortInUse,
)
from eventplatform.settings import KafkaSettings

__all__ = [
    "ADMIN_USER",
    "ClusterDir",
    "LocalCluster",
    "LocalKafka",
    "Node",
    "SaslSsl",
    "broker_ids",
    "ensure_port_free",
    "jar_cache_dir",
    "java_major_version",
    "node_properties",
    "resolve_jars",
]

log = logging.getLogger(__name__)

MIN_JAVA = 17
_LOG_TAIL_LINES = 40


def java_major_version(java: str | None = None) -> int | None:
    """The major version of ``java`` (``JAVA_HOME`` first, then ``PATH``), or None if absent.

    Raises:
        JavaNotFound: ``java`` exists but its version cannot be read.
    """
    exe = java or find_java()
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaNotFound(f"could not run {exe} -version: {exc}") from exc
    return parse_java_version(out.stderr + out.stdout)


def parse_java_version(text: str) -> int | None:
    """The major version in ``java -version`` output: ``"1.8.0_402"`` → 8, ``"17.0.1"`` → 17."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


def find_java() -> str | None:
    """Path of the ``java`` executable: ``$JAVA_HOME/bin/java``, else the one on ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def find_maven() -> str | None:
    """Path of ``mvn`` on ``PATH`` (or ``$MAVEN_HOME/bin/mvn``)."""
    home = os.environ.get("MAVEN_HOME")
    if home:
        candidate = Path(home) / "bin" / "mvn"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("mvn")


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/eventplatform`` (``~/.cache/eventplatform`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "eventplatform"


def jar_cache_dir(version: str, cache_root: Path | None = None, *, tools: bool = False) -> Path:
    """Where the jars of Kafka ``version`` are cached (``tools``: the broker's and kafka-tools')."""
    folder = "tools-libs" if tools else "libs"
    return (cache_root or default_cache_root()) / "kafka" / version / folder


def _is_kafka3(version: str) -> bool:
    return version.split(".", 1)[0] == "3"


def resolve_jars(
    version: str,
    *,
    cache_root: Path | None = None,
    timeout: float = 900.0,
    progress: Callable[[str], None] | None = None,
    tools: bool = False,
) -> Path:
    """Resolve the broker jars of Kafka ``version`` into the cache and return their folder.

    A cached folder is reused; concurrent callers (several pytest-xdist workers, two shells)
    wait on a file lock instead of resolving twice, and a half-written folder is never seen
    because the result is renamed into place only once Maven succeeded.

    ``tools`` resolves, into a folder of its own, the broker's jars plus ``kafka-tools`` and
    its dependencies (``org.apache.kafka.tools.ProducerPerformance`` and the other command-line
    tools; ~25 MB more): only the benchmarks ask for it, so a broker start never waits for it.

    Raises:
        BrokerResolutionError: Maven is missing, failed, or timed out; the message carries the
            tail of Maven's output.
    """
    target = jar_cache_dir(version, cache_root, tools=tools)
    if (target / ".complete").exists():
        return target
    mvn = find_maven()
    if mvn is None:
        raise BrokerResolutionError(
            "Maven (mvn) is not on PATH: install Maven 3.6+ (e.g. `apt-get install maven`) so "
            "the Apache Kafka broker jars can be resolved from Maven Central, or set "
            "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS to an existing cluster."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / ".resolve.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            return target
        if progress:
            progress(f"resolving Apache Kafka {version} from Maven Central (first start only)")
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=target.parent))
        with resources.as_file(resources.files(__package__).joinpath("pom.xml")) as pom:
            cmd = [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                f"-Dkafka.version={version}",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ]
            if _is_kafka3(version):
                cmd.insert(5, "-Dkafka.logging=reload4j")
            if tools:
                cmd.insert(5, "-Dkafka.tools=true")
            try:
                out = _run_telling(cmd, timeout, progress, f"resolving Apache Kafka {version}")
            except subprocess.TimeoutExpired as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise BrokerResolutionError(
                    f"Maven did not resolve Apache Kafka {version} within {timeout:.0f}s; "
                    "check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml) "
                    "or raise EVENTPLATFORM_DEVKAFKA__RESOLVE_TIMEOUT."
                ) from exc
        wanted = "kafka-tools-*.jar" if tools else "kafka_2.13-*.jar"
        if out.returncode != 0 or not any(staging.glob(wanted)):
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-_LOG_TAIL_LINES:])
            raise BrokerResolutionError(
                f"Maven could not resolve org.apache.kafka:{wanted.removesuffix('-*.jar')}:"
                f"{version} (exit "
                f"{out.returncode}). Check the version exists on Maven Central and that it is "
                f"reachable; set EVENTPLATFORM_DEVKAFKA__VERSION to another one.\n--- mvn output "
                f"---\n{tail}"
            )
        (staging / ".complete").write_text(version)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target


def _run_telling(
    cmd: list[str],
    timeout: float,
    progress: Callable[[str], None] | None,
    doing: str,
    *,
    every: float = 10.0,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd)``, telling ``progress`` every ``every`` seconds that it is still
    ``doing`` it: a first resolve takes seconds to minutes, and a silent screen looks hung.

    Raises:
        subprocess.TimeoutExpired: ``cmd`` ran longer than ``timeout`` (it is killed).
    """
    started = time.monotonic()
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        while True:
            left = timeout - (time.monotonic() - started)
            try:
                stdout, stderr = process.communicate(timeout=max(0.0, min(every, left)))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() - started >= timeout:
                    process.kill()
                    process.communicate()
                    raise
                if progress:
                    progress(f"{doing}: {time.monotonic() - started:.0f} s so far")
    return subprocess.CompletedProcess(cmd, process.returncode, stdout, stderr)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, below the ephemeral range.

    Kafka binds its client listener only once the broker has caught up with the metadata log,
    tens of seconds after the process starts. A port from the ephemeral range (what binding
    port 0 returns) can meanwhile become the source port of any outgoing connection on the
    machine (the readiness probes themselves, the controllers' connections, other programs),
    and the broker then fails with "Address already in use". Ports below that range are only
    ever taken by an explicit bind.
    """
    low = _ephemeral_low()
    if low > _LOWEST_FREE_PORT + 1000:
        for _ in range(200):
            port = _LOWEST_FREE_PORT + secrets.randbelow(low - _LOWEST_FREE_PORT)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_LOWEST_FREE_PORT = 20000


def _ephemeral_low() -> int:
    """The first port of Linux's ephemeral range (``ip_local_port_range``), else IANA's."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


def ensure_port_free(port: int, *, host: str = "127.0.0.1", what: str, setting: str) -> None:
    """Fail early, and clearly, when another process listens on ``host:port``.

    The probe binds with ``SO_REUSEADDR`` as the servers themselves do (the JVM and aiohttp
    on Linux), so a port left in ``TIME_WAIT`` by the previous run counts as free.

    Raises:
        PortInUse: the port is taken; the message names it, ``what`` wanted it and ``setting``.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUse(
                f"port {port} on {host} ({what}) is already in use by another process: stop "
                f"that process or choose another port with {setting}",
                port=port,
                setting=setting,
            ) from exc


def new_cluster_id() -> str:
    """A fresh KRaft cluster id, as ``kafka-storage.sh random-uuid`` prints one."""
    # 16 random bytes in URL-safe base64 without padding. One starting with "-" would be read
    # as an option by the storage tool's argument parser, so draw again (Kafka's own generator
    # does too).
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True, slots=True)
class Node:
    """One KRaft node (broker and controller in one process): its id, ports and folder."""

    node_id: int
    port: int
    controller_port: int
    home: Path

    @property
    def log_dir(self) -> Path:
        """``log.dirs``: partitions and, once formatted, ``meta.properties``."""
        return self.home / "data"

    @property
    def properties(self) -> Path:
        """Its ``server.properties``."""
        return self.home / "server.properties"

    @property
    def log_path(self) -> Path:
        """The broker's own log (log4j)."""
        return self.home / "broker.log"


#: The principal of the brokers themselves on a SASL_SSL cluster (inter-broker and controller
#: traffic), and the operator's admin user: the one super user. Applications get their own.
ADMIN_USER = "admin"

SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True, slots=True)
class SaslSsl:
    """What a SASL_SSL node needs: its PEM files and the admin principal's password."""

    tls: TlsFiles
    admin_password: SecretStr


def node_properties(
    node: Node,
    *,
    version: str,
    voters: str,
    brokers: int = 1,
    security: SaslSsl | None = None,
) -> dict[str, str]:
    """The ``server.properties`` of one combined broker+controller node.

    Args:
        node: the node.
        version: the Kafka version (3.x lacks the share-group settings).
        voters: ``controller.quorum.voters``, e.g. ``1@127.0.0.1:9093``: a static quorum formats
            and starts the same way on Kafka 3.9 and 4.x.
        brokers: the size of the cluster: internal topics get ``min(3, brokers)`` replicas and,
            from three brokers on, ``min.insync.replicas=2``, so that ``acks=all`` means two
            copies and one broker may fail.
        security: None for a PLAINTEXT listener; else SASL_SSL everywhere (see
            :func:`_sasl_ssl_properties`).
    """
    port, cport = node.port, node.controller_port
    replicas = str(min(3, brokers))
    min_isr = "2" if brokers >= 3 else "1"
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        # CONTROLLER stays out of the advertised listeners: Kafka 3.x refuses it there.
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(node.log_dir),
        "num.partitions": "1",
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": replicas,
        # Transactions fail on a single node without it.
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "10",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "log.flush.interval.messages": str(2**62),
    }
    if brokers > 1:
        settings |= {
            # A killed broker is fenced, and its partitions get new leaders, after 6 s rather
            # than the default 9 s; heartbeats every second keep a busy machine from flapping.
            "broker.session.timeout.ms": "6000",
            "broker.heartbeat.interval.ms": "1000",
            # Fewer threads per JVM: three of them share two cores (Kafka's defaults are 3
            # network and 8 I/O threads, sized for a dedicated host).
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
    if not _is_kafka3(version):
        # Below three brokers __share_group_state never becomes available without these.
        settings["share.coordinator.state.topic.replication.factor"] = replicas
        settings["share.coordinator.state.topic.min.isr"] = min_isr
    if security is not None:
        settings |= _sasl_ssl_properties(node, security)
    return settings


def _sasl_ssl_properties(node: Node, security: SaslSsl) -> dict[str, str]:
    """SASL_SSL listeners, SCRAM users and the standard authoriser.

    Clients (and the brokers among themselves) authenticate with SCRAM-SHA-512 on the CLIENT
    listener: KRaft reads SCRAM credentials from the metadata log, where ``format --add-scram``
    put them (KIP-900). The controller listener uses PLAIN, because a controller must
    authenticate peers before any metadata, and so any SCRAM credential, is loaded. Both are
    TLS with host-name verification. Only ``User:admin`` is a super user; everyone else needs
    ACLs (``allow.everyone.if.no.acl.found=false``).
    """
    password = security.admin_password.get_secret_value()
    scram = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN_USER}" password="{password}";'
    )
    plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{ADMIN_USER}" password="{password}" user_{ADMIN_USER}="{password}";'
    )
    return {
        "listeners": f"CLIENT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"CLIENT://127.0.0.1:{node.port}",
        "listener.security.protocol.map": "CLIENT:SASL_SSL,CONTROLLER:SASL_SSL",
        "inter.broker.listener.name": "CLIENT",
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.client.sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "listener.name.client.scram-sha-512.sasl.jaas.config": scram,
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(security.tls.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(security.tls.ca_file),
        "ssl.endpoint.identification.algorithm": "https",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN_USER}",
        "allow.everyone.if.no.acl.found": "false",
    }


class ClusterDir:
    """The folder of one development cluster: the one place that knows its layout.

    ::

        DIR/cluster.id                 the KRaft cluster id: drawn once, read on every start
        DIR/node-1/server.properties   written on every start (ports may change)
        DIR/node-1/broker.log          the broker's log; console.log its stdout/stderr
        DIR/node-1/data/               log.dirs; formatted (meta.properties) only when new
        DIR/tls/                       SASL_SSL only: the throwaway CA and broker certificate
        DIR/secrets/admin              SASL_SSL only: the admin password (mode 0600)

    A persistent folder (``eventplatform up``'s ``var/kafka``) keeps topics, offsets, the
    schema registry's log and transactional state across runs; a temporary one is removed
    when the broker stops.

    Args:
        path: the folder; created when missing.
        persistent: keep it when the broker stops.
    """

    def __init__(self, path: Path, *, persistent: bool) -> None:
        self.path = path
        self.persistent = persistent

    def node(self, node_id: int, *, port: int, controller_port: int) -> Node:
        """Node ``node_id`` of this cluster, its folder created."""
        home = self.path / f"node-{node_id}"
        home.mkdir(parents=True, exist_ok=True)
        return Node(node_id, port, controller_port, home)

    def cluster_id(self) -> str:
        """The cluster id: the one kept in ``cluster.id``, else a new one, kept there.

        A log dir formatted by another tool lends its id (``meta.properties``), so a folder
        made by hand keeps working. Every node of a cluster must be formatted with this id.
        """
        kept = self.path / "cluster.id"
        if kept.exists():
            return kept.read_text().strip()
        cluster_id = self._formatted_id() or new_cluster_id()
        self.path.mkdir(parents=True, exist_ok=True)
        staging = kept.with_suffix(".tmp")
        staging.write_text(cluster_id + "\n")
        staging.replace(kept)  # atomic: a crash never leaves half an id
        return cluster_id

    def is_formatted(self, node: Node) -> bool:
        """Whether the node's log dir holds KRaft storage already (format only when new)."""
        return (node.log_dir / "meta.properties").exists()

    def formatted_nodes(self) -> int:
        """How many node folders hold formatted storage."""
        return len(list(self.path.glob("node-*/data/meta.properties")))

    def secret(self, name: str) -> SecretStr:
        """The password ``name`` kept in ``secrets/NAME``; drawn (192 random bits) when new.

        A kept cluster must find the SCRAM password it was formatted with on every start.
        """
        path = self.path / "secrets" / name
        if path.exists():
            return SecretStr(path.read_text().strip())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = secrets.token_urlsafe(24)  # [A-Za-z0-9_-]: safe in JAAS and --add-scram
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(value + "\n")
        return SecretStr(value)

    def tls(self) -> TlsFiles:
        """The cluster's throwaway CA and broker certificate (:func:`make_tls`)."""
        return make_tls(self.path / "tls")

    def _formatted_id(self) -> str | None:
        for meta in sorted(self.path.glob("node-*/data/meta.properties")):
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.removeprefix("cluster.id=").strip()
        return None

    def discard(self) -> None:
        """Remove the folder unless it is persistent."""
        if not self.persistent:
            shutil.rmtree(self.path, ignore_errors=True)


# PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. The
# broker is therefore always forked from this one long-lived thread, so that starting it from
# a short-lived thread (asyncio.to_thread, a test helper) does not kill it when that thread
# ends, while a SIGKILL of the whole process still takes it down.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventplatform-kafka-spawner")


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    # Linux: the kernel sends SIGTERM to the broker when the thread that started it dies,
    # even by SIGKILL, so a killed test run leaves no java behind.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""

_LOG4J1 = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
"""


@dataclass
class _Proc:
    popen: subprocess.Popen[bytes] | None = None
    command: list[str] = field(default_factory=list)


def _halt(proc: _Proc, *, kill: bool) -> None:
    """End one broker process: SIGKILL, or SIGTERM (a controlled shutdown) then SIGKILL."""
    popen = proc.popen
    if popen is None or popen.poll() is not None:
        return
    if kill:
        popen.kill()
        popen.wait(timeout=30)
        return
    popen.terminate()
    try:
        popen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=10)


def _kill(procs: dict[int, _Proc], cluster: ClusterDir | None) -> None:
    # All at once: a node waiting for its controlled shutdown needs the others' quorum, so
    # stopping them one after the other would wait for each one's timeout.
    for proc in procs.values():
        if proc.popen is not None and proc.popen.poll() is None:
            proc.popen.terminate()
    for proc in procs.values():
        _halt(proc, kill=False)
        proc.popen = None
    if cluster is not None:
        cluster.discard()


Security = Literal["plaintext", "sasl_ssl"]


class LocalCluster:
    """KRaft nodes (each broker and controller) on loopback, started from cached Maven jars.

    ``brokers`` nodes form one cluster: a static controller quorum of all of them
    (``controller.quorum.voters=1@…,2@…,3@…``), each formatted with the same cluster id. With
    three, internal topics have three replicas and ``min.insync.replicas`` is 2 (see
    :func:`node_properties`). Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with LocalCluster(version="4.4.0", brokers=3) as cluster:
            print(cluster.bootstrap_servers)
            cluster.kill(2)          # SIGKILL node 2
            cluster.restart(2)

    Args:
        version: the Apache Kafka version.
        brokers: the number of nodes (1 to 9).
        cache_root: where jars are cached; default :func:`default_cache_root`.
        start_timeout: seconds for formatting and start-up together.
        resolve_timeout: seconds for Maven on a first start.
        heap: each JVM's maximum heap; None: ``512m`` for one node, ``384m`` each in a cluster.
        keep_data: keep the temporary folder after :meth:`stop` (for debugging).
        port: the first node's client port (node N gets ``port + 2(N-1)``); None: free ports.
        controller_port: likewise for the controller ports; None: free ports.
        data_dir: keep the cluster here across runs (see :class:`ClusterDir`): the first start
            formats it, later ones reuse its storage, cluster id and credentials. None: a
            temporary folder, removed by :meth:`stop`.
        security: ``plaintext``, or ``sasl_ssl``: TLS with a throwaway CA, SCRAM-SHA-512
            users and the standard authoriser (:func:`_sasl_ssl_properties`).
        users: more SCRAM-SHA-512 users (name → password), created when the storage is first
            formatted; they have no ACLs. ``sasl_ssl`` only.
        progress: told what is happening while starting.

    Raises:
        ConfigurationError: ``brokers`` is out of range, or ``users`` without ``sasl_ssl``.
    """

    def __init__(
        self,
        *,
        version: str,
        brokers: int = 3,
        cache_root: Path | None = None,
        start_timeout: float = 120.0,
        resolve_timeout: float = 900.0,
        heap: str | None = None,
        keep_data: bool = False,
        port: int | None = None,
        controller_port: int | None = None,
        data_dir: Path | None = None,
        security: Security = "plaintext",
        users: Mapping[str, SecretStr] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if not 1 <= brokers <= 9:
            raise ConfigurationError(f"a local cluster has 1 to 9 brokers, not {brokers}")
        if users and security != "sasl_ssl":
            raise ConfigurationError("SCRAM users need security='sasl_ssl'")
        self.version = version
        self.brokers = brokers
        self.cache_root = cache_root
        self.start_timeout = start_timeout
        self.resolve_timeout = resolve_timeout
        self.heap = heap or ("512m" if brokers == 1 else "384m")
        self.keep_data = keep_data
        self.requested_port = port
        self.requested_controller_port = controller_port
        self.data_dir = data_dir
        self.security: Security = security
        self._users = dict(users or {})
        self._progress = progress
        self._procs: dict[int, _Proc] = {n: _Proc() for n in range(1, brokers + 1)}
        self._nodes: dict[int, Node] = {}
        self._sasl: SaslSsl | None = None
        self.workdir: Path | None = None
        self.cluster_id: str | None = None
        self._started = False
        self._finalizer: weakref.finalize[..., LocalCluster] | None = None

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<{type(self).__name__} {self.brokers} broker(s) {self.security} {state}>"

    # -- where it is ---------------------------------------------------------------------------

    @property
    def node_ids(self) -> list[int]:
        """The node ids, 1 to ``brokers``."""
        return list(self._procs)

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT,…`` of every node (stopped ones too: clients skip them).

        Raises:
            BrokerStartError: the cluster is not started.
        """
        if not self._started:
            raise BrokerStartError("the local Kafka cluster is not running; call start() first")
        return ",".join(f"127.0.0.1:{node.port}" for node in self._nodes.values())

    @property
    def running(self) -> bool:
        """Whether every node's process is alive."""
        return self._started and all(self.is_running(n) for n in self._procs)

    def is_running(self, node_id: int) -> bool:
        """Whether node ``node_id``'s process is alive."""
        popen = self._proc(node_id).popen
        return popen is not None and popen.poll() is None

    def node(self, node_id: int) -> Node:
        """Node ``node_id``: its ports and folder (:attr:`Node.log_path` is its log).

        Raises:
            BrokerStartError: the cluster was never started.
            KeyError: no such node.
        """
        if not self._nodes:
            raise BrokerStartError("the local Kafka cluster was never started")
        return self._nodes[node_id]

    def pid(self, node_id: int) -> int | None:
        """The process id of node ``node_id``, None when it is not running."""
        popen = self._proc(node_id).popen
        return popen.pid if popen is not None and popen.poll() is None else None

    # -- what a client needs -------------------------------------------------------------------

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate clients must trust (``sasl_ssl``), else None."""
        return self._sasl.tls.ca_file if self._sasl else None

    @property
    def admin_username(self) -> str | None:
        """The super user's name (``sasl_ssl``), else None."""
        return ADMIN_USER if self._sasl else None

    @property
    def admin_password(self) -> SecretStr | None:
        """The super user's password (``sasl_ssl``), else None."""
        return self._sasl.admin_password if self._sasl else None

    @property
    def admin_password_file(self) -> Path | None:
        """The file (mode 0600) that holds the admin password (``sasl_ssl``), else None."""
        if self._sasl is None or self.workdir is None:
            return None
        return self.workdir / "secrets" / ADMIN_USER

    @property
    def users(self) -> dict[str, SecretStr]:
        """The extra SCRAM users given to the constructor (no ACLs of their own)."""
        return dict(self._users)

    def kafka_settings(
        self,
        *,
        username: str | None = None,
        password: SecretStr | str | None = None,
        base: KafkaSettings | None = None,
    ) -> KafkaSettings:
        """``kafka`` settings that reach this cluster: as the admin, or as ``username``.

        Args:
            username, password: another SCRAM user (``sasl_ssl``); default the admin.
            base: settings to keep the rest of (client id, …); default the defaults.

        Raises:
            BrokerStartError: the cluster is not started.
        """
        update: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers}
        if self._sasl is not None:
            secret = password if password is not None else self._sasl.admin_password
            update |= {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": SCRAM_MECHANISM,
                "sasl_username": username or ADMIN_USER,
                "sasl_password": secret if isinstance(secret, SecretStr) else SecretStr(secret),
                "ssl_cafile": self._sasl.tls.ca_file,
            }
        return (base or KafkaSettings()).model_copy(update=update)

    def env(self) -> dict[str, str]:
        """The environment that points eventplatform at this cluster, as the admin.

        It holds the admin password in clear (a child process needs it): pass it to
        ``subprocess``, never print or log it.

        Raises:
            BrokerStartError: the cluster is not started.
        """
        kafka = self.kafka_settings()
        env = {
            "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "EVENTPLATFORM_KAFKA__SECURITY_PROTOCOL": kafka.security_protocol,
        }
        if kafka.sasl_mechanism is not None and kafka.sasl_password is not None:
            env |= {
                "EVENTPLATFORM_KAFKA__SASL_MECHANISM": kafka.sasl_mechanism,
                "EVENTPLATFORM_KAFKA__SASL_USERNAME": str(kafka.sasl_username),
                "EVENTPLATFORM_KAFKA__SASL_PASSWORD": kafka.sasl_password.get_secret_value(),
                "EVENTPLATFORM_KAFKA__SSL_CAFILE": str(kafka.ssl_cafile),
            }
        return env

    # -- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _say(self, message: str) -> None:
        log.info(message)
        if self._progress:
            self._progress(message)

    def check_java(self) -> str:
        """The ``java`` executable to use.

        Raises:
            JavaNotFound: there is no ``java``.
            JavaTooOld: ``java`` is older than 17.
        """
        java = find_java()
        if java is None:
            raise JavaNotFound(
                "no java executable found (JAVA_HOME or PATH): install OpenJDK 17 or newer "
                "(e.g. `apt-get install openjdk-17-jre-headless`), or run Docker, or set "
                "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS to an existing cluster."
            )
        major = java_major_version(java)
        if major is None or major < MIN_JAVA:
            raise JavaTooOld(
                f"{java} is Java {major or 'of unknown version'}; Apache Kafka {self.version} "
                f"needs Java {MIN_JAVA}+. Install OpenJDK 17 or newer and point JAVA_HOME at it."
            )
        return java

    def start(self) -> None:
        """Resolve the jars (cached), format new storage, start every node.

        Returns once every node answers a metadata request listing all the brokers.

        Raises:
            PortInUse: a requested port is taken.
            ConfigurationError: ``data_dir`` holds a cluster of another size.
            JavaNotFound, JavaTooOld: no suitable JVM.
            BrokerResolutionError: the jars could not be resolved.
            ProvisioningError: ``sasl_ssl`` without the ``cryptography`` package.
            BrokerStartError: a node exited or was not ready within ``start_timeout``;
                the message ends with the tail of its log.
        """
        if self._started:
            return
        ports = self._ports()
        java = self.check_java()
        libs = resolve_jars(
            self.version,
            cache_root=self.cache_root,
            timeout=self.resolve_timeout,
            progress=self._progress,
        )
        if self.data_dir is not None:
            cluster = ClusterDir(self.data_dir.resolve(), persistent=True)
        else:
            temporary = Path(tempfile.mkdtemp(prefix="eventplatform-kafka-"))
            cluster = ClusterDir(temporary, persistent=self.keep_data)
        self.workdir = cluster.path
        self._finalizer = weakref.finalize(self, _kill, self._procs, cluster)
        try:
            self._start_in(java, libs, cluster, ports)
        except BaseException:
            self.stop()
            raise

    def _ports(self) -> list[tuple[int, int]]:
        """(client, controller) port of each node: the requested ones checked, else free."""
        taken: set[int] = set()
        pairs = []
        for node_id in self._procs:
            pair = []
            for base, what, setting in (
                (self.requested_port, "the Kafka broker", "EVENTPLATFORM_DEVKAFKA__PORT"),
                (
                    self.requested_controller_port,
                    "the Kafka controller",
                    "EVENTPLATFORM_DEVKAFKA__CONTROLLER_PORT",
                ),
            ):
                if base:
                    # Stride 2, so that the default pair 9092/9093 interleaves: 9092/9093,
                    # 9094/9095, 9096/9097.
                    port = base + 2 * (node_id - 1)
                    if port in taken or port > 65535:
                        raise ConfigurationError(
                            f"node {node_id} of {self.brokers} would use port {port} ({what}), "
                            "which another node uses or which is out of range: choose "
                            "EVENTPLATFORM_DEVKAFKA__PORT and "
                            "EVENTPLATFORM_DEVKAFKA__CONTROLLER_PORT so that they differ by an "
                            "odd number"
                        )
                    ensure_port_free(port, what=f"{what} of node {node_id}", setting=setting)
                else:
                    port = free_port()
                    while port in taken:
                        port = free_port()
                taken.add(port)
                pair.append(port)
            pairs.append((pair[0], pair[1]))
        return pairs

    def _start_in(
        self, java: str, libs: Path, cluster: ClusterDir, ports: list[tuple[int, int]]
    ) -> None:
        nodes = [
            cluster.node(node_id, port=port, controller_port=cport)
            for node_id, (port, cport) in zip(self._procs, ports, strict=True)
        ]
        self._nodes = {node.node_id: node for node in nodes}
        formatted = sum(cluster.is_formatted(node) for node in nodes)
        if 0 < formatted < len(nodes) or cluster.formatted_nodes() > len(nodes):
            # A kept folder formatted for another size: its metadata log knows other voters
            # and replicas, and a mixed quorum would fail in ways far from the cause.
            raise ConfigurationError(
                f"{cluster.path} holds a cluster of {cluster.formatted_nodes()} broker(s), not "
                f"{len(nodes)}: start it with that many, or start clean (`eventplatform up "
                "--fresh`, or another data dir)"
            )
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
        if self.security == "sasl_ssl":
            self._say("generating a throwaway CA and broker certificate")
            self._sasl = SaslSsl(tls=cluster.tls(), admin_password=cluster.secret(ADMIN_USER))
        classpath = f"{libs}/*"
        deadline = time.monotonic() + self.start_timeout
        self.cluster_id = cluster.cluster_id()
        formats = []
        for node in nodes:
            props = node_properties(
                node, version=self.version, voters=voters, brokers=self.brokers,
                security=self._sasl,
            )  # fmt: skip
            _write_private(node.properties, "".join(f"{k}={v}\n" for k, v in props.items()))
            java_opts = self._java_options(node)
            if not cluster.is_formatted(node):
                formats.append((java, java_opts, classpath, node, self.cluster_id))
            else:
                self._say(f"reusing the KRaft storage in {node.log_dir}")
            proc = self._procs[node.node_id]
            proc.command = [java, *java_opts, "-cp", classpath, "kafka.Kafka", str(node.properties)]
        # The storage tool is a JVM start of a few seconds: format the nodes side by side.
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            for done in [pool.submit(self._format, *args) for args in formats]:
                done.result()
        for node in nodes:  # all at once: a broker waits for a quorum of controllers
            self._launch(node)
        self._started = True
        for node in nodes:
            self._wait_ready(node, deadline, want=set(self._nodes))
        where = self.bootstrap_servers
        self._say(f"Apache Kafka {self.version} ready at {where} ({self.security})")

    def _java_options(self, node: Node) -> list[str]:
        java_opts = [f"-Xmx{self.heap}", f"-Xms{min_heap(self.heap)}", "-XX:+UseSerialGC"]
        if self.brokers > 1:
            # Three JVMs on a small machine: fewer compiler and GC threads, and a smaller
            # code cache, cost nothing a test notices.
            java_opts += ["-XX:CICompilerCount=2", "-XX:ReservedCodeCacheSize=64m"]
        if _is_kafka3(self.version):
            logcfg = node.home / "log4j.properties"
            logcfg.write_text(_LOG4J1.format(log=node.log_path))
            java_opts.append(f"-Dlog4j.configuration=file:{logcfg}")
        else:
            logcfg = node.home / "log4j2.properties"
            logcfg.write_text(_LOG4J2.format(log=node.log_path))
            java_opts.append(f"-Dlog4j2.configurationFile={logcfg}")
        java_opts.append(f"-Dkafka.logs.dir={node.home}")
        return java_opts

    def _format(
        self, java: str, java_opts: list[str], classpath: str, node: Node, cluster_id: str
    ) -> None:
        self._say(f"formatting KRaft storage in {node.log_dir}")
        # A short-lived JVM: the C1 compiler alone starts it markedly faster.
        fast = "-XX:TieredStopAtLevel=1"
        command = [java, *java_opts, fast, "-cp", classpath, "kafka.tools.StorageTool", "format",
                   "-t", cluster_id, "-c", str(node.properties), "--ignore-formatted"]  # fmt: skip
        if self._sasl is not None:
            # KIP-900: SCRAM credentials written into the bootstrap metadata, so that brokers
            # authenticate each other on their first start. The command line holds the
            # passwords for the second the tool runs; nothing echoes it.
            users = {ADMIN_USER: self._sasl.admin_password, **self._users}
            for name, password in users.items():
                entry = f"name={name},password={password.get_secret_value()}"
                command += ["--add-scram", f"{SCRAM_MECHANISM}=[{entry}]"]
        try:
            fmt = subprocess.run(
                command, capture_output=True, text=True, timeout=self.start_timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise BrokerStartError(
                f"formatting the KRaft log dir took longer than the start timeout "
                f"({self.start_timeout:.0f}s); raise EVENTPLATFORM_DEVKAFKA__START_TIMEOUT"
            ) from None  # the timeout's text holds the command line, with any --add-scram
        if fmt.returncode != 0:
            raise BrokerStartError(
                f"formatting the KRaft log dir {node.log_dir} failed (exit {fmt.returncode}):\n"
                + self._scrub(_tail(fmt.stdout + fmt.stderr))
            )

    def _scrub(self, text: str) -> str:
        """``text`` without any password of this cluster (log tails in error messages)."""
        secrets_ = [p.get_secret_value() for p in self._users.values()]
        if self._sasl is not None:
            secrets_.append(self._sasl.admin_password.get_secret_value())
        for secret in secrets_:
            text = text.replace(secret, "**********")
        return text

    def _launch(self, node: Node) -> None:
        self._say(f"starting Apache Kafka {self.version} node {node.node_id} on port {node.port}")
        proc = self._procs[node.node_id]
        console = open(node.home / "console.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            proc.popen = _SPAWNER.submit(
                subprocess.Popen,
                proc.command,
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=node.home,
                preexec_fn=_set_pdeathsig if sys.platform == "linux" else None,
                start_new_session=True,
            ).result()
        finally:
            console.close()

    def stop(self, node_id: int | None = None) -> None:
        """Stop one node (SIGTERM: a controlled shutdown), or with no id the whole cluster.

        A stopped node keeps its data and ports for :meth:`restart`. Stopping the cluster
        ends every node (SIGKILL after 30 s) and deletes a temporary data folder; idempotent.
        """
        if node_id is not None:
            _halt(self._proc(node_id), kill=False)
            return
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._started = False

    def kill(self, node_id: int) -> None:
        """SIGKILL node ``node_id``: a crash, with no controlled shutdown."""
        _halt(self._proc(node_id), kill=True)

    def restart(self, node_id: int) -> None:
        """Start node ``node_id`` again (stopping it first if it runs), same ports and data.

        Returns once the node answers with itself registered in the cluster.

        Raises:
            BrokerStartError: the cluster is not started, or the node did not come back within
                ``start_timeout``.
        """
        if not self._started:
            raise BrokerStartError("restart() needs a started cluster")
        node = self.node(node_id)
        _halt(self._proc(node_id), kill=False)
        self._launch(node)
        self._wait_ready(node, time.monotonic() + self.start_timeout, want={node_id})
        self._say(f"node {node_id} is back")

    def _proc(self, node_id: int) -> _Proc:
        try:
            return self._procs[node_id]
        except KeyError:
            raise ConfigurationError(
                f"no node {node_id} in this cluster (nodes {self.node_ids})"
            ) from None

    # -- readiness -----------------------------------------------------------------------------

    def _wait_ready(self, node: Node, deadline: float, *, want: set[int]) -> None:
        """Until ``node`` answers a metadata request listing every broker of ``want``."""
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            popen = self._procs[node.node_id].popen
            if popen is None or popen.poll() is not None:
                code = popen.returncode if popen else "?"
                headline = f"node {node.node_id} exited during start (code {code})"
                raise BrokerStartError(self._failure(node, headline))
            try:
                listed = self._broker_ids(node.port)
                if want <= set(listed):
                    return
                last_error = f"brokers {sorted(listed)} registered, waiting for {sorted(want)}"
            except OSError as exc:
                last_error = str(exc) or type(exc).__name__
            time.sleep(0.25)
        raise BrokerStartError(
            self._failure(
                node,
                f"node {node.node_id} did not answer a metadata request within "
                f"{self.start_timeout:.0f}s ({last_error}); raise "
                "EVENTPLATFORM_DEVKAFKA__START_TIMEOUT on a slow machine",
            )
        )

    def _broker_ids(self, port: int) -> list[int]:
        """The brokers that the node on ``port`` lists in its metadata.

        Raises:
            OSError: no connection or no answer.
        """
        if self._sasl is None:
            return broker_ids("127.0.0.1", port, timeout=2.0)
        tls = ssl.create_default_context(cafile=self._sasl.tls.ca_file)
        scram = (ADMIN_USER, self._sasl.admin_password)
        return broker_ids("127.0.0.1", port, timeout=2.0, tls=tls, scram=scram)

    def _failure(self, node: Node, headline: str) -> str:
        text = ""
        for path in (node.log_path, node.home / "console.log"):
            if path.exists():
                text += path.read_text(errors="replace")
        hint = ""
        if "Address already in use" in text:
            hint = " A port was taken by another process between choosing and binding it; retry."
        return f"{headline}.{hint} Broker log ({node.log_path}):\n{self._scrub(_tail(text))}"

    # -- who does what -------------------------------------------------------------------------

    async def leader(self, topic: str, partition: int, *, within: float = 30.0) -> int | None:
        """The node that leads ``topic``/``partition`` now (Metadata), None when none does.

        Asks a running node; a stale answer is possible for the few seconds before the
        controller fences a killed leader, so poll for a change rather than expect one.

        Raises:
            KafkaError: no running node answered within ``within`` seconds.
        """
        return await cluster_info.leader(self._client_options(), topic, partition, within)

    async def in_sync_replicas(
        self, topic: str, partition: int, *, within: float = 30.0
    ) -> list[int]:
        """The in-sync replicas of ``topic``/``partition`` (Metadata).

        Raises:
            KafkaError: no running node answered within ``within`` seconds.
        """
        return await cluster_info.isr(self._client_options(), topic, partition, within)

    async def group_coordinator(self, group: str, *, within: float = 30.0) -> int:
        """The node that coordinates consumer group ``group`` (FindCoordinator).

        Raises:
            KafkaError: no running node answered within ``within`` seconds.
        """
        return await cluster_info.coordinator(self._client_options(), 0, group, within)

    async def transaction_coordinator(self, transactional_id: str, *, within: float = 30.0) -> int:
        """The node that coordinates the transactions of ``transactional_id`` (FindCoordinator).

        Raises:
            KafkaError: no running node answered within ``within`` seconds.
        """
        return await cluster_info.coordinator(self._client_options(), 1, transactional_id, within)

    def _client_options(self) -> dict[str, Any]:
        """aiokafka options reaching the running nodes only, as the admin."""
        running = [n for n in self._nodes.values() if self.is_running(n.node_id)]
        servers = ",".join(f"127.0.0.1:{n.port}" for n in running) or self.bootstrap_servers
        return {"bootstrap_servers": servers, **self.kafka_settings().connection_options()}


class LocalKafka(LocalCluster):
    """One KRaft broker+controller node on loopback: a :class:`LocalCluster` of one.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with LocalKafka(version="4.4.0") as kafka:
            print(kafka.bootstrap_servers)

    Args:
        version, cache_root, start_timeout, resolve_timeout, keep_data, data_dir, security,
        users, progress: see :class:`LocalCluster`.
        heap: the JVM's maximum heap (``512m``).
        port: the client port; None picks a free one.
        controller_port: the controller port; None picks a free one.
    """

    def __init__(
        self,
        *,
        version: str,
        cache_root: Path | None = None,
        start_timeout: float = 120.0,
        resolve_timeout: float = 900.0,
        heap: str = "512m",
        keep_data: bool = False,
        port: int | None = None,
        controller_port: int | None = None,
        data_dir: Path | None = None,
        security: Security = "plaintext",
        users: Mapping[str, SecretStr] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            version=version, brokers=1, cache_root=cache_root, start_timeout=start_timeout,
            resolve_timeout=resolve_timeout, heap=heap, keep_data=keep_data, port=port,
            controller_port=controller_port, data_dir=data_dir, security=security, users=users,
            progress=progress,
        )  # fmt: skip

    @property
    def port(self) -> int | None:
        """The client port while started, else None."""
        return self._nodes[1].port if self._started else None

    @property
    def log_path(self) -> Path | None:
        """The broker's log, once started."""
        return self._nodes[1].log_path if self._nodes else None

    def halt(self, *, kill: bool = False) -> None:
        """Stop the broker process but keep its data and ports, for :meth:`resume`.

        For tests of clients under broker failure: ``kill=True`` sends SIGKILL (a crash),
        otherwise SIGTERM (a controlled shutdown).
        """
        _halt(self._procs[1], kill=kill)

    def resume(self) -> None:
        """Start the halted broker again on the same port with the same data.

        Raises:
            BrokerStartError: it was never started, or did not become ready in time.
        """
        if self.is_running(1):
            return
        if not self._started:
            raise BrokerStartError("resume() needs a broker that was started and halted")
        self.restart(1)


def min_heap(heap: str) -> str:
    """The initial heap: a quarter of ``heap``, at least 64m (``"512m"`` → ``"128m"``)."""
    unit = heap[-1].lower()
    size = int(heap[:-1])
    in_mb = size * {"k": 1 / 1024, "m": 1, "g": 1024}[unit]
    return f"{max(64, int(in_mb // 4))}m"


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only (a SASL_SSL config holds passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def probe_metadata(host: str, port: int, *, timeout: float) -> None:
    """Send a Kafka Metadata v1 request for no topics and wait for a response with a broker.

    A raw request (rather than an aiokafka client) keeps this usable from synchronous code and
    from inside a running event loop; the broker answers Metadata only once it has registered
    with the controller, which is the readiness we want.

    Raises:
        OSError: no connection, no answer, or no broker listed yet.
    """
    if not broker_ids(host, port, timeout=timeout):
        raise OSError("broker has not registered yet")


def broker_ids(
    host: str,
    port: int,
    *,
    timeout: float,
    tls: ssl.SSLContext | None = None,
    scram: tuple[str, SecretStr] | None = None,
) -> list[int]:
    """The node ids of the brokers a node lists in a Metadata v1 response.

    Raw requests on a blocking socket, so that it works from synchronous code and inside a
    running event loop alike, and leaves nothing open behind it.

    Args:
        host, port: the node's client listener.
        timeout: seconds for the connection and each answer.
        tls: a client context for an SSL or SASL_SSL listener.
        scram: a SCRAM-SHA-512 user and password for a SASL listener.

    Raises:
        OSError: no connection, no answer, or authentication refused (not ready yet).
    """
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        with sock:
            if scram is not None:
                _scram_login(sock, scram[0], scram[1].get_secret_value())
            # Metadata v1 with a topics array of length 0 (v1 treats -1 as "all", 0 "none").
            payload = _request(sock, 3, 1, (0).to_bytes(4, "big"))
    # brokers array: count (4), then per broker node_id (4), host (string: int16 length +
    # bytes), port (4), rack (nullable string: int16 length, -1 for null).
    count = int.from_bytes(payload[:4], "big", signed=True)
    ids, at = [], 4
    for _ in range(max(0, count)):
        ids.append(int.from_bytes(payload[at : at + 4], "big", signed=True))
        host_len = int.from_bytes(payload[at + 4 : at + 6], "big", signed=True)
        at += 6 + host_len + 4
        rack_len = int.from_bytes(payload[at : at + 2], "big", signed=True)
        at += 2 + max(0, rack_len)
    return ids


def _request(sock: socket.socket, api_key: int, version: int, body: bytes) -> bytes:
    """Send one request (header v1) and return its response after the correlation id.

    Raises:
        OSError: the connection closed, or the answer is not to this request.
    """
    client_id = b"eventplatform-probe"
    header = (
        api_key.to_bytes(2, "big")
        + version.to_bytes(2, "big")
        + (7).to_bytes(4, "big")
        + len(client_id).to_bytes(2, "big")
        + client_id
    )
    sock.sendall(len(header + body).to_bytes(4, "big") + header + body)
    size = int.from_bytes(_recv_exact(sock, 4), "big")
    payload = _recv_exact(sock, size)
    if int.from_bytes(payload[:4], "big") != 7:
        raise OSError("unexpected correlation id in the broker's response")
    return payload[4:]


def _scram_login(sock: socket.socket, user: str, password: str) -> None:
    """SaslHandshake v1 and SCRAM-SHA-512 (RFC 5802) through SaslAuthenticate v0 (KIP-152).

    Raises:
        OSError: the broker refused the mechanism or the credentials.
    """

    def authenticate(message: str) -> str:
        data = message.encode()
        answer = _request(sock, 36, 0, len(data).to_bytes(4, "big") + data)
        if int.from_bytes(answer[:2], "big", signed=True) != 0:
            raise OSError("the broker refused the SCRAM credentials (not ready yet?)")
        text_len = max(0, int.from_bytes(answer[2:4], "big", signed=True))
        at = 4 + text_len
        size = int.from_bytes(answer[at : at + 4], "big", signed=True)
        return answer[at + 4 : at + 4 + max(0, size)].decode()

    mechanism = SCRAM_MECHANISM.encode()
    answer = _request(sock, 17, 1, len(mechanism).to_bytes(2, "big") + mechanism)
    if int.from_bytes(answer[:2], "big", signed=True) != 0:
        raise OSError(f"the broker does not offer {SCRAM_MECHANISM}")
    nonce = secrets.token_urlsafe(18)
    name = user.replace("=", "=3D").replace(",", "=2C")
    first_bare = f"n={name},r={nonce}"
    server_first = authenticate(f"n,,{first_bare}")
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    if not fields.get("r", "").startswith(nonce):
        raise OSError("the broker's SCRAM nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.new(salted, b"Client Key", "sha512").digest()
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(hashlib.sha512(client_key).digest(), auth_message, "sha512").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    authenticate(f"{without_proof},p={base64.b64encode(proof).decode()}")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)

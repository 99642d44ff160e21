"""A single-node KRaft Apache Kafka broker run from jars resolved out of Maven Central.

The jars come from the ``pom.xml`` beside this module through ``mvn dependency:copy-dependencies``
and are cached per Kafka version in the user's cache directory, so only the first start of a
version pays for the download (about 60 MB). A broker is one KRaft node
(:func:`node_properties` builds its configuration) with a static controller quorum
(``controller.quorum.voters``), which formats and starts the same way on Kafka 3.9 and 4.x. Its
files live in a :class:`ClusterDir`: a temporary folder by default, or a kept one
(``data_dir``) whose storage and cluster id survive restarts. Ports are free loopback ports
unless given.

The broker process is always ended: :meth:`LocalKafka.stop` terminates it, a ``weakref``
finaliser covers a forgotten handle and interpreter exit, and on Linux the child is started
with ``PR_SET_PDEATHSIG`` so that it dies with its parent even when the parent is SIGKILLed.
"""

from __future__ import annotations

import base64
import ctypes
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from eventplatform.errors import (
    BrokerResolutionError,
    BrokerStartError,
    JavaNotFound,
    JavaTooOld,
    PortInUse,
)

__all__ = [
    "ClusterDir",
    "LocalKafka",
    "Node",
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


def jar_cache_dir(version: str, cache_root: Path | None = None) -> Path:
    """Where the jars of Kafka ``version`` are cached."""
    return (cache_root or default_cache_root()) / "kafka" / version / "libs"


def _is_kafka3(version: str) -> bool:
    return version.split(".", 1)[0] == "3"


def resolve_jars(
    version: str,
    *,
    cache_root: Path | None = None,
    timeout: float = 900.0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Resolve the broker jars of Kafka ``version`` into the cache and return their folder.

    A cached folder is reused; concurrent callers (several pytest-xdist workers, two shells)
    wait on a file lock instead of resolving twice, and a half-written folder is never seen
    because the result is renamed into place only once Maven succeeded.

    Raises:
        BrokerResolutionError: Maven is missing, failed, or timed out; the message carries the
            tail of Maven's output.
    """
    target = jar_cache_dir(version, cache_root)
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
            try:
                out = _run_telling(cmd, timeout, progress, f"resolving Apache Kafka {version}")
            except subprocess.TimeoutExpired as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise BrokerResolutionError(
                    f"Maven did not resolve Apache Kafka {version} within {timeout:.0f}s; "
                    "check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml) "
                    "or raise EVENTPLATFORM_DEVKAFKA__RESOLVE_TIMEOUT."
                ) from exc
        if out.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-_LOG_TAIL_LINES:])
            raise BrokerResolutionError(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:{version} (exit "
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
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def node_properties(node: Node, *, version: str, voters: str) -> dict[str, str]:
    """The ``server.properties`` of one combined broker+controller node.

    Args:
        node: the node.
        version: the Kafka version (3.x lacks the share-group settings).
        voters: ``controller.quorum.voters``, e.g. ``1@127.0.0.1:9093``: a static quorum formats
            and starts the same way on Kafka 3.9 and 4.x.
    """
    port, cport = node.port, node.controller_port
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
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        # Transactions fail on a single node without it.
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "log.flush.interval.messages": str(2**62),
    }
    if not _is_kafka3(version):
        # Below three brokers __share_group_state never becomes available without these.
        settings["share.coordinator.state.topic.replication.factor"] = "1"
        settings["share.coordinator.state.topic.min.isr"] = "1"
    return settings


class ClusterDir:
    """The folder of one development cluster: the one place that knows its layout.

    ::

        DIR/cluster.id                 the KRaft cluster id: drawn once, read on every start
        DIR/node-1/server.properties   written on every start (ports may change)
        DIR/node-1/broker.log          the broker's log; console.log its stdout/stderr
        DIR/node-1/data/               log.dirs; formatted (meta.properties) only when new

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


def _kill(proc: _Proc, cluster: ClusterDir | None) -> None:
    popen = proc.popen
    if popen is not None and popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=10)
    proc.popen = None
    if cluster is not None:
        cluster.discard()


class LocalKafka:
    """One KRaft broker+controller node on loopback, started from cached Maven jars.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with LocalKafka(version="4.4.0") as kafka:
            print(kafka.bootstrap_servers)

    Args:
        version: the Apache Kafka version.
        cache_root: where jars are cached; default :func:`default_cache_root`.
        start_timeout: seconds for formatting and start-up together.
        resolve_timeout: seconds for Maven on a first start.
        heap: the JVM's maximum heap (``512m``).
        keep_data: keep the temporary folder after :meth:`stop` (for debugging).
        port: the client port; None picks a free one.
        controller_port: the controller port; None picks a free one.
        data_dir: keep the cluster here across runs (see :class:`ClusterDir`): the first start
            formats it, later ones reuse its storage and cluster id. None: a temporary folder,
            removed by :meth:`stop`.
        progress: told what is happening while starting.
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
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.version = version
        self.cache_root = cache_root
        self.start_timeout = start_timeout
        self.resolve_timeout = resolve_timeout
        self.heap = heap
        self.keep_data = keep_data
        self.requested_port = port
        self.requested_controller_port = controller_port
        self.data_dir = data_dir
        self._progress = progress
        self._proc = _Proc()
        self.workdir: Path | None = None
        self.port: int | None = None
        self.log_path: Path | None = None
        self.cluster_id: str | None = None
        self._node: Node | None = None
        self._finalizer: weakref.finalize[..., LocalKafka] | None = None
        self._command: list[str] = []

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT`` of the running broker.

        Raises:
            BrokerStartError: the broker is not running.
        """
        if self.port is None or self._proc.popen is None:
            raise BrokerStartError("the local Kafka broker is not running; call start() first")
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._proc.popen is not None and self._proc.popen.poll() is None

    def __enter__(self) -> LocalKafka:
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
        """Resolve the jars (cached), format the storage if new and start the broker.

        Returns once an admin metadata request answers.

        Raises:
            PortInUse: a requested port is taken.
            JavaNotFound, JavaTooOld: no suitable JVM.
            BrokerResolutionError: the jars could not be resolved.
            BrokerStartError: the broker exited or was not ready within ``start_timeout``;
                the message ends with the tail of the broker log.
        """
        if self.running:
            return
        self._check_requested_ports()
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
        self._finalizer = weakref.finalize(self, _kill, self._proc, cluster)
        try:
            self._start_in(java, libs, cluster)
        except BaseException:
            self.stop()
            raise

    def _check_requested_ports(self) -> None:
        requested = (
            (self.requested_port, "the Kafka broker", "EVENTPLATFORM_DEVKAFKA__PORT"),
            (
                self.requested_controller_port,
                "the Kafka controller",
                "EVENTPLATFORM_DEVKAFKA__CONTROLLER_PORT",
            ),
        )
        for port, what, setting in requested:
            if port:
                ensure_port_free(port, what=what, setting=setting)

    def _ports(self) -> tuple[int, int]:
        port = self.requested_port or free_port()
        cport = self.requested_controller_port or free_port()
        while cport == port:
            cport = free_port()
        return port, cport

    def _start_in(self, java: str, libs: Path, cluster: ClusterDir) -> None:
        port, cport = self._ports()
        node = cluster.node(1, port=port, controller_port=cport)
        self._node = node
        self.port = port
        self.log_path = node.log_path
        props = node_properties(node, version=self.version, voters=f"1@127.0.0.1:{cport}")
        node.properties.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        java_opts = self._java_options(node)
        classpath = f"{libs}/*"
        deadline = time.monotonic() + self.start_timeout
        self.cluster_id = cluster.cluster_id()
        if not cluster.is_formatted(node):
            self._format(java, java_opts, classpath, node, self.cluster_id)
        else:
            self._say(f"reusing the KRaft storage in {node.log_dir}")
        self._command = [java, *java_opts, "-cp", classpath, "kafka.Kafka", str(node.properties)]
        self._launch(deadline)

    def _java_options(self, node: Node) -> list[str]:
        java_opts = [f"-Xmx{self.heap}", f"-Xms{min_heap(self.heap)}", "-XX:+UseSerialGC"]
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
        try:
            fmt = subprocess.run(
                [java, *java_opts, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "-t", cluster_id, "-c", str(node.properties), "--ignore-formatted"],
                capture_output=True, text=True, timeout=self.start_timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise BrokerStartError(
                f"formatting the KRaft log dir took longer than the start timeout "
                f"({self.start_timeout:.0f}s); raise EVENTPLATFORM_DEVKAFKA__START_TIMEOUT"
            ) from exc
        if fmt.returncode != 0:
            raise BrokerStartError(
                f"formatting the KRaft log dir {node.log_dir} failed (exit {fmt.returncode}):\n"
                + _tail(fmt.stdout + fmt.stderr)
            )

    def _launch(self, deadline: float) -> None:
        assert self._node is not None
        node = self._node
        self._say(f"starting Apache Kafka {self.version} on 127.0.0.1:{node.port}")
        console = open(node.home / "console.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            self._proc.popen = _SPAWNER.submit(
                subprocess.Popen,
                self._command,
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=node.home,
                preexec_fn=_set_pdeathsig if sys.platform == "linux" else None,
                start_new_session=True,
            ).result()
        finally:
            console.close()
        self._wait_ready(node.port, deadline)
        self._say(f"Apache Kafka {self.version} ready at 127.0.0.1:{node.port}")

    def halt(self, *, kill: bool = False) -> None:
        """Stop the broker process but keep its data and ports, for :meth:`resume`.

        For tests of clients under broker failure: ``kill=True`` sends SIGKILL (a crash),
        otherwise SIGTERM (a controlled shutdown).
        """
        popen = self._proc.popen
        if popen is None or popen.poll() is not None:
            return
        if kill:
            popen.kill()
        else:
            popen.terminate()
        popen.wait(timeout=60)

    def resume(self) -> None:
        """Start the halted broker again on the same port with the same data.

        Raises:
            BrokerStartError: it is not halted, or did not become ready in time.
        """
        if self.running:
            return
        if self._node is None or self.port is None or not self._command:
            raise BrokerStartError("resume() needs a broker that was started and halted")
        self._launch(time.monotonic() + self.start_timeout)

    def _wait_ready(self, port: int, deadline: float) -> None:
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            popen = self._proc.popen
            if popen is None or popen.poll() is not None:
                code = popen.returncode if popen else "?"
                headline = f"the broker exited during start (code {code})"
                raise BrokerStartError(self._failure(headline))
            try:
                probe_metadata("127.0.0.1", port, timeout=2.0)
                return
            except OSError as exc:
                last_error = str(exc) or type(exc).__name__
            time.sleep(0.25)
        raise BrokerStartError(
            self._failure(
                f"the broker did not answer a metadata request within {self.start_timeout:.0f}s "
                f"({last_error}); raise EVENTPLATFORM_DEVKAFKA__START_TIMEOUT on a slow machine"
            )
        )

    def _failure(self, headline: str) -> str:
        text = ""
        node = self._node
        for path in (self.log_path, node.home / "console.log" if node else None):
            if path is not None and path.exists():
                text += path.read_text(errors="replace")
        hint = ""
        if "Address already in use" in text:
            hint = " A port was taken by another process between choosing and binding it; retry."
        return f"{headline}.{hint} Broker log ({self.log_path}):\n{_tail(text)}"

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 20 s); delete a temporary data folder.

        Idempotent.
        """
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self.port = None


def min_heap(heap: str) -> str:
    """The initial heap: a quarter of ``heap``, at least 64m (``"512m"`` → ``"128m"``)."""
    unit = heap[-1].lower()
    size = int(heap[:-1])
    in_mb = size * {"k": 1 / 1024, "m": 1, "g": 1024}[unit]
    return f"{max(64, int(in_mb // 4))}m"


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def probe_metadata(host: str, port: int, *, timeout: float) -> None:
    """Send a Kafka Metadata v1 request for no topics and wait for a response with a broker.

    A raw request (rather than an aiokafka client) keeps this usable from synchronous code and
    from inside a running event loop; the broker answers Metadata only once it has registered
    with the controller, which is the readiness we want.

    Raises:
        OSError: no connection, no answer, or no broker listed yet.
    """
    # Request header v1: api_key=3 (Metadata), api_version=1, correlation_id, client_id;
    # body: topics array of length 0 (v1 treats -1 as "all", 0 as "none").
    client_id = b"eventplatform-probe"
    body = (
        (3).to_bytes(2, "big")
        + (1).to_bytes(2, "big")
        + (7).to_bytes(4, "big")
        + len(client_id).to_bytes(2, "big")
        + client_id
        + (0).to_bytes(4, "big")
    )
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(len(body).to_bytes(4, "big") + body)
        header = _recv_exact(sock, 4)
        size = int.from_bytes(header, "big")
        payload = _recv_exact(sock, size)
    # correlation id (4) then brokers array length (4)
    if int.from_bytes(payload[:4], "big") != 7:
        raise OSError("unexpected correlation id in metadata response")
    if int.from_bytes(payload[4:8], "big", signed=True) < 1:
        raise OSError("broker has not registered yet")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)

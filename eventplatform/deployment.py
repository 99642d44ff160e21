"""A whole deployment in one process: what ``eventplatform up`` runs (DESIGN.md decision 9).

With no configuration, :func:`serve_deployment`:

1. provides a Kafka broker (:func:`~eventplatform.devkafka.provision`: the configured cluster
   when ``EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS`` is set, else Docker, else Java + Maven);
2. opens the Kafka-log schema registry on it and serves it over Confluent's REST API
   (:mod:`eventplatform.registry.rest_server`, port 8081 by default);
3. registers the catalogue (``schemas/``): every schema is checked against its subject's
   compatibility level first, and nothing is registered when one breaks it;
4. creates the topics the connectors of ``connectors/`` use (each topic, its dead-letter topic,
   and an egress's deliveries topic) unless they exist;
5. runs every enabled connector under a :class:`~eventplatform.connectors.ConnectorRuntime`,

and shows it through a :class:`DeploymentView` until SIGINT or SIGTERM, then stops it all in
reverse order: connectors (in-flight work finishes), the REST server, the registry, the broker.

:class:`Deployment` is steps 2 to 5 as an async context manager over a running cluster, for
programs and tests that bring their own Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, Protocol, Self

from aiohttp import web
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from eventplatform import heap, upstate
from eventplatform.catalogue.model import add_registry_versions, describe_deployment
from eventplatform.catalogue.web import LiveCatalogue
from eventplatform.connectors.runtime.instances import ConnectorSpec, load_instances
from eventplatform.connectors.runtime.supervisor import ConnectorRuntime
from eventplatform.connectors.sdk.status import ConnectorState, ConnectorStatus
from eventplatform.devkafka import Broker, provision
from eventplatform.errors import (
    ConfigurationError,
    EventPlatformError,
    IncompatibleSchema,
    KafkaError,
    ResourceStateError,
)
from eventplatform.observability.server import observe
from eventplatform.registry.base import SchemaRegistry
from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.registry.rest_server import serve, server_url
from eventplatform.registry.tls import server_context
from eventplatform.schema import load_catalogue
from eventplatform.schema.evolution import check_and_register
from eventplatform.settings import Settings

__all__ = ["Deployment", "DeploymentView", "register_catalogue", "serve_deployment"]

log = logging.getLogger("eventplatform.deployment")

Progress = Callable[[str], None]


async def register_catalogue(registry: SchemaRegistry, directory: Path) -> list[str]:
    """Register every schema of the catalogue ``directory`` under its full name.

    All schemas are checked against their subjects' compatibility levels before any is
    registered (:func:`~eventplatform.schema.evolution.check_and_register`, as ``eventplatform
    schemas register`` does), so a breaking change registers nothing.

    Returns:
        The subjects that got a new version.

    Raises:
        SchemaError: the catalogue is invalid.
        IncompatibleSchema: a schema breaks its subject's level; ``messages`` says how.
        RegistryError: the registry failed.
    """
    done = await check_and_register(registry, list(load_catalogue(directory)))
    problems = done.problems
    if problems:
        raise IncompatibleSchema(
            f"{len(problems)} change(s) in {directory} break their subjects' compatibility "
            f"level; nothing was registered: {'; '.join(problems[:3])}",
            messages=problems,
        )
    return list(done.registered)


def topics_of(specs: Sequence[ConnectorSpec], dlq_suffix: str) -> list[str]:
    """The topics the connector instances read and write, dead-letter topics included."""
    topics: list[str] = []
    for spec in specs:
        names = []
        if spec.topic:
            names += [spec.topic, f"{spec.topic}{dlq_suffix}"]
        for attribute in ("dlq_topic", "dead_letter_topic"):
            explicit = getattr(spec.config, attribute, None)
            if isinstance(explicit, str) and explicit:
                names.append(explicit)
        if spec.type_name == "webhook-egress":
            explicit = getattr(spec.config, "deliveries_topic", None)
            names.append(explicit or f"{spec.name}.deliveries")
        topics += [name for name in names if name not in topics]
    return topics


class Deployment:
    """The registry, its REST server, the catalogue, the topics and the connectors.

    An async context manager over a running Kafka cluster (``settings.kafka``)::

        async with Deployment(settings=settings) as deployment:
            print(deployment.registry_url, deployment.ingress_urls)
            await deployment.run()            # until deployment.stop()

    Args:
        settings: all settings; ``kafka.bootstrap_servers`` must be set.
        connectors_dir: the connector instances; a missing folder runs none.
        schemas_dir: the schema catalogue; default ``schemas/`` next to ``connectors_dir``.
            A missing folder registers nothing.
        registry_host, registry_port: where the registry's REST server listens (0: any port).
        partitions: partitions of the topics created.
        progress: told what is happening while starting.

    Raises:
        ConfigurationError: no bootstrap servers.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        connectors_dir: Path = Path("connectors"),
        schemas_dir: Path | None = None,
        registry_host: str = "127.0.0.1",
        registry_port: int = 8081,
        partitions: int = 3,
        progress: Progress | None = None,
    ) -> None:
        if not settings.kafka.bootstrap_servers:
            raise ConfigurationError("a Deployment needs kafka.bootstrap_servers")
        self.settings = settings
        self.bootstrap_servers: str = settings.kafka.bootstrap_servers
        self.connectors_dir = connectors_dir
        self.schemas_dir = schemas_dir or connectors_dir.resolve().parent / "schemas"
        self.registry_host = registry_host
        self.registry_port = registry_port
        self.partitions = partitions
        self._progress = progress or (lambda message: None)
        self._stack = AsyncExitStack()
        self._runtime: ConnectorRuntime | None = None
        self._runner: web.AppRunner | None = None
        self.registry_url = ""
        #: Where the event catalogue page is served (on the registry's port), once started.
        self.catalogue_url = ""
        self.registered: list[str] = []
        self.specs: list[ConnectorSpec] = []
        self._started = False
        self._closed = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def runtime(self) -> ConnectorRuntime:
        """The connector runtime.

        Raises:
            ResourceStateError: before :meth:`start`.
        """
        if self._runtime is None:
            raise ResourceStateError("the deployment is not started")
        return self._runtime

    async def start(self) -> None:
        """Registry, REST server, catalogue, topics, then the connectors' shared resources.

        Raises:
            ResourceStateError: after :meth:`close`.
            ConnectorConfigError: an instance file is invalid.
            SchemaError, IncompatibleSchema: the catalogue is invalid or breaks a subject.
            ConfigurationError: the registry's port cannot be bound.
            KafkaError, RegistryError: Kafka failed.
        """
        if self._started:
            return
        if self._closed:
            raise ResourceStateError("a deployment cannot be restarted after close()")
        stack = self._stack
        try:
            if self.connectors_dir.is_dir():
                self.specs = load_instances(self.connectors_dir, schemas_dir=self.schemas_dir)
            self._progress(f"schema registry on topic {self.settings.registry.topic}")
            registry = KafkaLogRegistry(settings=self.settings)
            await registry.start()
            stack.push_async_callback(registry.close)
            auth = self.settings.registry
            pages = LiveCatalogue()
            runner = await serve(
                registry,
                self.registry_host,
                self.registry_port,
                username=auth.username,
                password=auth.password_value(),
                extra_routes=pages.routes(),
                ssl_context=server_context(auth),
            )
            stack.push_async_callback(runner.cleanup)
            self.registry_url = server_url(runner)
            if self.schemas_dir.is_dir():
                self._progress(f"registering {self.schemas_dir}")
                self.registered = await register_catalogue(registry, self.schemas_dir)
            await self._publish_catalogue(pages, registry)
            topics = topics_of(self.specs, self.settings.consumer.dlq_suffix)
            if topics:
                self._progress(f"creating topics {', '.join(topics)}")
                await self._create_topics(topics)
            runtime = ConnectorRuntime(self.specs, settings=self.settings, registry=registry)
            await runtime.start()
            stack.push_async_callback(runtime.close)
            self._runtime = runtime
        except BaseException:
            self._closed = True
            await stack.aclose()
            raise
        self._started = True

    async def _publish_catalogue(self, pages: LiveCatalogue, registry: SchemaRegistry) -> None:
        """The event catalogue at ``/catalogue`` and ``/asyncapi.json`` of the registry's port,
        with the versions the registry holds once the schemas are registered."""
        kafka = self.settings.kafka
        catalogue = describe_deployment(
            catalogue=load_catalogue(self.schemas_dir) if self.schemas_dir.is_dir() else None,
            specs=self.specs,
            title=f"{self.connectors_dir.resolve().parent.name} events",
            bootstrap_servers=self.bootstrap_servers,
            security_protocol=kafka.security_protocol,
            sasl_mechanism=kafka.sasl_mechanism,
            subject_strategy=self.settings.registry.subject_strategy,
        )
        catalogue = await add_registry_versions(catalogue, registry, url=self.registry_url)
        pages.publish(catalogue, registry_url=self.registry_url)
        self.catalogue_url = f"{self.registry_url}/catalogue"

    async def _create_topics(self, topics: Sequence[str]) -> None:
        kafka = self.settings.kafka
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, **kafka.connection_options()
        )
        try:
            await admin.start()
            brokers = len((await admin.describe_cluster())["brokers"])
            replicas, min_isr = kafka.topic_replication(brokers)
            config = {"min.insync.replicas": str(min_isr)}
            response = await admin.create_topics(
                [
                    NewTopic(topic, self.partitions, replicas, topic_configs=config)
                    for topic in topics
                ]
            )
        except (kafka_errors.KafkaError, OSError) as exc:
            raise KafkaError(f"creating topics on {self.bootstrap_servers} failed: {exc}") from exc
        finally:
            await admin.close()
        for topic, code, message in response.topic_errors:
            if code and code != kafka_errors.TopicAlreadyExistsError.errno:
                raise KafkaError(f"creating topic {topic!r} failed: {message or code}")

    async def run(self) -> None:
        """Run the connectors until :meth:`stop`.

        Raises:
            ResourceStateError: not started.
        """
        await self.runtime.run()

    def stop(self) -> None:
        """Ask the connectors to finish what is in flight; :meth:`run` then returns."""
        if self._runtime is not None:
            self._runtime.stop()

    async def close(self) -> None:
        """Stop the connectors, the REST server and the registry, in that order. Idempotent."""
        self._closed = True
        self.stop()
        await self._stack.aclose()

    async def wait_ready(self, within: float = 60.0) -> bool:
        """Wait until no connector is still starting; False when ``within`` seconds passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while any(s.state in (ConnectorState.NEW, ConnectorState.STARTING) for s in self.status()):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def status(self) -> list[ConnectorStatus]:
        """Every connector's state and counters."""
        return self._runtime.status() if self._runtime is not None else []

    def connector_urls(self) -> dict[str, str]:
        """The URL of each running connector that listens (ingress routes, receivers)."""
        urls = {}
        for name in self.runtime.names:
            connector = self.runtime.connector(name)
            if connector is None or not isinstance(getattr(type(connector), "url", None), property):
                continue
            try:
                urls[name] = str(connector.url)  # type: ignore[attr-defined]
            except EventPlatformError:
                continue
        return urls

    @property
    def ingress_urls(self) -> list[str]:
        """``http://host:port`` of each webhook ingress server, once listening."""
        bases: list[str] = []
        for spec in self.specs:
            if spec.type_name != "webhook-ingress":
                continue
            url = self.connector_urls().get(spec.name)
            if url is not None:
                base = url[: url.index("/", len("http://"))]
                if base not in bases:
                    bases.append(base)
        return bases


class DeploymentView(Protocol):
    """How :func:`serve_deployment` shows what it does (a live table, or plain lines)."""

    def progress(self, message: str) -> None:
        """A step of starting or stopping."""

    async def show(self, deployment: Deployment, broker: Broker) -> None:
        """Show the running deployment until cancelled."""

    def stopped(self, statuses: Sequence[ConnectorStatus]) -> None:
        """Everything stopped; ``statuses`` are the connectors' final ones."""


@dataclass(frozen=True, slots=True)
class UpOptions:
    """What ``eventplatform up`` runs.

    Attributes:
        connectors_dir, schemas_dir, registry_host, partitions: see :class:`Deployment`.
        registry_port: the registry's port; None: ``up.registry_port`` (8081).
        kafka_port, controller_port: the development broker's ports; None: ``up.kafka_port``
            (9092) and ``up.controller_port`` (9093). In a cluster node N adds ``2(N-1)``.
        brokers: nodes of the development cluster; None: ``devkafka.brokers`` (1).
        security: the development cluster's ``plaintext`` or ``sasl_ssl``; None:
            ``devkafka.security``.
        root: the deployment folder, where ``var/`` is kept (:mod:`eventplatform.upstate`);
            default: the folder holding ``connectors_dir``.
        fresh: start clean (:func:`~eventplatform.upstate.forget_fresh`).
    """

    connectors_dir: Path = Path("connectors")
    schemas_dir: Path | None = None
    registry_host: str = "127.0.0.1"
    registry_port: int | None = None
    partitions: int = 3
    kafka_port: int | None = None
    controller_port: int | None = None
    brokers: int | None = None
    security: Literal["plaintext", "sasl_ssl"] | None = None
    root: Path | None = None
    fresh: bool = False


def serve_deployment(settings: Settings, options: UpOptions, view: DeploymentView) -> None:
    """Provide a broker, run a :class:`Deployment` on it until SIGINT/SIGTERM, stop it all.

    The development broker keeps its storage in the deployment's ``var/kafka`` and listens on
    fixed ports; every fixed port is checked before anything starts. Once ready, where it all
    listens is written to ``var/up.json`` (removed at exit), so that commands run in the
    deployment folder find it. The broker is provided on the calling thread (a local broker
    stops with the thread that started it). A second signal while stopping cancels what is
    still finishing.

    Raises:
        ConfigurationError: ``up`` already runs in this deployment.
        PortInUse: a fixed port is taken (the message names the setting to change).
        ProvisioningError: no broker could be provided.
        EventPlatformError: the deployment failed to start (see :meth:`Deployment.start`).
    """
    root = (options.root or options.connectors_dir.resolve().parent).resolve()
    already = upstate.read_state(root)
    if already is not None:
        raise ConfigurationError(
            f"eventplatform up already runs in {root} (pid {already.pid}, Kafka at "
            f"{already.bootstrap_servers}); stop it first. Commands run in that folder use it "
            f"through {upstate.STATE_FILE}."
        )
    specs = (
        load_instances(options.connectors_dir, schemas_dir=options.schemas_dir)
        if options.connectors_dir.is_dir()
        else []
    )
    if options.fresh:
        for path in upstate.forget_fresh(root, specs):
            view.progress(f"--fresh: removed {path}")
    fixed = settings.up
    registry_port = fixed.registry_port if options.registry_port is None else options.registry_port
    options = replace(
        options,
        root=root,
        registry_port=registry_port,
        kafka_port=options.kafka_port or fixed.kafka_port,
        controller_port=options.controller_port or fixed.controller_port,
        brokers=options.brokers or settings.devkafka.brokers,
    )
    upstate.check_ports(_fixed_ports(settings, options, specs))
    devkafka = settings.devkafka.model_copy(
        update={
            "port": options.kafka_port,
            "controller_port": options.controller_port,
            "data_dir": upstate.kafka_dir(root),
            "brokers": options.brokers,
            "security": options.security or settings.devkafka.security,
        }
    )
    settings = settings.model_copy(update={"devkafka": devkafka})
    with _interruptible(), provision(settings, progress=view.progress) as broker:
        # The provisioned cluster's address, and on SASL_SSL its admin credentials and CA.
        kafka = broker.kafka_settings(settings.kafka)
        running = settings.model_copy(update={"kafka": kafka})
        try:
            asyncio.run(_serve(running, options, view, broker))
        finally:
            upstate.remove_state(root, os.getpid())
        view.progress(f"stopping the broker ({broker.provider})")


def _fixed_ports(
    settings: Settings, options: UpOptions, specs: Sequence[ConnectorSpec]
) -> list[upstate.Listener]:
    listeners = []
    if not settings.kafka.bootstrap_servers:  # a development broker will be started
        for node in range(options.brokers or 1):
            # LocalCluster's layout: node N on the base ports plus 2(N-1).
            of = f" of node {node + 1}" if (options.brokers or 1) > 1 else ""
            for port, what, option, name in (
                (options.kafka_port, "the Kafka broker", "--kafka-port", "KAFKA_PORT"),
                (
                    options.controller_port,
                    "the Kafka controller",
                    "--controller-port",
                    "CONTROLLER_PORT",
                ),
            ):
                assert port is not None
                setting = f"{option} or EVENTPLATFORM_UP__{name}"
                listeners.append(upstate.Listener("127.0.0.1", port + 2 * node, what + of, setting))
    if options.registry_port:
        setting = "--registry-port or EVENTPLATFORM_UP__REGISTRY_PORT"
        listeners.append(
            upstate.Listener(
                options.registry_host, options.registry_port, "the schema registry", setting
            )
        )
    return listeners + upstate.listening_ports(specs)


async def _serve(
    settings: Settings, options: UpOptions, view: DeploymentView, broker: Broker
) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    stopping = asyncio.Event()

    def on_signal(signum: signal.Signals) -> None:
        if stopping.is_set() and task is not None:
            task.cancel()  # a second signal: stop waiting for in-flight work
            return
        view.progress(f"{signum.name}: stopping (again to abort)")
        stopping.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    deployment = Deployment(
        settings=settings,
        connectors_dir=options.connectors_dir,
        schemas_dir=options.schemas_dir,
        registry_host=options.registry_host,
        registry_port=options.registry_port or 0,
        partitions=options.partitions,
        progress=view.progress,
    )
    try:
        async with (
            observe(
                settings.observability,
                bootstrap_servers=deployment.bootstrap_servers,
                runtime=lambda: deployment.runtime,
            ),
            deployment,
        ):
            heap.settle()
            running = asyncio.create_task(deployment.run(), name="eventplatform up: connectors")
            showing = asyncio.create_task(view.show(deployment, broker), name="eventplatform up")
            waiting = asyncio.create_task(stopping.wait())
            telling = asyncio.create_task(_write_state(deployment, broker, options))
            try:
                await asyncio.wait((running, waiting), return_when=asyncio.FIRST_COMPLETED)
            finally:
                view.progress("stopping the connectors")
                deployment.stop()
                await asyncio.gather(running, return_exceptions=True)
                for helper in (showing, waiting, telling):
                    helper.cancel()
                await asyncio.gather(showing, waiting, telling, return_exceptions=True)
            failure = running.exception() if running.done() and not running.cancelled() else None
            if failure is not None:
                raise failure
            statuses = deployment.status()
            view.progress("stopping the registry")
        view.stopped(statuses)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def _write_state(deployment: Deployment, broker: Broker, options: UpOptions) -> None:
    """``var/up.json`` once the connectors have started (their URLs are known then)."""
    assert options.root is not None
    await deployment.wait_ready()
    state = upstate.UpState(
        pid=os.getpid(),
        bootstrap_servers=broker.bootstrap_servers,
        registry_url=deployment.registry_url,
        ingress_urls=tuple(deployment.ingress_urls),
        connector_urls=deployment.connector_urls(),
        **_security_of(broker),
    )
    path = upstate.write_state(options.root, state)
    log.debug("wrote %s", path)


def _security_of(broker: Broker) -> dict[str, Any]:
    """How the CLI beside ``up`` reaches its secured cluster: everything but the password,
    which stays in its 0600 file (named here) and never enters ``var/up.json``."""
    kafka = broker.settings
    if kafka is None or kafka.security_protocol == "PLAINTEXT":
        return {}
    return {
        "security_protocol": kafka.security_protocol,
        "sasl_mechanism": kafka.sasl_mechanism,
        "sasl_username": kafka.sasl_username,
        "ssl_cafile": str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
        "sasl_password_file": str(broker.password_file) if broker.password_file else None,
    }


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while no event loop handles it (broker start-up), so
    that ``with`` blocks unwind and stop what they started."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""pytest fixtures that hand tests a real Apache Kafka broker.

Loaded automatically through the ``pytest11`` entry point. Fixtures:

``kafka_broker`` (session)
    A :class:`~eventplatform.devkafka.Broker`, provisioned once per session in the order of
    :mod:`eventplatform.devkafka.provision` (configured cluster → Docker → Java + Maven).
    When none can be provided the fixture *errors*, it never skips: a test that needs a broker
    does not pass without one, on CI or anywhere else.
``kafka_bootstrap_servers`` (session)
    ``"host:port"`` of that broker.
``unique_topic`` (function)
    ``unique_topic("orders") -> "test_foo-orders-1a2b3c4d"``: topic names no other test uses,
    so tests sharing the broker never see each other's records.
``kafka_admin`` (function, async)
    A started ``aiokafka.admin.AIOKafkaAdminClient``, closed after the test. It connects with
    the configured ``kafka`` settings (``EVENTPLATFORM_KAFKA__*``: security protocol, SASL
    credentials, CA file), so a project whose tests run against a secured cluster gets a
    working client.
``create_topic`` (function, async)
    ``await create_topic(name, partitions=1, config={...})`` creates a topic (on the same
    credentials) and waits for it.
``kafka_cluster`` (session)
    A :class:`~eventplatform.devkafka.local.LocalCluster` of three KRaft brokers of its own
    (Java + Maven; never an external cluster, since tests stop and kill its brokers), with
    replication factor 3 and ``min.insync.replicas=2`` for internal topics. Started the first
    time a test asks for it, so a suite that never does pays nothing. ``stop(node_id)``,
    ``kill(node_id)`` (SIGKILL) and ``restart(node_id)`` one broker; ``await leader(topic,
    partition)``, ``await group_coordinator(group)``, ``await transaction_coordinator(id)``
    tell who does what; ``kafka_settings()`` gives client settings. A test that stops or kills
    a broker restarts it before it ends (the cluster is shared): the fixture checks and
    restarts any node left down, so the next test finds three.
``secure_kafka_cluster`` (session)
    The same with SASL_SSL listeners: a throwaway CA (``ca_file``), SCRAM-SHA-512 users (the
    super user ``admin_username``/``admin_password``, and ``users["app"]`` with no ACLs), and
    Kafka's ``StandardAuthorizer``; ``kafka_settings()`` and ``env()`` carry the credentials.
``postgres_dsn`` (session)
    A real PostgreSQL server: ``$EVENTPLATFORM_TEST_POSTGRES_DSN``, or a throwaway server
    started from the system's PostgreSQL binaries (:mod:`eventplatform.testing.postgres`).

Tests that use any of the broker fixtures are marked ``integration`` automatically (the
marker is registered, so ``--strict-markers`` accepts it).

``async def`` tests that use these fixtures run in a fresh project with no configuration: in
pytest-asyncio's strict mode (its default) they get the ``asyncio`` mark, so pytest-asyncio
runs them on its loop as in auto mode; without pytest-asyncio the plugin runs them itself
with :func:`asyncio.run`. A project that configures pytest-asyncio keeps its own choices: a
test it already marks, or auto mode, is left alone.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any

import pluggy
import pytest
from pydantic import SecretStr

from eventplatform.access import start_failure
from eventplatform.devkafka import Broker, provision
from eventplatform.devkafka.local import LocalCluster, Security
from eventplatform.settings import load_settings
from eventplatform.testing.postgres import postgres_dsn

try:  # async fixtures need pytest-asyncio (the `dev` extra); the sync ones work without it
    import pytest_asyncio
except ImportError:  # pragma: no cover - depends on the user's environment
    HAVE_PYTEST_ASYNCIO = False
else:
    HAVE_PYTEST_ASYNCIO = True

__all__ = [
    "kafka_bootstrap_servers",
    "kafka_broker",
    "kafka_cluster",
    "postgres_dsn",
    "secure_kafka_cluster",
    "unique_topic",
]

_BROKER_FIXTURES = {
    "kafka_broker",
    "kafka_bootstrap_servers",
    "kafka_admin",
    "create_topic",
    "kafka_cluster",
    "secure_kafka_cluster",
}
_FIXTURES = _BROKER_FIXTURES | {"unique_topic", "postgres_dsn"}


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``integration`` marker (``--strict-markers`` would refuse it otherwise)."""
    config.addinivalue_line(
        "markers", "integration: needs a real Kafka broker (eventplatform's pytest plugin)"
    )


def _ours_and_async(item: object) -> bool:
    """An ``async def`` test function that uses one of this plugin's fixtures."""
    return (
        isinstance(item, pytest.Function)
        and inspect.iscoroutinefunction(item.obj)
        and bool(_FIXTURES & set(item.fixturenames))
    )


# trylast: inside pytest-asyncio's own wrapper of this hook, so the mark is there when it
# decides which functions to run (it converts only marked ones in strict mode).
@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Collector, name: str, obj: object
) -> Generator[None, pluggy.Result[Any], None]:
    """Mark this plugin's ``async def`` tests ``asyncio`` when pytest-asyncio is strict."""
    outcome = yield
    config = collector.config
    if not config.pluginmanager.has_plugin("asyncio"):
        return
    if str(config.getoption("asyncio_mode", None) or config.getini("asyncio_mode")) != "strict":
        return
    result = outcome.get_result()
    items = result if isinstance(result, list) else [result]
    for item in items:
        if _ours_and_async(item) and item.get_closest_marker("asyncio") is None:
            item.add_marker(pytest.mark.asyncio)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run this plugin's ``async def`` tests when no asyncio plugin does (pytest itself
    would skip them: "async def functions are not natively supported")."""
    if pyfuncitem.config.pluginmanager.has_plugin("asyncio") or not _ours_and_async(pyfuncitem):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**arguments))
    return True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a broker fixture as ``integration``."""
    for item in items:
        if _BROKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    """A real Kafka broker for the whole session (see module docstring)."""
    with provision(load_settings()) as broker:
        yield broker


def _cluster(
    security: Security = "plaintext", users: dict[str, SecretStr] | None = None
) -> LocalCluster:
    dev = load_settings().devkafka
    return LocalCluster(
        version=dev.version,
        brokers=3,
        cache_root=dev.cache_dir,
        # Three JVMs start side by side on a small machine: more time than one needs.
        start_timeout=max(dev.start_timeout, 240.0),
        resolve_timeout=dev.resolve_timeout,
        heap=dev.heap,
        security=security,
        users=users,
    )


def _whole(cluster: LocalCluster) -> None:
    """Restart any node a test left stopped or killed: the next test expects three."""
    for node_id in cluster.node_ids:
        if not cluster.is_running(node_id):
            cluster.restart(node_id)


@pytest.fixture(scope="session")
def _kafka_cluster_session() -> Iterator[LocalCluster]:
    with _cluster() as cluster:
        yield cluster


@pytest.fixture
def kafka_cluster(_kafka_cluster_session: LocalCluster) -> Iterator[LocalCluster]:
    """Three KRaft brokers shared by the session (see module docstring)."""
    _whole(_kafka_cluster_session)
    yield _kafka_cluster_session
    _whole(_kafka_cluster_session)


@pytest.fixture(scope="session")
def _secure_kafka_cluster_session() -> Iterator[LocalCluster]:
    users = {"app": SecretStr(secrets.token_urlsafe(24))}
    with _cluster(security="sasl_ssl", users=users) as cluster:
        yield cluster


@pytest.fixture
def secure_kafka_cluster(_secure_kafka_cluster_session: LocalCluster) -> Iterator[LocalCluster]:
    """Three SASL_SSL brokers with ACLs, shared by the session (see module docstring)."""
    _whole(_secure_kafka_cluster_session)
    yield _secure_kafka_cluster_session
    _whole(_secure_kafka_cluster_session)


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(kafka_broker: Broker) -> str:
    """``host:port`` of the session's broker."""
    return kafka_broker.bootstrap_servers


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """A factory of topic names unique to this test (legal Kafka topic characters only)."""
    test = re.sub(r"[^A-Za-z0-9._-]+", "_", request.node.name)[:80]
    run = uuid.uuid4().hex[:8]

    def make(name: str = "topic") -> str:
        return f"{test}-{name}-{run}"

    return make


if HAVE_PYTEST_ASYNCIO:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.protocol.metadata import MetadataRequest

    @pytest_asyncio.fixture
    async def kafka_admin(kafka_broker: Broker) -> AsyncIterator[AIOKafkaAdminClient]:
        """A started aiokafka admin client on the session's broker, with its credentials."""
        kafka = kafka_broker.kafka_settings(load_settings().kafka)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=kafka_broker.bootstrap_servers, **kafka.connection_options()
        )
        try:
            await admin.start()
        except Exception as exc:
            await admin.close()
            raise await start_failure(
                kafka, kafka_broker.bootstrap_servers, exc, what="the kafka_admin fixture"
            ) from exc
        try:
            yield admin
        finally:
            await admin.close()

    @pytest_asyncio.fixture
    async def create_topic(
        kafka_admin: AIOKafkaAdminClient,
    ) -> Callable[..., Awaitable[str]]:
        """``await create_topic(name, partitions=1, config=None)``; returns the name."""

        async def create(
            name: str, partitions: int = 1, config: dict[str, str] | None = None
        ) -> str:
            await kafka_admin.create_topics(
                [NewTopic(name, partitions, 1, topic_configs=config or {})]
            )
            await _until_every_broker_knows(kafka_admin, name)
            return name

        return create

    async def _until_every_broker_knows(
        admin: AIOKafkaAdminClient, topic: str, within: float = 30.0
    ) -> None:
        """Wait until each broker's metadata lists ``topic`` with a leader for every partition.

        CreateTopics answers once the controller has the topic; brokers learn of it a little
        later, so on a cluster a test's next request could still meet one that does not know
        it ("unknown topic"), or a ``list_topics`` that leaves it out.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        pending = {broker.nodeId for broker in admin._client.cluster.brokers()}
        while pending:
            for node in sorted(pending):
                try:
                    response = await admin._send_request_to_node(node, MetadataRequest([topic]))
                except Exception:  # a broker restarting: ask again
                    continue
                described = [t for t in response.to_object()["topics"] if t["topic"] == topic]
                if described and described[0]["error_code"] == 0:
                    # As many partitions as asked, or as the topic already had (a consumer's
                    # metadata request may have auto-created it first: CreateTopics then
                    # answers "already exists", which aiokafka does not raise).
                    leaders = [p["leader"] for p in described[0]["partitions"]]
                    if leaders and min(leaders) >= 0:
                        pending.discard(node)
            if pending:
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"topic {topic!r} was created but brokers {sorted(pending)} did not "
                        f"list it within {within:.0f}s"
                    )
                await asyncio.sleep(0.05)

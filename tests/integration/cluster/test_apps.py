"""Scoped credentials for third-party apps on the SASL_SSL cluster (issue 13, item 4).

Two apps with disjoint grants: A reads ``orders`` and writes ``payments``, B reads
``payments`` and writes ``payroll``. Each connects with the configuration ``apps add`` printed
(eventplatform env lines), resolves schemas from the Kafka-log registry it may only read, can
do exactly what it was granted and is refused, naming topic and principal, for the rest.
Revoking A refuses its next request on a connection it already has, and a new connection;
B is unaffected. No secret reaches a log line, stderr, an exception or a repr.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import errors as kafka_errors
from aiokafka.structs import TopicPartition

from eventplatform import access
from eventplatform.app import Context, EventApp
from eventplatform.apps import (
    AppCredentials,
    AppGrants,
    ClientConfig,
    add_app,
    list_apps,
    revoke_app,
)
from eventplatform.demo.events import OrderPlaced
from eventplatform.devkafka.local import LocalCluster
from eventplatform.errors import (
    AppExists,
    AppNotFound,
    AuthenticationFailed,
    AuthorizationFailed,
    EventPlatformError,
)
from eventplatform.idempotency import MemoryStore
from eventplatform.producer import EventProducer
from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.settings import RegistrySettings, Settings
from tests.integration.cluster.conftest import create_replicated, end_offset, eventually, order
from tests.integration.cluster.test_secure_cluster import assert_no_secret

ROOT = Path(__file__).resolve().parents[3]


def app_name(role: str) -> str:
    return f"{role}-{uuid.uuid4().hex[:8]}"


def settings_from(env: dict[str, str]) -> Settings:
    """The Settings an app started with exactly ``env`` (and nothing else) would load."""
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("EVENTPLATFORM_"):
                patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        return Settings()


def schema_text() -> str:
    return json.dumps(OrderPlaced.avro_schema())


async def prepare(
    cluster: LocalCluster, name: Callable[[str], str]
) -> tuple[Settings, dict[str, str]]:
    """Topics, a registry log holding their schemas, and one order in ``orders``."""
    admin = Settings(
        kafka=cluster.kafka_settings(), registry=RegistrySettings(topic=name("schemas"))
    )
    topics = {role: name(role) for role in ("orders", "payments", "payroll")}
    for topic in topics.values():
        await create_replicated(admin.kafka, topic)
    async with (
        KafkaLogRegistry(settings=admin) as registry,
        EventProducer(settings=admin, registry=registry) as producer,
    ):
        for topic in topics.values():
            await registry.register(f"{topic}-value", schema_text())
        await producer.publish(order(1), topic=topics["orders"], key="o1")
    return admin, topics


async def consumed(settings: Settings, name: str, topic: str, expected: int) -> list[str]:
    """Run an EventApp of ``settings`` on ``topic`` until it handled ``expected`` events."""
    seen: list[str] = []
    app = EventApp(name, settings=settings, store=MemoryStore())

    @app.handle(OrderPlaced, topic=topic)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        seen.append(event.customer_id)

    async with app:
        task = asyncio.create_task(app.run())
        try:

            async def done() -> bool:
                if task.done():
                    task.result()  # raise what stopped it
                return len(seen) >= expected

            await eventually(done, within=90, what=f"{expected} events handled on {topic}")
        finally:
            app.stop()
            await task
    return seen


async def refused_to_consume(settings: Settings, name: str, topic: str) -> AuthorizationFailed:
    app = EventApp(name, settings=settings, store=MemoryStore())

    @app.handle(OrderPlaced, topic=topic)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        raise AssertionError("an event of a topic it may not read was handled")

    with pytest.raises(AuthorizationFailed) as refused:
        async with app:
            await asyncio.wait_for(app.run(), 90)
    return refused.value


async def refused_to_publish(producer: EventProducer, topic: str) -> AuthorizationFailed:
    with pytest.raises(AuthorizationFailed) as refused:
        await asyncio.wait_for(producer.publish(order(9), topic=topic, key="x"), 60)
    return refused.value


async def fetch_for_a_minute(reader: AIOKafkaConsumer, tp: TopicPartition) -> None:
    """Fetch ``tp`` for up to a minute (what an error of the fetch ends)."""
    for _ in range(120):
        await reader.getmany(tp, timeout_ms=500)


def secrets_of(*credentials: AppCredentials) -> list[str]:
    return [c.password.get_secret_value() for c in credentials]


def assert_refusal(error: AuthorizationFailed, app: str, resource: str) -> None:
    assert error.principal == f"User:{app}"
    assert error.resource == resource
    assert f"User:{app}" in str(error)
    assert resource.partition(":")[2] in str(error)


async def test_two_apps_with_disjoint_grants_each_do_exactly_what_they_were_granted(
    secure_kafka_cluster: LocalCluster,
    unique_topic: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = secure_kafka_cluster
    admin, topics = await prepare(cluster, unique_topic)
    orders, payments, payroll = topics["orders"], topics["payments"], topics["payroll"]
    registry_topic = admin.registry.topic
    a_name, b_name = app_name("a"), app_name("b")
    caplog.set_level(logging.DEBUG)  # aiokafka logs every request at debug level
    a = await add_app(
        AppGrants(a_name, read=(orders,), write=(payments,), registry_topic=registry_topic),
        admin.kafka,
    )
    b = await add_app(
        AppGrants(b_name, read=(payments,), write=(payroll,), registry_topic=registry_topic),
        admin.kafka,
    )
    a_env = ClientConfig(a, admin.kafka, admin.registry).env()
    b_env = ClientConfig(b, admin.kafka, admin.registry).env()
    assert a_env["EVENTPLATFORM_KAFKA__SASL_USERNAME"] == a_name
    assert a_env["EVENTPLATFORM_CONSUMER__GROUP_ID"] == a_name
    a_settings, b_settings = settings_from(a_env), settings_from(b_env)

    # A: consumes orders (its group, the registry read-only), produces payments.
    assert await consumed(a_settings, a_name, orders, 1) == ["c-1"]
    async with (
        KafkaLogRegistry(settings=a_settings) as registry,
        EventProducer(settings=a_settings, registry=registry) as producer,
    ):
        await producer.publish(order(2), topic=payments, key="p2")
        # …and nothing else: not payroll, not orders.
        assert_refusal(await refused_to_publish(producer, payroll), a_name, f"topic:{payroll}")
        assert_refusal(await refused_to_publish(producer, orders), a_name, f"topic:{orders}")
    assert_refusal(
        await refused_to_consume(a_settings, a_name, payroll), a_name, f"topic:{payroll}"
    )

    # B: consumes payments (A's event), produces payroll, may not touch orders.
    assert await consumed(b_settings, b_name, payments, 1) == ["c-2"]
    async with (
        KafkaLogRegistry(settings=b_settings) as registry,
        EventProducer(settings=b_settings, registry=registry) as producer,
    ):
        await producer.publish(order(3), topic=payroll, key="r3")
        assert_refusal(await refused_to_publish(producer, orders), b_name, f"topic:{orders}")
        assert_refusal(await refused_to_publish(producer, payments), b_name, f"topic:{payments}")
    assert_refusal(await refused_to_consume(b_settings, b_name, orders), b_name, f"topic:{orders}")
    # A group outside B's prefix is refused too.
    other_group = b_settings.model_copy(
        update={"consumer": b_settings.consumer.model_copy(update={"group_id": a_name})}
    )
    with pytest.raises(AuthorizationFailed) as group_refused:
        await consumed(other_group, b_name, payments, 1)
    assert group_refused.value.principal == f"User:{b_name}"
    assert group_refused.value.resource.startswith("group")

    # Exactly the granted writes landed; the refused ones wrote nothing.
    assert await end_offset(admin.kafka, orders) == 1
    assert await end_offset(admin.kafka, payments) == 1
    assert await end_offset(admin.kafka, payroll) == 1

    listed = {app.name: app for app in await list_apps(admin.kafka)}
    assert listed[a_name].reads == sorted([orders, registry_topic])
    assert listed[a_name].writes == sorted([payments, f"{orders}.dlq"])
    assert listed[a_name].groups == [a_name, f"{a_name}.*"]
    assert listed[a_name].transactional_ids == [a_name, f"{a_name}.*"]
    assert listed[a_name].mechanisms == {"SCRAM-SHA-512": 8192}
    assert listed[b_name].reads == sorted([payments, registry_topic])
    assert listed[b_name].writes == sorted([payroll, f"{payments}.dlq"])
    assert "admin" not in listed  # a super user holds no ACLs: not an app

    secrets = secrets_of(a, b)
    for text in (caplog.text, repr(a), repr(b), repr(a_settings), a_settings.model_dump_json()):
        for secret in secrets:
            assert secret not in text
    assert_no_secret(caplog.text, cluster)


async def test_revoke_refuses_the_next_request_and_leaves_other_apps_alone(
    secure_kafka_cluster: LocalCluster, unique_topic: Callable[[str], str]
) -> None:
    cluster = secure_kafka_cluster
    admin, topics = await prepare(cluster, unique_topic)
    payments, payroll = topics["payments"], topics["payroll"]
    registry_topic = admin.registry.topic
    a_name, b_name = app_name("a"), app_name("b")
    a = await add_app(
        AppGrants(
            a_name, read=(topics["orders"],), write=(payments,), registry_topic=registry_topic
        ),
        admin.kafka,
    )
    b = await add_app(
        AppGrants(b_name, write=(payroll,), registry_topic=registry_topic), admin.kafka
    )
    a_settings = settings_from(ClientConfig(a, admin.kafka, admin.registry).env())
    b_settings = settings_from(ClientConfig(b, admin.kafka, admin.registry).env())
    async with (
        KafkaLogRegistry(settings=a_settings) as a_registry,
        EventProducer(settings=a_settings, registry=a_registry) as a_producer,
        KafkaLogRegistry(settings=b_settings) as b_registry,
        EventProducer(settings=b_settings, registry=b_registry) as b_producer,
    ):
        await a_producer.publish(order(1), topic=payments, key="k1")
        await b_producer.publish(order(1), topic=payroll, key="k1")
        orders = TopicPartition(topics["orders"], 0)
        reader = AIOKafkaConsumer(
            bootstrap_servers=a_settings.kafka.bootstrap_servers,
            auto_offset_reset="earliest",
            **a_settings.kafka.connection_options(),
        )
        await reader.start()
        try:
            reader.assign([orders])
            fetched: list[object] = []

            async def fetched_the_order() -> bool:
                batch = await reader.getmany(orders, timeout_ms=500)
                fetched.extend(batch.get(orders, []))
                return bool(fetched)

            await eventually(fetched_the_order, within=60, what="A's fetch of orders")

            removed = await revoke_app(a_name, admin.kafka)
            assert removed.writes == sorted([payments, f"{topics['orders']}.dlq"])
            # A's connected producer: its next produce is refused by the authoriser.
            assert_refusal(
                await refused_to_publish(a_producer, payments), a_name, f"topic:{payments}"
            )
            # A's connected consumer: its next fetch is refused too (aiokafka raises a
            # refused Fetch from getmany; a refused ListOffsets it would only log and retry).
            with pytest.raises(kafka_errors.TopicAuthorizationFailedError):
                await fetch_for_a_minute(reader, orders)
        finally:
            await reader.stop()
        # B is unaffected, on the same connections as before.
        await b_producer.publish(order(2), topic=payroll, key="k2")
    # A new connection of A fails authentication: the credential is gone.
    with pytest.raises(AuthenticationFailed) as unknown:
        async with KafkaLogRegistry(settings=a_settings):
            pass
    assert unknown.value.principal == f"User:{a_name}"
    assert await end_offset(admin.kafka, payments) == 1
    assert await end_offset(admin.kafka, payroll) == 2
    names = {app.name for app in await list_apps(admin.kafka)}
    assert a_name not in names
    assert b_name in names
    with pytest.raises(AppNotFound, match=a_name):
        await revoke_app(a_name, admin.kafka)
    await revoke_app(b_name, admin.kafka)
    for error in (unknown.value,):
        for secret in secrets_of(a, b):
            assert secret not in str(error) + repr(error)


async def test_a_duplicate_app_is_refused_and_nothing_is_changed(
    secure_kafka_cluster: LocalCluster, unique_topic: Callable[[str], str]
) -> None:
    kafka = secure_kafka_cluster.kafka_settings()
    name = app_name("dup")
    orders, other = unique_topic("orders"), unique_topic("other")
    first = await add_app(AppGrants(name, read=(orders,)), kafka)
    with pytest.raises(AppExists) as exists:
        await add_app(AppGrants(name, write=(other,)), kafka)
    assert name in str(exists.value)
    assert "nothing was changed" in str(exists.value)
    (listed,) = [app for app in await list_apps(kafka) if app.name == name]
    assert listed.writes == [f"{orders}.dlq"]  # the second grants were not written
    # The first password still works (the credential was not replaced).
    settings = secure_kafka_cluster.kafka_settings(username=name, password=first.password)
    assert await access.refused(settings, secure_kafka_cluster.bootstrap_servers) is None
    await revoke_app(name, kafka)


async def test_a_principal_that_may_not_manage_acls_is_refused_naming_it(
    secure_kafka_cluster: LocalCluster,
) -> None:
    cluster = secure_kafka_cluster
    user = cluster.kafka_settings(username="app", password=cluster.users["app"])
    for call in (
        lambda: list_apps(user),
        lambda: add_app(AppGrants(app_name("x"), read=("orders",)), user),
        lambda: revoke_app("whoever", user),
    ):
        with pytest.raises(AuthorizationFailed) as refused:
            await call()
        assert refused.value.principal == "User:app"
        assert refused.value.resource == "cluster"
        assert "CLUSTER_AUTHORIZATION_FAILED" in str(refused.value)


def run_cli(
    cluster: LocalCluster, *args: str, registry_topic: str
) -> subprocess.CompletedProcess[str]:
    """``eventplatform apps ARGS`` as the cluster's admin, in a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")}
    env |= cluster.env() | {"EVENTPLATFORM_REGISTRY__TOPIC": registry_topic}
    env |= {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "eventplatform", "apps", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=180,
        check=False,
    )


async def test_the_cli_prints_a_configuration_that_works_and_keeps_secrets_off_stderr(
    secure_kafka_cluster: LocalCluster, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    cluster = secure_kafka_cluster
    admin, topics = await prepare(cluster, unique_topic)
    name = app_name("cli")
    chosen = "chosen-" + uuid.uuid4().hex  # from a file: never on the command line
    password_file = tmp_path / "password"
    password_file.write_text(chosen + "\n")
    cli = functools.partial(run_cli, cluster, registry_topic=admin.registry.topic)
    added = await asyncio.to_thread(
        cli,
        "add",
        name,
        "--write",
        topics["payments"],
        "--read",
        topics["orders"],
        "--password-file",
        str(password_file),
    )
    assert added.returncode == 0, added.stderr
    lines = dict(
        line.split("=", 1)
        for line in added.stdout.splitlines()
        if line.startswith("EVENTPLATFORM_")
    )
    assert lines["EVENTPLATFORM_KAFKA__SASL_PASSWORD"] == chosen
    assert f'username="{name}" password="{chosen}"' in added.stdout  # the Java JAAS line
    assert f"sasl.password={chosen}" in added.stdout  # librdkafka
    assert chosen not in added.stderr
    assert name in added.stderr

    settings = settings_from(lines)
    async with (
        KafkaLogRegistry(settings=settings) as registry,
        EventProducer(settings=settings, registry=registry) as producer,
    ):
        await producer.publish(order(5), topic=topics["payments"], key="k")
        await refused_to_publish(producer, topics["payroll"])
    assert await consumed(settings, name, topics["orders"], 1) == ["c-1"]

    listed = await asyncio.to_thread(cli, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (mine,) = [app for app in json.loads(listed.stdout) if app["name"] == name]
    assert mine["write"] == sorted([topics["payments"], topics["orders"] + ".dlq"])
    table = await asyncio.to_thread(cli, "list")
    assert name in table.stdout

    again = await asyncio.to_thread(cli, "add", name, "--read", "x")
    assert again.returncode == 1
    assert "AppExists" in again.stderr
    assert "Traceback" not in again.stderr

    revoked = await asyncio.to_thread(cli, "revoke", name)
    assert revoked.returncode == 0, revoked.stderr
    for output in (listed, table, again, revoked):
        assert chosen not in output.stdout + output.stderr
    for result in (added, listed, table, again, revoked):
        assert_no_secret(result.stderr, cluster)
    with pytest.raises(EventPlatformError):
        async with KafkaLogRegistry(settings=settings):
            pass

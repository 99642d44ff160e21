"""The CLI on the SASL_SSL cluster: the commands a user runs, as processes, with their output.

Every command runs as ``python -m eventplatform`` with the settings in its environment, as a
user sets them; the schema registry is served over HTTPS with basic auth (in this process, or
by ``eventplatform registry serve``), so every hop carries credentials. Each command's whole
output is checked for every secret of the session: the admin's, the app's and the registry's
passwords, the wrong password tried, and a webhook signing secret in the environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest
import pytest_asyncio

from eventplatform.devkafka.local import LocalCluster
from eventplatform.devkafka.tls import TlsFiles, make_tls
from eventplatform.producer import EventProducer
from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.registry.rest_client import RestRegistry
from eventplatform.registry.rest_server import serve, server_url
from eventplatform.registry.tls import client_context, server_context
from eventplatform.settings import RegistrySettings, Settings
from tests.integration.cluster.acl_helpers import add_user, grant
from tests.integration.cluster.conftest import create_replicated, end_offset, order, read_values

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
ORDER_PLACED = "com.example.orders.OrderPlaced"
WRONG = "wrong-password-5c0ffee5c0ffee"
REGISTRY_PASSWORD = "registry-password-7d1e2f3a4b"
SIGNING_SECRET = "whsec_c2lnbmluZy1zZWNyZXQtbmV2ZXItc2hvd24="
APP_SERVICE = "tests.integration.cluster.secure_services:orders_app"


def secrets_of(cluster: LocalCluster) -> list[str]:
    assert cluster.admin_password is not None
    return [
        cluster.admin_password.get_secret_value(),
        *(p.get_secret_value() for p in cluster.users.values()),
        WRONG,
        REGISTRY_PASSWORD,
        SIGNING_SECRET,
    ]


@dataclass
class Ran:
    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Transcript:
    """Everything the commands of one test printed, to grep for secrets at the end."""

    secrets: list[str]
    runs: list[Ran]

    def check(self, *files: Path) -> None:
        texts = [(r.command, r.output) for r in self.runs]
        texts += [(str(f), f.read_text(errors="replace")) for f in files if f.exists()]
        for where, text in texts:
            for number, secret in enumerate(self.secrets):
                assert secret not in text, f"secret #{number} appears in {where}"


def base_environment(cluster: LocalCluster, **more: str) -> dict[str, str]:
    """Ours without any EVENTPLATFORM_ setting, then the cluster's (as the admin) and ``more``.

    A webhook signing secret sits in the environment all along, as in a real deployment.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EVENTPLATFORM_") or k.startswith("EVENTPLATFORM_TEST_")
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env |= cluster.env()
    env["WEBHOOK_SIGNING_SECRET"] = SIGNING_SECRET
    env["PYTHONPATH"] = str(ROOT)
    env["COLUMNS"] = "500"  # tables print whole topic names on one line
    return env | more


async def run_cli(
    transcript: Transcript, env: dict[str, str], *args: str, stdin: str = "", within: float = 120
) -> Ran:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "eventplatform", *args, cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin.encode()), within)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        raise AssertionError(f"`eventplatform {' '.join(args)}` did not finish: {err!r}") from None
    assert process.returncode is not None
    ran = Ran(" ".join(args), process.returncode, out.decode(), err.decode())
    transcript.runs.append(ran)
    return ran


def order_line(n: int) -> str:
    return json.dumps(
        {
            "order_id": f"00000000-0000-4000-8000-{n:012d}",
            "customer_id": f"c-{n}",
            "items": [{"sku": f"SKU-{n}", "quantity": 1, "unit_price": "2.50"}],
            "total": "2.50",
            "currency": "EUR",
            "placed_at": "2026-05-01T12:00:00Z",
            "note": None,
        }
    )


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA and a certificate for 127.0.0.1, for the registry's HTTPS."""
    return make_tls(tmp_path_factory.mktemp("registry-tls"))


@pytest_asyncio.fixture
async def registry_env(
    secure_kafka_cluster: LocalCluster, unique_topic: Callable[[str], str], tls: TlsFiles
) -> AsyncIterator[dict[str, str]]:
    """A Kafka-log registry (as the admin) served over HTTPS with basic auth, in this process;
    the settings a client of it needs."""
    settings = Settings(kafka=secure_kafka_cluster.kafka_settings())
    async with KafkaLogRegistry(settings=settings, topic=unique_topic("schemas")) as backend:
        runner = await serve(
            backend, "127.0.0.1", 0, username="ops", password=REGISTRY_PASSWORD,
            ssl_context=server_context(RegistrySettings(server_certfile=tls.keystore)),
        )  # fmt: skip
        try:
            yield {
                "EVENTPLATFORM_REGISTRY__URL": server_url(runner),
                "EVENTPLATFORM_REGISTRY__USERNAME": "ops",
                "EVENTPLATFORM_REGISTRY__PASSWORD": REGISTRY_PASSWORD,
                "EVENTPLATFORM_REGISTRY__SSL_CAFILE": str(tls.ca_file),
            }
        finally:
            await runner.cleanup()


async def test_the_cli_works_as_the_admin_and_a_wrong_password_fails_at_start(
    secure_kafka_cluster: LocalCluster,
    unique_topic: Callable[[str], str],
    registry_env: dict[str, str],
) -> None:
    cluster = secure_kafka_cluster
    transcript = Transcript(secrets_of(cluster), [])
    env = base_environment(cluster, **registry_env)
    topic = unique_topic("orders")

    created = await run_cli(transcript, env, "topics", "create", topic, "--partitions", "2")
    assert created.returncode == 0, created.output
    listed = await run_cli(transcript, env, "topics", "list")
    assert listed.returncode == 0, listed.output
    assert topic in listed.stdout
    lines = "\n".join(order_line(n) for n in range(3))
    produced = await run_cli(
        transcript, env, "produce", topic, "--type", ORDER_PLACED, "--key-field",
        "customer_id", stdin=lines,
    )  # fmt: skip
    assert produced.returncode == 0, produced.output
    consumed = await run_cli(
        transcript, env, "consume", topic, "--from-beginning", "--max", "3", "--idle-timeout",
        "60",
    )  # fmt: skip
    assert consumed.returncode == 0, consumed.output
    records = [json.loads(line) for line in consumed.stdout.splitlines() if line.strip()]
    assert sorted(r["value"]["customer_id"] for r in records) == ["c-0", "c-1", "c-2"]

    # A wrong password: every command fails at start, names the principal, and says no more.
    wrong = env | {"EVENTPLATFORM_KAFKA__SASL_PASSWORD": WRONG}
    for args in (
        ("topics", "list"),
        ("topics", "create", unique_topic("never")),
        ("consume", topic, "--from-beginning", "--max", "1"),
    ):
        refused = await run_cli(transcript, wrong, *args)
        assert refused.returncode != 0, refused.output
        assert "User:admin" in refused.stderr, refused.output
        assert "AuthenticationFailed" in refused.stderr, refused.output
        assert "Traceback" not in refused.output
    refused = await run_cli(
        transcript, wrong, "produce", topic, "--type", ORDER_PLACED, stdin=order_line(9)
    )
    assert refused.returncode != 0, refused.output
    assert "User:admin" in refused.stderr, refused.output
    assert "Traceback" not in refused.output
    transcript.check()


async def test_serve_as_an_app_user_reads_orders_writes_payments_and_is_refused_payroll(
    secure_kafka_cluster: LocalCluster,
    unique_topic: Callable[[str], str],
    registry_env: dict[str, str],
) -> None:
    cluster = secure_kafka_cluster
    transcript = Transcript(secrets_of(cluster), [])
    admin = cluster.kafka_settings()
    orders, payments, payroll = (unique_topic(n) for n in ("orders", "payments", "payroll"))
    for topic in (orders, payments, payroll):
        await create_replicated(admin, topic)
    group, second_group = unique_topic("group"), unique_topic("group2")
    # A user of this test's own: the cluster's ``app`` must keep having no ACL.
    user, app_password = f"serve-{uuid4().hex[:8]}", secrets.token_urlsafe(24)
    transcript.secrets.append(app_password)
    await asyncio.to_thread(add_user, cluster, user, app_password)
    await asyncio.to_thread(
        grant,
        cluster,
        f"User:{user}",
        read=[orders],
        write=[payments],
        groups=[group, second_group],
    )
    trusting = RegistrySettings(ssl_cafile=Path(registry_env["EVENTPLATFORM_REGISTRY__SSL_CAFILE"]))
    async with (
        RestRegistry(
            registry_env["EVENTPLATFORM_REGISTRY__URL"], username="ops",
            password=REGISTRY_PASSWORD, ssl_context=client_context(trusting),
        ) as registry,
        EventProducer(settings=Settings(kafka=admin), registry=registry) as producer,
    ):  # fmt: skip
        for n in range(2):
            await producer.publish(order(n), topic=orders, key=f"k{n}")

    env = base_environment(
        cluster,
        **registry_env,
        EVENTPLATFORM_KAFKA__SASL_USERNAME=user,
        EVENTPLATFORM_KAFKA__SASL_PASSWORD=app_password,
        EVENTPLATFORM_CONSUMER__GROUP_ID=group,
        EVENTPLATFORM_IDEMPOTENCY__STORE="memory://",
        SECURE_ORDERS=orders,
        SECURE_PAYMENTS=payments,
    )
    # Granted what it uses: it works.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "eventplatform", "serve", APP_SERVICE, "--factory",
        "--log-format", "json", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert len(await read_values(admin, payments, 2)) == 2
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 60)
    status = process.returncode
    transcript.runs.append(Ran("serve (granted)", status or 0, out.decode(), err.decode()))
    assert process.returncode == 0, err.decode()[-2000:]

    # The same app subscribing payroll too, in a fresh group (it would pay both orders again):
    # refused at start, naming the topic and the principal, and nothing written.
    denied = await run_cli(
        transcript,
        env | {"SECURE_PAYROLL": payroll, "EVENTPLATFORM_CONSUMER__GROUP_ID": second_group},
        "serve", APP_SERVICE, "--factory",
    )  # fmt: skip
    assert denied.returncode != 0, denied.output
    assert payroll in denied.stderr, denied.output
    assert f"User:{user}" in denied.stderr, denied.output
    assert "AuthorizationFailed" in denied.stderr, denied.output
    assert "Traceback" not in denied.output
    assert await end_offset(admin, payments) == 2
    transcript.check()


async def test_a_whole_run_shows_no_secret_in_any_output_or_log(
    secure_kafka_cluster: LocalCluster,
    unique_topic: Callable[[str], str],
    tls: TlsFiles,
    tmp_path: Path,
) -> None:
    """A session's worth of commands, at DEBUG and in JSON where they log, grepped for secrets.

    ``registry serve`` runs over HTTPS with basic auth on the secured cluster; produce and
    consume go through it; then the failures a user meets: a wrong registry password, a wrong
    Kafka password for the CLI and for ``serve``.
    """
    cluster = secure_kafka_cluster
    transcript = Transcript(secrets_of(cluster), [])
    registry_log = tmp_path / "registry.log"
    env = base_environment(
        cluster,
        EVENTPLATFORM_REGISTRY__USERNAME="ops",
        EVENTPLATFORM_REGISTRY__PASSWORD=REGISTRY_PASSWORD,
        EVENTPLATFORM_REGISTRY__SERVER_CERTFILE=str(tls.keystore),
        EVENTPLATFORM_REGISTRY__TOPIC=unique_topic("schemas"),
        EVENTPLATFORM_OBSERVABILITY__LOG_FORMAT="json",
    )
    with registry_log.open("wb") as log:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "eventplatform", "registry", "serve", "--port", "0",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=log,
        )  # fmt: skip
    try:
        assert server.stdout is not None
        line = (await asyncio.wait_for(server.stdout.readline(), 120)).decode()
        assert line.startswith("url=https://127.0.0.1:"), registry_log.read_text()
        url = line.strip().removeprefix("url=")
        client = env | {
            "EVENTPLATFORM_REGISTRY__URL": url,
            "EVENTPLATFORM_REGISTRY__SSL_CAFILE": str(tls.ca_file),
        }
        topic = unique_topic("orders")
        produced = await run_cli(
            transcript, client, "produce", topic, "--type", ORDER_PLACED,
            stdin="\n".join(order_line(n) for n in range(2)),
        )  # fmt: skip
        assert produced.returncode == 0, produced.output
        consumed = await run_cli(
            transcript, client, "consume", topic, "--from-beginning", "--max", "2",
            "--idle-timeout", "60",
        )  # fmt: skip
        assert consumed.returncode == 0, consumed.output
        listed = await run_cli(transcript, client, "schemas", "list")
        assert listed.returncode == 0, listed.output
        assert f"{topic}-value" in listed.stdout

        # The failures: a wrong registry password, a registry that is not trusted, a wrong
        # Kafka password for the CLI and for serve (at DEBUG, in JSON).
        wrong_registry = client | {"EVENTPLATFORM_REGISTRY__PASSWORD": WRONG}
        refused = await run_cli(transcript, wrong_registry, "schemas", "list")
        assert refused.returncode != 0, refused.output
        untrusted = {k: v for k, v in client.items() if k != "EVENTPLATFORM_REGISTRY__SSL_CAFILE"}
        refused = await run_cli(transcript, untrusted, "schemas", "list")
        assert refused.returncode != 0, refused.output
        assert url in refused.stderr, refused.output
        wrong_kafka = client | {"EVENTPLATFORM_KAFKA__SASL_PASSWORD": WRONG}
        refused = await run_cli(transcript, wrong_kafka, "topics", "list")
        assert refused.returncode != 0, refused.output
        refused = await run_cli(
            transcript, wrong_kafka | {"SECURE_ORDERS": topic, "SECURE_PAYMENTS": topic},
            "serve", APP_SERVICE, "--factory", "--log-level", "DEBUG", "--log-format", "json",
        )  # fmt: skip
        assert refused.returncode != 0, refused.output
        assert "User:admin" in refused.output
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 60)
    assert server.returncode == 0, registry_log.read_text()[-2000:]
    assert len(transcript.runs) == 7
    broker_logs = [cluster.node(n).log_path for n in cluster.node_ids]
    transcript.check(registry_log, *broker_logs)


PROJECT_TEST = """
async def test_the_fixtures_reach_the_secured_cluster(kafka_admin, create_topic, unique_topic):
    name = await create_topic(unique_topic("secured"))
    assert name in await kafka_admin.list_topics()
"""


async def test_a_projects_pytest_fixtures_use_the_configured_credentials(
    secure_kafka_cluster: LocalCluster, tmp_path: Path
) -> None:
    """A project whose tests point at a secured cluster (EVENTPLATFORM_KAFKA__*) gets
    ``kafka_admin`` and ``create_topic`` that work; with a wrong password they fail clearly."""
    cluster = secure_kafka_cluster
    transcript = Transcript(secrets_of(cluster), [])
    (tmp_path / "test_project.py").write_text(PROJECT_TEST)
    env = base_environment(cluster)

    async def pytest_run(environment: dict[str, str]) -> Ran:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_project.py",
            cwd=tmp_path, env=environment, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 180)
        ran = Ran("pytest", process.returncode or 0, out.decode(), "")
        transcript.runs.append(ran)
        return ran

    passed = await pytest_run(env)
    assert passed.returncode == 0, passed.output
    assert "1 passed" in passed.output
    failed = await pytest_run(env | {"EVENTPLATFORM_KAFKA__SASL_PASSWORD": WRONG})
    assert failed.returncode != 0, failed.output
    assert "AuthenticationFailed" in failed.output
    assert "User:admin" in failed.output
    transcript.check()

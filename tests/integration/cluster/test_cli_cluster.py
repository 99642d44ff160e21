"""`eventplatform kafka start --brokers 3 --security sasl_ssl`: a secured cluster from the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from eventplatform.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_kafka_start_brokers_3_sasl_ssl_prints_what_a_client_needs(tmp_path: Path) -> None:
    data = tmp_path / "kafka"
    env = {k: v for k, v in os.environ.items() if "BOOTSTRAP_SERVERS" not in k}
    env["EVENTPLATFORM_DEVKAFKA__PROVIDER"] = "local"
    command = [sys.executable, "-m", "eventplatform", "kafka", "start", "--brokers", "3"]
    command += ["--security", "sasl_ssl", "--data-dir", str(data)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as cli:
        try:
            assert cli.stdout is not None
            lines = dict(cli.stdout.readline().strip().split("=", 1) for _ in range(6))
            servers = lines["bootstrap"].split(",")
            assert len(servers) == 3
            assert lines["security_protocol"] == "SASL_SSL"
            assert lines["sasl_mechanism"] == "SCRAM-SHA-512"
            assert lines["username"] == "admin"
            assert Path(lines["ssl_cafile"]) == data / "tls" / "ca.pem"
            password = Path(lines["password_file"]).read_text().strip()
            kafka = KafkaSettings(
                bootstrap_servers=lines["bootstrap"],
                security_protocol="SASL_SSL",
                sasl_mechanism="SCRAM-SHA-512",
                sasl_username="admin",
                sasl_password=SecretStr(password),
                ssl_cafile=Path(lines["ssl_cafile"]),
            )
            assert asyncio.run(brokers(kafka)) == {1, 2, 3}
            cli.send_signal(signal.SIGTERM)
            out, err = cli.communicate(timeout=90)
            assert cli.returncode == 0, err
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
    assert password not in out + err
    # One cluster id, every node formatted with it.
    cluster_id = (data / "cluster.id").read_text().strip()
    for node in (1, 2, 3):
        meta = (data / f"node-{node}" / "data" / "meta.properties").read_text()
        assert f"cluster.id={cluster_id}" in meta
        assert f"node.id={node}" in meta


async def brokers(kafka: KafkaSettings) -> set[int]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers, **kafka.connection_options()
    )
    await admin.start()
    try:
        return {b["node_id"] for b in (await admin.describe_cluster())["brokers"]}
    finally:
        await admin.close()

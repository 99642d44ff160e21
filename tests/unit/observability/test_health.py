"""Readiness checks and the health server's answers (a real HTTP server and client)."""

from __future__ import annotations

import socket
import time

import aiohttp
import pytest

from eventplatform.connectors.sdk.status import ConnectorState, ConnectorStatus
from eventplatform.errors import PortInUse, ResourceStateError
from eventplatform.observability.health import (
    AppHealth,
    BrokerProbe,
    Check,
    ConnectorsProbe,
    readiness,
)
from eventplatform.observability.server import HealthServer
from eventplatform.settings import load_settings


def health(**changes: object) -> AppHealth:
    values: dict[str, object] = {
        "name": "billing",
        "group_id": "billing-g",
        "started": True,
        "running": True,
        "rebalances": 1,
        "coordinator_known": True,
        "partitions": (("orders", 0), ("orders", 1)),
    }
    values.update(changes)
    return AppHealth(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"started": False}, "app billing: not started"),
        ({"running": False}, "app billing: started, not consuming"),
        ({"rebalances": 0}, "group billing-g: not joined yet"),
        ({"coordinator_known": False}, "group billing-g: group coordinator unknown"),
        ({"partitions": ()}, "group billing-g: joined, no partitions assigned"),
    ],
)
def test_an_app_is_not_ready_until_it_consumes_in_its_group_with_partitions(
    changes: dict[str, object], reason: str
) -> None:
    unready = health(**changes)
    assert not unready.ready
    failed = [f"{c.name}: {c.detail}" for c in unready.checks() if not c.ok]
    assert len(failed) == 1
    assert failed[0].startswith(reason)
    ready = health()
    assert ready.ready
    assert ready.checks()[-1].detail == "2 partition(s): orders[0], orders[1]"


def status(name: str, state: ConnectorState, **more: object) -> ConnectorStatus:
    return ConnectorStatus(name=name, type="file-source", role="source", state=state, **more)  # type: ignore[arg-type]


async def test_connectors_are_ready_only_when_all_run() -> None:
    running = [status("a", ConnectorState.RUNNING), status("b", ConnectorState.RUNNING)]
    assert (await readiness([ConnectorsProbe(lambda: running)])).ready
    failed = [
        status("a", ConnectorState.RUNNING),
        status(
            "b",
            ConnectorState.FAILED,
            last_error="ConnectionError: refused",
            next_restart_at=time.time() + 5,
        ),
    ]
    result = await readiness([ConnectorsProbe(lambda: failed)])
    assert not result.ready
    assert result.reasons == ["connector b: failed: ConnectionError: refused (restart pending)"]

    def not_yet() -> list[ConnectorStatus]:
        raise ResourceStateError("not started")

    assert (await readiness([ConnectorsProbe(not_yet)])).reasons == ["connectors: not started"]


async def test_the_broker_probe_opens_a_connection_or_says_why_not() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        (up,) = await BrokerProbe(f"127.0.0.1:{port}").checks()
        assert up.ok
    (down,) = await BrokerProbe(f"127.0.0.1:{port}").checks()
    assert not down.ok
    assert down.detail.startswith(f"127.0.0.1:{port}")


class Fixed:
    def __init__(self, *checks: Check) -> None:
        self.result = list(checks)

    async def checks(self) -> list[Check]:
        return self.result


async def test_the_server_answers_live_and_ready_with_reasons_over_http() -> None:
    probe = Fixed(Check("broker", True, "reachable"), Check("group g", False, "not joined yet"))
    async with (
        HealthServer(port=0, probes=[probe]) as server,
        aiohttp.ClientSession() as client,
    ):
        async with client.get(f"{server.url}/health/live") as live:
            assert live.status == 200
            assert await live.json() == {"status": "alive"}
        async with client.get(f"{server.url}/health/ready") as ready:
            assert ready.status == 503
            body = await ready.json()
        assert body["status"] == "not ready"
        assert body["reasons"] == ["group g: not joined yet"]
        assert [c["name"] for c in body["checks"]] == ["broker", "group g"]
        probe.result = [Check("broker", True, "reachable")]
        async with client.get(f"{server.url}/health/ready") as ready:
            assert ready.status == 200
            assert (await ready.json())["status"] == "ready"
        async with client.get(f"{server.url}/metrics") as metrics:
            assert metrics.status == 404  # no collector: no /metrics


async def test_a_taken_port_names_the_setting_to_change() -> None:
    async with HealthServer(port=0) as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(PortInUse) as info:
            await HealthServer(port=port).start()
    assert info.value.port == port
    assert "--health-port or EVENTPLATFORM_OBSERVABILITY__PORT" in str(info.value)


def test_the_port_and_log_format_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTPLATFORM_OBSERVABILITY__PORT", "9464")
    monkeypatch.setenv("EVENTPLATFORM_OBSERVABILITY__LOG_FORMAT", "json")
    observability = load_settings().observability
    assert (observability.port, observability.log_format, observability.metrics) == (
        9464,
        "json",
        True,
    )

"""``up --health-port --log-format json`` on the demo deployment, with a broker of its own:
ready once every connector runs, ``/metrics`` counts the ingress answers by status and the
egress deliveries by endpoint and outcome, and every line of stderr is a JSON object."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests.integration.connectors.helpers import eventually
from tests.integration.observability.helpers import get, scrape, total
from tests.integration.up.test_up import order
from tests.integration.up.test_up_state import Ports, deployment, free_port, up, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_up_serves_probes_and_metrics_and_logs_json_lines(tmp_path: Path) -> None:
    root, ports = deployment(tmp_path), Ports.free()
    health = free_port()
    url = f"http://127.0.0.1:{health}"
    with up(root, ports, "--health-port", str(health), "--log-format", "json") as running:
        fields = await wait_ready(running)

        async def ready() -> bool:
            status, _ = await get(f"{url}/health/ready")
            return status == 200

        await eventually(ready, within=60)
        _, body = await get(f"{url}/health/ready")
        checks = {check["name"] for check in json.loads(body)["checks"]}
        assert {"broker", "connector orders", "connector orders-out"} <= checks

        async with aiohttp.ClientSession() as http:
            for headers in ({"X-API-Key": "demo"}, {"X-API-Key": "wrong"}):
                async with http.post(
                    f"{fields['ingress']}/hooks/orders", json=order("c-obs"), headers=headers
                ) as answer:
                    assert answer.status in (202, 401), await answer.text()

        async def delivered() -> bool:
            samples = await scrape(url)
            return (
                total(
                    samples,
                    "eventplatform_egress_deliveries_total",
                    connector="orders-out",
                    endpoint="demo-receiver",
                    outcome="delivered",
                )
                >= 1
            )

        await eventually(delivered, within=60)
        samples = await scrape(url)
        responses = "eventplatform_ingress_responses_total"
        assert total(samples, responses, connector="orders", http_response_status_code="202") == 1
        assert total(samples, responses, connector="orders", http_response_status_code="401") == 1
        running_state = total(
            samples, "eventplatform_connector_state", connector="orders", state="running"
        )
        assert running_state == 1
        assert total(samples, "eventplatform_connector_restarts_total", connector="orders") == 0
    lines = [json.loads(line) for line in running.err.read_text().splitlines()]
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    assert any(line["message"].startswith("health server on ") for line in lines)

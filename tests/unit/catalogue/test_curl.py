"""The curl commands of the page, run by a real shell against a real HTTP server that checks
them the way the webhook ingress does (API key; Standard Webhooks signature)."""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import pytest
from aiohttp import web

from eventplatform.catalogue import EventCatalogue
from eventplatform.catalogue.curl import curl_command
from eventplatform.connectors.builtin.webhooks import SignatureVerifier
from eventplatform.connectors.sdk.payloads import parse_event
from eventplatform.demo.events import OrderPlaced
from eventplatform.errors import InvalidSignature
from tests.unit.catalogue.conftest import SECRETS


@dataclass
class Received:
    bodies: list[bytes] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, Received]]:
    received = Received()
    verifier = SignatureVerifier([SECRETS["ORDERS_WEBHOOK_SECRET"]])

    async def keyed(request: web.Request) -> web.Response:
        key = request.headers.get("X-API-Key", "")
        if not hmac.compare_digest(key, SECRETS["ORDERS_API_KEY"]):
            return web.Response(status=401)
        received.bodies.append(await request.read())
        return web.json_response({"id": "x"}, status=202)

    async def signed(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verifier.verify(request.headers, body)
        except InvalidSignature as exc:
            return web.Response(status=401, text=str(exc))
        received.bodies.append(body)
        return web.json_response({"id": "x"}, status=202)

    app = web.Application()
    app.add_routes([web.post("/hooks/orders", keyed), web.post("/hooks/orders-signed", signed)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", received
    finally:
        await runner.cleanup()


async def _run(script: str) -> tuple[int, str]:
    for tool in ("sh", "curl", "openssl", "base64", "od"):
        assert shutil.which(tool), f"the curl test needs {tool} on PATH"
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", script,
        env={**os.environ, **SECRETS},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, output.decode()


@pytest.mark.parametrize("connector", ["orders", "orders-signed"])
async def test_the_curl_of_a_route_is_accepted(
    demo: EventCatalogue, receiver: tuple[str, Received], connector: str
) -> None:
    base, received = receiver
    event = demo.event("com.example.orders.OrderPlaced")
    route = next(r for r in event.routes if r.connector == connector)
    local = replace(route, url=f"{base}/hooks/{connector}")

    code, output = await _run(curl_command(local, event.example))

    assert code == 0, output
    assert "HTTP/1.1 202" in output, output
    assert [json.loads(body) for body in received.bodies] == [event.example]
    assert parse_event(OrderPlaced, received.bodies[0]).currency.value == "EUR"


async def test_a_wrong_secret_is_refused(
    demo: EventCatalogue, receiver: tuple[str, Received]
) -> None:
    # The signature really is checked: signing with another secret is answered 401.
    base, received = receiver
    event = demo.event("com.example.orders.OrderPlaced")
    route = next(r for r in event.routes if r.signed)
    other = replace(route, url=f"{base}/hooks/orders-signed", secret_variable="DEMO_WEBHOOK_SECRET")

    code, output = await _run(curl_command(other, event.example))

    assert code == 0, output
    assert "HTTP/1.1 401" in output
    assert received.bodies == []

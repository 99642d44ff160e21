"""2,400 generated bad requests to two ingress routes on one port: only documented 4xx answers.

A seeded fuzzer (reproducible: the seed is in the test) builds requests that are wrong in one
way each, signed with the independent ``standardwebhooks`` package wherever the signature is
not what is wrong. Every answer must be the 4xx its category expects, the server must stay up,
and no record may reach Kafka.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from standardwebhooks import Webhook

from eventplatform.connectors.builtin.ingress.connector import WebhookIngress
from eventplatform.connectors.runtime.http import HttpServers
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.connectors.helpers import (
    Order,
    TopicReader,
    free_port,
    order_json,
    wait_running,
)

SEED = 20260501
PER_CATEGORY = 300
SECRET = "whsec_" + base64.b64encode(b"fuzzing secret, 32 bytes long!!!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"not the configured secret at all").decode()
API_KEY = "fuzz-key"
ALLOWED = {400, 401, 404, 413, 415, 422, 429}
MAX_BODY = 4096

Request = tuple[str, str, bytes, dict[str, str], set[int]]


def sign(
    body: bytes, msg_id: str, secret: str = SECRET, at: datetime | None = None
) -> dict[str, str]:
    when = at or datetime.now(tz=UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode("latin-1")),
        "content-type": "application/json",
    }


# Values each field cannot take (strict JSON validation against the Avro schema).
INVALID: dict[str, list[Any]] = {
    "order_id": ["not-a-uuid", 42, "", "123e4567-e89b-12d3-a456", None, True],
    "customer": [1, None, ["c"], {"id": "c"}, True, 2.5],
    "lines": [{}, "x", [1], [{"sku": "a"}], None, [{"sku": "a", "quantity": 1, "price": []}]],
    "total": ["1.234", "123456789.12", "abc", True, [], "", None],
    "currency": ["eur", "XXX", 1, None, ["EUR"], ""],
    "placed_at": ["2026-05-01T12:00:00", "yesterday", 1714564800, None, ""],
    "note": [1, ["n"], {"n": 1}, True, 0.5],
}


def mutate(rng: random.Random, data: dict[str, Any]) -> Any:
    """One change that makes a valid order invalid."""
    kind = rng.randrange(5)
    if kind == 0:
        data.pop(
            rng.choice(["order_id", "customer", "lines", "total", "currency", "placed_at"]), None
        )
    elif kind == 1:
        data[f"extra_{rng.randrange(1000)}"] = rng.randrange(10)
    elif kind == 2:
        lines = data.get("lines")
        if isinstance(lines, list) and lines and isinstance(lines[0], dict):
            lines[0]["quantity"] = rng.choice([2**31, -(2**31) - 1, "3", 1.5, True, None])
        else:
            data["lines"] = "x"
    elif kind == 3:
        return rng.choice([[], [data], "order", 42, None, True])
    else:
        field = rng.choice(list(INVALID))
        data[field] = rng.choice(INVALID[field])
    return data


def generate(rng: random.Random, signed_url: str, keyed_url: str, base: str) -> list[Request]:
    requests: list[Request] = []
    valid = lambda n: json.dumps(order_json(n)).encode()  # noqa: E731
    for n in range(PER_CATEGORY):
        body = valid(n)
        msg = f"fz-{n}"
        # 1. malformed JSON: truncated or garbled, signed correctly
        cut = (
            body[: rng.randrange(len(body) - 1)]
            if rng.random() < 0.6
            else body.replace(b'"', b"'", 1)
        )
        requests.append(("POST", signed_url, cut, sign(cut, msg + "a"), {400}))
        # 2. schema violations (one to three), signed correctly
        data: Any = json.loads(body)
        for _ in range(rng.randint(1, 3)):
            if isinstance(data, dict) and "order_id" in data:
                data = mutate(rng, data)
        wrong = json.dumps(data).encode()
        requests.append(("POST", signed_url, wrong, sign(wrong, msg + "b"), {422}))
        # 3. signatures that do not verify
        headers = sign(body, msg + "c")
        choice = rng.randrange(7)
        if choice == 0:
            headers = sign(body, msg + "c", OTHER_SECRET)
        elif choice == 1:
            del headers[rng.choice(["webhook-id", "webhook-timestamp", "webhook-signature"])]
        elif choice == 2:
            skew = timedelta(seconds=rng.choice([-1, 1]) * rng.randint(301, 10**6))
            headers = sign(body, msg + "c", at=datetime.now(tz=UTC) + skew)
        elif choice == 3:
            headers["webhook-signature"] = rng.choice(
                ["v1,", "v1,!!!", "v2," + "A" * 44, "garbage", "v1a,abc", "v1," + "A" * 44]
            )
        elif choice == 4:
            headers["webhook-timestamp"] = rng.choice(["soon", "-5", "1.5", "9" * 20, " 12"])
        elif choice == 5:
            body = body.replace(b"EUR", b"USD")  # tampered after signing
        else:
            headers["webhook-id"] = "x" * 300
        requests.append(("POST", signed_url, body, headers, {401}))
        # 4. wrong content types, signed correctly
        body = valid(n)
        headers = sign(body, msg + "d")
        headers["content-type"] = rng.choice(
            [
                "text/plain",
                "application/xml",
                "multipart/form-data; boundary=x",
                "application/json; charset=latin-1",
                "application/x-www-form-urlencoded",
            ]
        )
        requests.append(("POST", signed_url, body, headers, {415}))
        # 5. oversize bodies
        big = b'{"customer": "' + b"x" * rng.randint(MAX_BODY, 4 * MAX_BODY) + b'"}'
        requests.append(("POST", signed_url, big, sign(big, msg + "e"), {413}))
        # 6. unknown routes
        path = rng.choice(["/hooks/nope", "/hooks/", "/", "/hooks/orders-in/x", "/HOOKS/orders-in"])
        requests.append(("POST", base + path, valid(n), sign(valid(n), msg + "f"), {404}))
        # 7. the API-key route: missing or wrong keys, bad Idempotency-Key
        headers = {"content-type": "application/json"}
        choice = rng.randrange(4)
        expected = {401}
        if choice == 0:
            headers["X-API-Key"] = rng.choice(["", "fuzz", API_KEY + "x", "FUZZ-KEY"])
        elif choice == 1:
            headers["Authorization"] = rng.choice(
                ["Bearer", "Basic Zm9vOmJhcg==", f"Token {API_KEY}"]
            )
        elif choice == 2:
            headers["X-API-Key"] = API_KEY
            headers["Idempotency-Key"] = rng.choice(["x" * 300, "a\tb", " ", "clé"])
            expected = {400}
        requests.append(("POST", keyed_url, valid(n), headers, expected))
        # 8. the API-key route with a valid key and an invalid event
        data = mutate(rng, json.loads(valid(n)))
        requests.append(
            (
                "POST",
                keyed_url,
                json.dumps(data).encode(),
                {"content-type": "application/json", "Authorization": f"Bearer {API_KEY}"},
                {422},
            )
        )
    rng.shuffle(requests)
    return requests


async def test_generated_bad_requests_get_documented_4xx_and_write_nothing(
    settings: Settings,
    registry: MemoryRegistry,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    port = free_port()
    # One server for all routes on the port, as the runtime shares it between connectors.
    http_servers = HttpServers()
    topics = [unique_topic("signed"), unique_topic("keyed")]
    common: dict[str, Any] = {
        "settings": settings,
        "registry": registry,
        "http": http_servers,
        "event_type": Order,
    }
    signed_route = WebhookIngress(
        name="orders-in",
        topic=topics[0],
        config={"port": port, "signing_secrets": [SECRET], "max_body_bytes": MAX_BODY},
        **common,
    )
    keyed_route = WebhookIngress(
        name="partner-orders",
        topic=topics[1],
        config={"port": port, "api_keys": [API_KEY], "max_body_bytes": MAX_BODY},
        **common,
    )
    tasks = [asyncio.create_task(c.run()) for c in (signed_route, keyed_route)]
    for connector, task in zip((signed_route, keyed_route), tasks, strict=True):
        await wait_running(connector, task)
    base = signed_route.url.rsplit("/hooks/", 1)[0]
    assert keyed_route.url.startswith(base)  # one server for both routes

    requests = generate(random.Random(SEED), signed_route.url, keyed_route.url, base)
    assert len(requests) >= 2000
    limit = asyncio.Semaphore(32)
    mismatches: list[tuple[int, set[int], str, bytes]] = []
    seen: Counter[int] = Counter()

    async def send(session: aiohttp.ClientSession, request: Request) -> None:
        method, url, body, headers, expected = request
        async with limit, session.request(method, url, data=body, headers=headers) as response:
            seen[response.status] += 1
            if response.status not in expected:
                mismatches.append((response.status, expected, url, body[:200]))
            if response.status != 413:  # a 413 may close before the body was read
                problem = await response.json(content_type=None)
                assert problem["status"] == response.status

    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(send(session, r) for r in requests))
            assert not mismatches, mismatches[:5]
            assert set(seen) <= ALLOWED
            for topic in topics:
                assert await reader.end_offset(topic) == 0
            # Still up, and still accepting good requests.
            async with session.get(base + "/health") as response:
                assert response.status == 200
            body = json.dumps(order_json(1)).encode()
            async with session.post(signed_route.url, data=body, headers=sign(body, "ok")) as r:
                assert r.status == 202
    finally:
        for connector in (signed_route, keyed_route):
            connector.stop()
        await asyncio.gather(*tasks)
        await http_servers.aclose()
    assert signed_route.stats.errors == 0
    # Every answer but the server's own 404s was counted by the connector that gave it.
    rejected = sum(c.stats.counters["rejected"] for c in (signed_route, keyed_route))
    assert rejected == len(requests) - seen[404]

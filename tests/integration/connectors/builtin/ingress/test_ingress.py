"""Webhook ingress over real HTTP against the real broker: signatures, keys, answers."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import pytest
from pydantic import AfterValidator
from standardwebhooks import Webhook

from eventplatform.connectors.builtin.ingress.connector import WebhookIngress, encode_errors
from eventplatform.connectors.builtin.ingress.jsonschema import DATETIME_PATTERN
from eventplatform.errors import SerializationError
from eventplatform.registry import MemoryRegistry
from eventplatform.schema import AvroDecimal, AvroEvent
from eventplatform.settings import Settings
from tests.integration.connectors.helpers import (
    Order,
    TopicReader,
    order_json,
    running,
    wait_running,
)

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"an older secret, being rotated!!").decode()
API_KEY = "k-3f9a1c"


def signed(body: bytes, msg_id: str, *secrets: str, at: datetime | None = None) -> dict[str, str]:
    """Headers of ``body`` signed by the standardwebhooks package with each of ``secrets``."""
    when = at or datetime.now(tz=UTC)
    signatures = " ".join(Webhook(s).sign(msg_id, when, body.decode()) for s in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }


@asynccontextmanager
async def ingress(
    settings: Settings,
    registry: MemoryRegistry,
    topic: str,
    name: str = "orders-in",
    **config: Any,
) -> AsyncIterator[WebhookIngress]:
    options: dict[str, Any] = {"port": 0, "signing_secrets": [SECRET], "key_field": "order_id"}
    options.update(config)
    connector = WebhookIngress(
        name=name,
        topic=topic,
        event_type=Order,
        config=options,
        settings=settings,
        registry=registry,
    )
    task = asyncio.create_task(connector.run())
    await wait_running(connector, task)
    try:
        yield connector
    finally:
        connector.stop()
        await task


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_signed_event_is_answered_202_once_durable(
    settings: Settings,
    registry: MemoryRegistry,
    reader: TopicReader,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("orders")
    body = json.dumps(order_json(1, note="leave at door")).encode()
    async with ingress(settings, registry, topic) as connector:
        headers = signed(body, "msg_1", SECRET) | {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        }
        async with http.post(connector.url, data=body, headers=headers) as response:
            assert response.status == 202
            answer = await response.json()
        # The answer came after the acknowledgement: the record is already in the topic.
        assert await reader.end_offset(topic) == 1
    (record,) = await reader.read(topic, 1)
    assert record.headers["ce_id"] == answer["id"]
    assert record.headers["ce_source"] == "/connectors/orders-in"
    assert record.headers["traceparent"].startswith("00-0af76519")
    assert record.key == order_json(1)["order_id"].encode()
    event = await reader.decode(record, Order)
    assert event == Order.model_validate_json(body)


async def test_a_repeated_webhook_id_returns_the_first_answer_and_writes_nothing(
    settings: Settings,
    registry: MemoryRegistry,
    reader: TopicReader,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("orders")
    body = json.dumps(order_json(2)).encode()
    async with ingress(settings, registry, topic) as connector:
        answers = []
        for _ in range(3):
            async with http.post(connector.url, data=body, headers=signed(body, "m2", SECRET)) as r:
                assert r.status == 202
                answers.append((await r.json(), r.headers.get("Idempotent-Replayed")))
        # Concurrent repeats share the first one's outcome.
        other = json.dumps(order_json(3)).encode()
        statuses = await asyncio.gather(
            *(_post(http, connector.url, other, signed(other, "m3", SECRET)) for _ in range(5))
        )
        # The same key with a different body is refused.
        async with http.post(connector.url, data=other, headers=signed(other, "m2", SECRET)) as r:
            assert r.status == 422
        assert connector.stats.counters["duplicates"] >= 2
    assert answers[0][0] == answers[1][0] == answers[2][0]
    assert [a[1] for a in answers] == [None, "true", "true"]
    assert {s for s, _ in statuses} == {202}
    assert len({json.dumps(a) for _, a in statuses}) == 1
    assert await reader.end_offset(topic) == 2


async def _post(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with http.post(url, data=body, headers=headers) as response:
        return response.status, await response.json()


async def test_signatures_rotate_expire_and_must_match(
    settings: Settings,
    registry: MemoryRegistry,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("orders")
    body = json.dumps(order_json(4)).encode()
    async with ingress(settings, registry, topic) as connector:
        # A sender rotating its secret signs with the old and the new one.
        status, _ = await _post(http, connector.url, body, signed(body, "a", OLD_SECRET, SECRET))
        assert status == 202
        status, problem = await _post(http, connector.url, body, signed(body, "b", OLD_SECRET))
        assert (status, problem["detail"]) == (
            401,
            "signature check failed: no v1 signature matches",
        )
        stale = datetime.now(tz=UTC) - timedelta(minutes=6)
        status, problem = await _post(
            http, connector.url, body, signed(body, "c", SECRET, at=stale)
        )
        assert status == 401
        assert "too old" in problem["detail"]
        tampered = body.replace(b"EUR", b"USD")
        status, _ = await _post(http, connector.url, tampered, signed(body, "d", SECRET))
        assert status == 401
        headers = signed(body, "e", SECRET)
        del headers["webhook-signature"]
        status, problem = await _post(http, connector.url, body, headers)
        assert (status, problem["detail"]) == (
            401,
            "signature check failed: missing header webhook-signature",
        )


async def test_api_keys_by_bearer_or_header(
    settings: Settings,
    registry: MemoryRegistry,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("orders")
    body = json.dumps(order_json(5)).encode()
    json_type = {"content-type": "application/json"}
    async with ingress(
        settings, registry, topic, signing_secrets=[], api_keys=["old", API_KEY]
    ) as connector:
        for auth in ({"Authorization": f"Bearer {API_KEY}"}, {"X-API-Key": "old"}):
            status, answer = await _post(http, connector.url, body, json_type | auth)
            assert status == 202, answer
        status, _ = await _post(http, connector.url, body, json_type | {"X-API-Key": "nope"})
        assert status == 401
        status, _ = await _post(http, connector.url, body, json_type)
        assert status == 401
        # Idempotency-Key makes an unsigned request safe to retry.
        keyed = json_type | {"X-API-Key": API_KEY, "Idempotency-Key": "order-5"}
        first = await _post(http, connector.url, body, keyed)
        again = await _post(http, connector.url, body, keyed)
        assert first == again
        assert first[0] == 202


async def test_bad_requests_get_the_documented_answers(
    settings: Settings,
    registry: MemoryRegistry,
    reader: TopicReader,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("orders")
    async with ingress(settings, registry, topic, max_body_bytes=2048) as connector:
        base = connector.url.rsplit("/hooks/", 1)[0]
        good = json.dumps(order_json(6)).encode()

        status, problem = await _post(http, base + "/hooks/nope", good, signed(good, "x", SECRET))
        assert (status, problem["status"]) == (404, 404)

        huge = b'{"customer": "' + b"x" * 4096 + b'"}'
        status, _ = await _post(http, connector.url, huge, signed(huge, "big", SECRET))
        assert status == 413

        headers = signed(good, "ct", SECRET) | {"content-type": "text/plain"}
        status, _ = await _post(http, connector.url, good, headers)
        assert status == 415

        broken = b'{"order_id": '
        status, problem = await _post(http, connector.url, broken, signed(broken, "j", SECRET))
        assert status == 400
        assert problem["detail"].startswith("malformed JSON")

        wrong = json.dumps(
            order_json(7, total="1.234", currency="XXX", lines=[{"sku": 1, "price": "1"}])
        ).encode()
        status, problem = await _post(http, connector.url, wrong, signed(wrong, "v", SECRET))
        assert status == 422
        assert {(e["path"], e["reason"].split(" ")[0]) for e in problem["errors"]} >= {
            ("$.total", "Decimal"),
            ("$.currency", "Input"),
            ("$.lines[0].sku", "Input"),
            ("$.lines[0].quantity", "Field"),
        }
    assert await reader.end_offset(topic) == 0


async def test_health_and_openapi_describe_the_routes(
    settings: Settings,
    registry: MemoryRegistry,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("orders")
    async with ingress(settings, registry, topic, api_keys=[API_KEY]) as connector:
        base = connector.url.rsplit("/hooks/", 1)[0]
        async with http.get(base + "/health") as response:
            assert response.status == 200
            health = await response.json()
        async with http.get(base + "/openapi.json") as response:
            spec = await response.json()
    assert health["status"] == "ok"
    assert health["connectors"]["orders-in"]["state"] == "running"
    assert spec["openapi"] == "3.1.0"
    operation = spec["paths"]["/hooks/orders-in"]["post"]
    schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    order = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert order["x-avro-name"] == "tests.connectors.Order"
    assert order["required"] == ["order_id", "customer", "lines", "total", "currency", "placed_at"]
    assert order["properties"]["placed_at"]["pattern"] == DATETIME_PATTERN
    assert spec["components"]["schemas"]["tests.connectors.Currency"]["enum"] == ["EUR", "USD"]
    assert set(operation["responses"]) == {"202", "400", "401", "413", "415", "422", "429", "503"}
    assert operation["security"] == [
        {"standardWebhooks": [], "apiKey": []},
        {"standardWebhooks": [], "bearer": []},
    ]


async def test_backpressure_answers_429_with_retry_after(
    settings: Settings,
    registry: MemoryRegistry,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("orders")
    async with ingress(settings, registry, topic, max_pending=1) as connector:
        bodies = [json.dumps(order_json(n)).encode() for n in range(40)]
        results = await asyncio.gather(
            *(
                http.post(connector.url, data=b, headers=signed(b, f"bp{n}", SECRET))
                for n, b in enumerate(bodies)
            )
        )
        statuses = [r.status for r in results]
        retry_after = {r.headers.get("Retry-After") for r in results if r.status == 429}
        for r in results:
            r.release()
    assert 202 in statuses
    assert 429 in statuses
    assert set(statuses) <= {202, 429}
    assert retry_after == {"1"}


async def test_a_stopped_ingress_answers_503(
    settings: Settings,
    registry: MemoryRegistry,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
) -> None:
    # Started (its route attached) and not running: the state of a stopping ingress too, which
    # answers until its route is detached. Stopping a running one and posting at once raced
    # the detach (a refused connection when the stop won).
    topic = unique_topic("orders")
    body = json.dumps(order_json(8)).encode()
    connector = WebhookIngress(
        name="orders-in",
        topic=topic,
        event_type=Order,
        config={"port": 0, "signing_secrets": [SECRET]},
        settings=settings,
        registry=registry,
    )
    async with connector:
        started = time.monotonic()
        status, problem = await _post(http, connector.url, body, signed(body, "s", SECRET))
        assert status == 503
        assert time.monotonic() - started < 1
        assert problem["status"] == 503
        assert "not running" in problem["detail"]


async def test_an_idempotency_store_keeps_accepted_keys_across_restarts(
    tmp_path: Path,
    settings: Settings,
    registry: MemoryRegistry,
    reader: TopicReader,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("orders")
    store = f"sqlite:///{tmp_path / 'ingress.db'}"
    body = json.dumps(order_json(9)).encode()
    answers = []
    for _ in range(2):  # two lives of the same connector
        async with ingress(settings, registry, topic, idempotency_store=store) as c:
            answers.append(await _post(http, c.url, body, signed(body, "evt_9", SECRET)))
    assert answers[0] == answers[1]
    assert answers[0][0] == 202
    assert await reader.end_offset(topic) == 1


async def test_an_unexpected_failure_is_a_500_with_an_incident_id_only(
    settings: Settings,
    registry: MemoryRegistry,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(self: WebhookIngress, request: object) -> bytes:
        raise RuntimeError("a bug deep inside")

    monkeypatch.setattr(WebhookIngress, "_read_body", broken)
    body = json.dumps(order_json(10)).encode()
    async with ingress(settings, registry, unique_topic("orders")) as connector:
        async with http.post(connector.url, data=body, headers=signed(body, "b", SECRET)) as r:
            assert r.status == 500
            text = await r.text()
        status, _ = await _post(http, connector.url.replace("/hooks/", "/nope/"), body, {})
        assert status == 404  # still serving
    problem = json.loads(text)
    assert set(problem) == {"type", "title", "status", "detail", "incident"}
    assert "a bug deep inside" not in text
    assert "Traceback" not in text
    logged = [r for r in caplog.records if problem["incident"] in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None


async def test_an_unparseable_request_is_a_problem_logged_once_at_info(
    settings: Settings,
    registry: MemoryRegistry,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = unique_topic("orders")
    body = json.dumps(order_json(9)).encode()
    caplog.set_level(logging.INFO)
    async with ingress(settings, registry, topic, api_keys=[API_KEY]) as connector:
        host, _, port = connector.url.split("/")[2].rpartition(":")
        caplog.clear()
        for n in range(3):
            # A NUL byte in a header value: RFC 9110 §5.5 forbids it, aiohttp's parser refuses.
            request = (
                b"POST " + connector.path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                b"X-API-Key: " + API_KEY.encode() + b"\r\n"
                b"Idempotency-Key: a\x00" + str(n).encode() + b"\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            stream_in, stream_out = await asyncio.open_connection(host, int(port))
            stream_out.write(request)
            answer = await stream_in.read()  # the server closes the connection after it
            stream_out.close()
            await stream_out.wait_closed()
            head, _, content = answer.partition(b"\r\n\r\n")
            assert head.split(b" ")[1] == b"400"  # HTTP/1.0: the version was not parsed either
            assert b"content-type: application/problem+json" in head.lower()
            problem = json.loads(content)
            assert problem["status"] == 400
            assert problem["detail"].startswith("malformed HTTP request: ")
    assert await reader.end_offset(topic) == 0
    about = [r for r in caplog.records if "malformed HTTP request" in r.getMessage()]
    assert len(about) == 3  # once per request
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in about)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


def _grown(price: Decimal) -> Decimal:
    return price * 1000


class Grown(AvroEvent, namespace="tests.connectors"):
    """A price that a validator scales beyond its decimal's precision after the checks."""

    price: Annotated[Decimal, AvroDecimal(4, 2), AfterValidator(_grown)]


async def test_a_value_the_encoder_refuses_is_a_422_naming_the_field(
    settings: Settings,
    registry: MemoryRegistry,
    reader: TopicReader,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("grown")
    connector = WebhookIngress(
        name="grown-in",
        topic=topic,
        event_type=Grown,
        config={"port": 0, "allow_anonymous": True},
        settings=settings,
        registry=registry,
    )
    async with running(connector):
        body = json.dumps({"price": "12.34"}).encode()  # fits the document; 12340.00 does not
        status, problem = await _post(
            http, connector.url, body, {"content-type": "application/json"}
        )
    assert status == 422
    assert problem["detail"] == "the event cannot be encoded"
    (error,) = problem["errors"]
    # "$.price" once the serializer names the field (SerializationError.field); "$" before.
    assert error["path"] in ("$", "$.price")
    assert "precision" in error["reason"]
    assert await reader.end_offset(topic) == 0


@pytest.mark.parametrize(
    ("field", "path"), [("price", "$.price"), ("lines[0].price", "$.lines[0].price"), (None, "$")]
)
def test_a_serializer_field_becomes_a_json_path(field: str | None, path: str) -> None:
    exc = SerializationError("cannot encode: too many digits")
    exc.field = field  # the attribute the serializer sets where it knows the field
    assert encode_errors(exc) == [{"path": path, "reason": "cannot encode: too many digits"}]

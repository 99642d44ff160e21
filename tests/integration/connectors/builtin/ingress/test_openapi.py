"""Schemathesis against the ingress's own OpenAPI document, on a real server and broker.

Three routes share one port: one signed (Standard Webhooks), one behind an API key, one
open. Their event covers every Avro type and logical type. Schemathesis generates requests
from ``/openapi.json`` (positive: what the document allows; negative: what it refuses), sent
with credentials (the API key, or a Standard Webhooks signature over the exact bytes sent)
and without. Every answer passes Schemathesis's checks (no 5xx; documented status codes,
content types, headers and bodies; documented-valid data accepted, invalid data refused;
the only 422 for valid data is an idempotency key reused for another body, a rule the
document states in words), each non-202 answer leaves the route's topic end offset where it
was (also after Schemathesis's probes without credentials), each new 202 adds one record,
and every record is read back and decoded as the event type.

Deterministic: ``derandomize=True`` (examples come from the test's name, not a clock), no
example database, and a bounded number of examples so CI stays within a minute.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, TypeVar
from uuid import UUID

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from pydantic import AwareDatetime, Field, NaiveDatetime
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from standardwebhooks import Webhook

from eventplatform.connectors.builtin.ingress.connector import WebhookIngress
from eventplatform.connectors.builtin.webhooks import TIMESTAMP_PATTERN
from eventplatform.connectors.runtime.http import HttpServers
from eventplatform.registry import MemoryRegistry
from eventplatform.schema import AvroDecimal, AvroEnum, AvroEvent, Int32, Millis
from eventplatform.schema.markers import Fixed, Float32
from eventplatform.settings import Settings
from tests.integration.connectors.helpers import TopicReader, free_port, wait_running

pytestmark = pytest.mark.slow

SECRET = "whsec_" + base64.b64encode(b"schemathesis secret, 32 bytes!!!").decode()
API_KEY = "st-key-0c1d"
#: Examples per (route, mode) with credentials: 3 routes x 2 modes. Without credentials every
#: answer is the same 401 whatever the request, so fewer tell as much (2 routes x 2 modes).
EXAMPLES = 40
ANONYMOUS_EXAMPLES = 15
ROUTES = ("signed", "keyed", "open")
T = TypeVar("T")


class Shade(AvroEnum, namespace="tests.openapi"):
    """A shade."""

    LIGHT = "LIGHT"
    DARK = "DARK"


class Part(AvroEvent, namespace="tests.openapi"):
    """A nested record."""

    n: Annotated[int, Int32] = Field(description="A 32-bit number.")
    label: str | None = None


class Everything(AvroEvent, namespace="tests.openapi"):
    """Every Avro type and logical type the platform derives."""

    i32: Annotated[int, Int32]
    i64: int
    f32: Annotated[float, Float32]
    f64: float
    flag: bool
    text: str
    raw: bytes
    four: Annotated[bytes, Fixed(4, name="Four")]
    shade: Shade
    numbers: list[int]
    counts: dict[str, Annotated[int, Int32]]
    part: Part
    maybe: Part | None = None
    either: int | str = 0
    price: Annotated[Decimal, AvroDecimal(8, 2)]
    ident: UUID
    day: dt.date
    at_ms: Annotated[dt.time, Millis]
    at_us: dt.time
    ts_ms: Annotated[AwareDatetime, Millis]
    ts_us: AwareDatetime
    local_us: NaiveDatetime
    note: str | None = None


@dataclass(slots=True)
class Tally:
    """What one run sent and saw."""

    statuses: dict[int, int] = field(default_factory=dict)
    accepted_ids: set[str] = field(default_factory=set)
    reused: int = 0

    def saw(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


@pytest.fixture
async def routes(
    settings: Settings,
    registry: MemoryRegistry,
    unique_topic: Callable[[str], str],
    create_topic: Callable[[str], Awaitable[str]],
) -> AsyncIterator[dict[str, WebhookIngress]]:
    # Created up front, so that the end offset of each is one cheap look-up per example.
    topics = {route: await create_topic(unique_topic(route)) for route in ROUTES}
    port = free_port()
    # One server for all routes on the port, as the runtime shares it between connectors.
    http_servers = HttpServers()
    common: dict[str, Any] = {
        "settings": settings,
        "registry": registry,
        "http": http_servers,
        "event_type": Everything,
    }
    connectors = {
        "signed": WebhookIngress(
            name="signed-in",
            topic=topics["signed"],
            config={"port": port, "signing_secrets": [SECRET]},
            **common,
        ),
        "keyed": WebhookIngress(
            name="keyed-in",
            topic=topics["keyed"],
            config={"port": port, "api_keys": [API_KEY]},
            **common,
        ),
        "open": WebhookIngress(
            name="open-in",
            topic=topics["open"],
            config={"port": port, "allow_anonymous": True},
            **common,
        ),
    }
    tasks = [asyncio.create_task(c.run()) for c in connectors.values()]
    try:
        for connector, task in zip(connectors.values(), tasks, strict=True):
            await wait_running(connector, task)
        yield connectors
    finally:
        for connector in connectors.values():
            connector.stop()
        await asyncio.gather(*tasks)
        await http_servers.aclose()


def credentials(route: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with what ``route`` needs to let a request in."""
    if route == "keyed":
        # The schemes the document offers that Schemathesis chose (X-API-Key when none).
        found = dict(headers)
        if "Authorization" in found:
            found["Authorization"] = f"Bearer {API_KEY}"
        if "X-API-Key" in found or "Authorization" not in found:
            found["X-API-Key"] = API_KEY
        return found
    if route == "signed":
        # The signature headers are documented parameters: only those Schemathesis generated
        # are replaced, and a timestamp only when valid (the current time is valid too), so
        # that a request made invalid on purpose (negative mode) stays invalid.
        found = dict(headers)
        if not {"webhook-id", "webhook-signature"} <= found.keys():
            return found
        now = dt.datetime.now(tz=dt.UTC)
        if re.fullmatch(TIMESTAMP_PATTERN[1:-1], found.get("webhook-timestamp", "")):
            found["webhook-timestamp"] = str(int(now.timestamp()))
        else:
            return found
        found["webhook-signature"] = Webhook(SECRET).sign(
            found["webhook-id"], now, body.decode("latin-1")
        )
        return found
    return headers


def run_schemathesis(
    *,
    document: dict[str, Any],
    path: str,
    route: str,
    topic: str,
    mode: GenerationMode,
    with_credentials: bool,
    end_offset: Callable[[str], int],
    accepted_keys: dict[str, bytes],
) -> Tally:
    """Drive one operation with Schemathesis (blocking: runs in a thread).

    ``accepted_keys`` holds the bodies the route accepted by idempotency key, across runs: a
    key used again with another body is refused 422 by a rule the document states in words
    (the IETF idempotency draft's), which no schema can, so that answer is checked here.
    """
    schema = schemathesis.openapi.from_dict(document)
    operation = schema[path]["POST"]
    base_url = document["servers"][0]["url"]
    tally = Tally()
    session = requests.Session()
    ends = [end_offset(topic)]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES if with_credentials else ANONYMOUS_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        kwargs = case.as_transport_kwargs(base_url=base_url)
        if "json" in kwargs:  # serialized here, so that the bytes signed are the bytes sent
            kwargs["data"] = json.dumps(kwargs.pop("json"), allow_nan=False).encode()
        body = kwargs.get("data") or b""
        if isinstance(body, str):
            body = body.encode()
        kwargs["headers"] = dict(kwargs["headers"])
        given = kwargs["headers"]
        if with_credentials:
            kwargs["headers"] = credentials(route, body, given)
        # What the test set rather than Schemathesis generated (so its auth checks know).
        explicit = {k: v for k, v in kwargs["headers"].items() if given.get(k) != v}
        key = kwargs["headers"].get("webhook-id" if route == "signed" else "Idempotency-Key")
        reused = key is not None and accepted_keys.get(key, body) != body

        # Requests go one at a time and nothing else writes to the topic, so the end offset
        # after one example is the one before the next: one look-up per example.
        before = ends[-1]
        response = session.request(**kwargs, timeout=30)
        tally.saw(response.status_code)
        if reused and response.status_code == 422:
            assert "idempotency key" in response.json()["detail"]
        case.validate_response(
            response,
            headers=explicit or None,
            transport_kwargs={"base_url": base_url},
            excluded_checks=[positive_data_acceptance] if reused else None,
        )
        # Measured after the checks: Schemathesis's auth checks send probes without (or with
        # wrong) credentials, which must write nothing either.
        after = end_offset(topic)
        ends.append(after)
        if reused:
            tally.reused += 1
        if response.status_code == 202:
            if key is not None:
                accepted_keys.setdefault(key, body)
            event_id = response.json()["id"]
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            assert after - before == (0 if replayed else 1), (response.status_code, body)
            if not replayed:
                tally.accepted_ids.add(event_id)
        else:
            assert after == before, (response.status_code, response.text, body)

    check()
    session.close()
    return tally


def on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)


@pytest.mark.parametrize("with_credentials", [True, False], ids=["credentials", "anonymous"])
async def test_the_ingress_answers_as_its_openapi_document_says(
    routes: dict[str, WebhookIngress],
    reader: TopicReader,
    with_credentials: bool,
) -> None:
    base = routes["open"].url.rsplit("/hooks/", 1)[0]
    async with (
        aiohttp.ClientSession() as http,
        http.get(base + "/openapi.json") as response,
    ):
        assert response.status == 200
        document = await response.json()
    loop = asyncio.get_running_loop()
    # The open route has no credentials to leave out: it runs with credentials only.
    tried = {r: c for r, c in routes.items() if with_credentials or r != "open"}
    for route, connector in tried.items():
        assert connector.topic is not None
        topic = connector.topic
        accepted: set[str] = set()
        keys: dict[str, bytes] = {}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            tally = await asyncio.to_thread(
                run_schemathesis,
                document=document,
                path=connector.path,
                route=route,
                topic=topic,
                mode=mode,
                with_credentials=with_credentials,
                end_offset=lambda t: on_loop(loop, reader.end_offset(t)),
                accepted_keys=keys,
            )
            accepted |= tally.accepted_ids
            if not with_credentials:
                # Nothing gets past the check of credentials, whatever else is wrong.
                assert set(tally.statuses) <= {401, 413}, (route, mode, tally.statuses)
            elif mode is GenerationMode.POSITIVE:
                # Valid requests got through: the run exercised the event's schema.
                assert tally.statuses.get(202, 0) >= EXAMPLES // 4, (route, tally)
        # Every record the topic holds is one the ingress answered 202, and decodes.
        records = await reader.read(topic, len(accepted)) if accepted else []
        assert len(records) == len(accepted) == await reader.end_offset(topic)
        assert {r.headers["ce_id"] for r in records} == accepted
        for record in records:
            assert isinstance(await reader.decode(record, Everything), Everything)

"""RestRegistry's HTTP behaviour against a scripted loopback server: retries, auth, paths."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from eventplatform.errors import (
    RegistryError,
    RegistryUnavailable,
    ResourceStateError,
    SettingNotFound,
    SubjectNotFound,
)
from eventplatform.registry.base import CompatibilityLevel, Mode, SchemaRegistry
from eventplatform.registry.rest_client import CONTENT_TYPE, RestRegistry

SCHEMA = '{"type": "record", "name": "Placed", "fields": [{"name": "id", "type": "string"}]}'


@dataclass
class Seen:
    method: str
    raw_path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeRegistry:
    """A loopback HTTP server answering from a script of (status, body) per request."""

    url: str = ""
    script: list[tuple[int, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def answer(self, *responses: tuple[int, Any]) -> None:
        self.script.extend(responses)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.seen.append(
            Seen(
                method=request.method,
                raw_path=request.raw_path.split("?")[0],
                query=dict(request.query),
                body=json.loads(raw) if raw else None,
                headers=dict(request.headers),
            )
        )
        status, body = self.script.pop(0)
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=status, text=text, content_type=CONTENT_TYPE)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeRegistry]:
    fake = FakeRegistry()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def fast(url: str, **kwargs: Any) -> RestRegistry:
    return RestRegistry(url, backoff=0.001, max_backoff=0.002, **kwargs)


def record(version: int = 1, schema_id: int = 7) -> dict[str, Any]:
    return {"subject": "orders", "version": version, "id": schema_id, "schema": SCHEMA}


async def test_retriable_failure_is_retried_until_it_succeeds(fake: FakeRegistry) -> None:
    fake.answer(
        (503, {"error_code": 50003, "message": "forwarding failed"}),
        (500, {"error_code": 50001, "message": "store"}),
        (200, ["orders"]),
    )
    async with fast(fake.url, retries=3) as registry:
        assert await registry.list_subjects() == ["orders"]

    assert len(fake.seen) == 3


async def test_retries_are_bounded_and_the_error_names_the_url(fake: FakeRegistry) -> None:
    fake.answer(*[(500, {"error_code": 50001, "message": "store down"})] * 3)

    async with fast(fake.url, retries=2) as registry:
        with pytest.raises(RegistryUnavailable) as info:
            await registry.list_subjects()

    assert len(fake.seen) == 3
    assert fake.url in str(info.value)
    assert "store down" in str(info.value)
    assert "after 3 attempts" in str(info.value)
    assert info.value.retriable


async def test_refusal_is_not_retried(fake: FakeRegistry) -> None:
    fake.answer((404, {"error_code": 40401, "message": "Subject 'orders' not found."}))

    async with fast(fake.url) as registry:
        with pytest.raises(SubjectNotFound, match="Subject 'orders' not found"):
            await registry.list_versions("orders")

    assert len(fake.seen) == 1


async def test_delete_is_not_repeated_after_the_server_may_have_applied_it(
    fake: FakeRegistry,
) -> None:
    fake.answer((500, {"error_code": 50001, "message": "store"}))

    async with fast(fake.url) as registry:
        with pytest.raises(RegistryUnavailable):
            await registry.delete_subject("orders")

    assert len(fake.seen) == 1


async def test_failure_is_not_remembered(fake: FakeRegistry) -> None:
    fake.answer(
        (500, {"error_code": 50001, "message": "store"}),
        (200, {"schema": SCHEMA}),
    )
    async with fast(fake.url, retries=0) as registry:
        with pytest.raises(RegistryUnavailable):
            await registry.get_by_id(7)
        schema = await registry.get_by_id(7)

    assert schema.schema == SCHEMA


async def test_closed_port_raises_unavailable_naming_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    async with fast(url, retries=1) as registry:
        with pytest.raises(RegistryUnavailable) as info:
            await registry.get_by_id(1)

    assert url in str(info.value)
    assert info.value.retriable


async def test_url_prefix_and_subject_encoding_are_kept(fake: FakeRegistry) -> None:
    fake.answer((200, [1, 2]))

    async with fast(f"{fake.url}/apis/ccompat/v7/") as registry:
        await registry.list_versions("team/orders value", deleted=True)

    seen = fake.seen[0]
    assert seen.raw_path == "/apis/ccompat/v7/subjects/team%2Forders%20value/versions"
    assert seen.query == {"deleted": "true"}


async def test_credentials_in_the_url_become_basic_auth_and_stay_secret(
    fake: FakeRegistry,
) -> None:
    fake.answer((401, {"error_code": 401, "message": "Unauthorized"}))
    url = fake.url.replace("http://", "http://alice:s3cret@")

    async with fast(url) as registry:
        assert "s3cret" not in repr(registry)
        with pytest.raises(RegistryError) as info:
            await registry.list_subjects()

    expected = base64.b64encode(b"alice:s3cret").decode()
    assert fake.seen[0].headers["Authorization"] == f"Basic {expected}"
    assert "s3cret" not in str(info.value)
    assert info.value.error_code == 401


async def test_register_sends_confluent_body_and_flags(fake: FakeRegistry) -> None:
    fake.answer((200, record(version=3, schema_id=9)))

    async with fast(fake.url) as registry:
        registered = await registry.register("orders", SCHEMA)

    seen = fake.seen[0]
    assert (seen.method, seen.raw_path) == ("POST", "/subjects/orders/versions")
    assert seen.query == {"normalize": "true"}
    assert seen.body == {"schema": SCHEMA}
    assert seen.headers["Content-Type"] == CONTENT_TYPE
    assert (registered.version, registered.id) == (3, 9)


async def test_register_on_an_id_only_server_looks_the_version_up(fake: FakeRegistry) -> None:
    fake.answer((200, {"id": 9}), (200, record(version=3, schema_id=9)))

    async with fast(fake.url) as registry:
        registered = await registry.register("orders", SCHEMA, normalize=False)

    assert [(s.method, s.raw_path) for s in fake.seen] == [
        ("POST", "/subjects/orders/versions"),
        ("POST", "/subjects/orders"),
    ]
    assert (registered.version, registered.id) == (3, 9)


async def test_compatibility_falls_back_to_latest_on_older_servers(fake: FakeRegistry) -> None:
    fake.answer(
        (404, {"error_code": 404, "message": "HTTP 404 Not Found"}),
        (200, {"is_compatible": False, "messages": ["field 'id' changed type"]}),
    )

    async with fast(fake.url) as registry:
        result = await registry.check_compatibility("orders", SCHEMA)

    assert [s.raw_path for s in fake.seen] == [
        "/compatibility/subjects/orders/versions",
        "/compatibility/subjects/orders/versions/latest",
    ]
    assert not result.is_compatible
    assert result.messages == ["field 'id' changed type"]


async def test_subject_level_falls_back_to_global(fake: FakeRegistry) -> None:
    fake.answer(
        (404, {"error_code": 40408, "message": "Subject does not have subject-level config"}),
        (200, {"compatibilityLevel": "FULL"}),
    )

    async with fast(fake.url) as registry:
        level = await registry.get_compatibility("orders")

    assert level is CompatibilityLevel.FULL
    assert [s.raw_path for s in fake.seen] == ["/config/orders", "/config"]
    assert fake.seen[0].query == {"defaultToGlobal": "true"}


async def test_subject_mode_falls_back_to_global(fake: FakeRegistry) -> None:
    fake.answer(
        (404, {"error_code": 40409, "message": "Subject does not have subject-level mode"}),
        (200, {"mode": "READONLY"}),
        (404, {"error_code": 40409, "message": "Subject does not have subject-level mode"}),
    )

    async with fast(fake.url) as registry:
        mode = await registry.get_mode("orders")
        with pytest.raises(SettingNotFound):
            await registry.get_mode("orders", default_to_global=False)

    assert mode is Mode.READONLY
    assert [s.raw_path for s in fake.seen] == ["/mode/orders", "/mode", "/mode/orders"]
    assert fake.seen[0].query == {"defaultToGlobal": "true"}
    assert fake.seen[2].query == {}


async def test_mode_writes_and_imports_send_confluent_bodies(fake: FakeRegistry) -> None:
    fake.answer(
        (200, {"mode": "IMPORT"}),
        (200, record(version=4, schema_id=700)),
        (200, {"mode": "IMPORT"}),
        (200, {"mode": "IMPORT"}),
        (200, {"mode": "READWRITE"}),
    )

    async with fast(fake.url) as registry:
        assert await registry.set_mode(Mode.IMPORT, "orders", force=True) is Mode.IMPORT
        imported = await registry.register("orders", SCHEMA, schema_id=700, version=4)
        assert await registry.delete_mode("orders") is Mode.IMPORT
        # Confluent has no DELETE /mode: the global mode is read, then set to READWRITE.
        assert await registry.delete_mode() is Mode.IMPORT

    assert (imported.id, imported.version) == (700, 4)
    assert [(s.method, s.raw_path, s.query) for s in fake.seen] == [
        ("PUT", "/mode/orders", {"force": "true"}),
        ("POST", "/subjects/orders/versions", {"normalize": "true"}),
        ("DELETE", "/mode/orders", {}),
        ("GET", "/mode", {}),
        ("PUT", "/mode", {}),
    ]
    assert fake.seen[0].body == {"mode": "IMPORT"}
    assert fake.seen[1].body == {"schema": SCHEMA, "id": 700, "version": 4}
    assert fake.seen[4].body == {"mode": "READWRITE"}


async def test_latest_of_an_unknown_subject_is_compatible_on_older_servers(
    fake: FakeRegistry,
) -> None:
    fake.answer((404, {"error_code": 40401, "message": "Subject 'orders' not found."}))

    async with fast(fake.url) as registry:
        result = await registry.check_compatibility("orders", SCHEMA, version="latest")

    assert result.is_compatible
    assert fake.seen[0].raw_path == "/compatibility/subjects/orders/versions/latest"


async def test_non_avro_schema_is_refused(fake: FakeRegistry) -> None:
    fake.answer((200, {"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"}))

    async with fast(fake.url) as registry:
        with pytest.raises(RegistryError, match="PROTOBUF"):
            await registry.get_by_id(3)


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.list_subjects(),
        lambda r: r.get_by_id(1),
        lambda r: r.get_compatibility(),
    ],
)
async def test_use_before_start_or_after_close_is_refused(
    call: Callable[[RestRegistry], Any],
) -> None:
    registry = RestRegistry("http://127.0.0.1:1")
    with pytest.raises(ResourceStateError, match="not started"):
        await call(registry)
    await registry.start()
    await registry.close()
    await registry.close()
    with pytest.raises(ResourceStateError, match="closed"):
        await call(registry)


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("localhost:8081", {}),
        ("ftp://host", {}),
        ("http://host", {"password": "p"}),
        ("http://host", {"timeout": 0}),
        ("http://host", {"retries": -1}),
    ],
)
def test_bad_arguments_are_refused(url: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        RestRegistry(url, **kwargs)


def test_rest_registry_implements_the_protocol() -> None:
    registry = RestRegistry("http://alice:s3cret@localhost:8081/")
    as_protocol: SchemaRegistry = registry  # mypy checks every signature here

    assert isinstance(as_protocol, SchemaRegistry)
    assert registry.url == "http://localhost:8081"

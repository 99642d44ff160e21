"""The REST registry over HTTPS: our server with a certificate, our client and Confluent's.

The server runs in-process on a free loopback port over the memory backend, with a throwaway
CA and a certificate for 127.0.0.1 from :mod:`eventplatform.devkafka.tls`, and HTTP basic auth.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from pydantic import SecretStr

from eventplatform.devkafka.tls import TlsFiles, make_tls
from eventplatform.errors import ConfigurationError, RegistryError
from eventplatform.registry.factory import open_registry
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.registry.rest_server import serve, server_url
from eventplatform.registry.tls import client_context, server_context
from eventplatform.settings import RegistrySettings, Settings

pytestmark = pytest.mark.integration

PASSWORD = "registry-secret-9f3b2c1d7e"
PLACED = json.dumps(
    {
        "type": "record",
        "name": "OrderPlaced",
        "namespace": "com.acme.orders",
        "fields": [{"name": "order_id", "type": "string"}],
    }
)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest_asyncio.fixture
async def https_url(tls: TlsFiles) -> AsyncIterator[str]:
    """A registry served over HTTPS (basic auth user ``ops``); its URL."""
    served = RegistrySettings(server_certfile=tls.keystore)
    async with MemoryRegistry() as backend:
        runner = await serve(
            backend, "127.0.0.1", 0, username="ops", password=PASSWORD,
            ssl_context=server_context(served),
        )  # fmt: skip
        try:
            yield server_url(runner)
        finally:
            await runner.cleanup()


def client_settings(url: str, cafile: Path | None) -> Settings:
    return Settings(
        registry=RegistrySettings(
            url=url, username="ops", password=SecretStr(PASSWORD), ssl_cafile=cafile
        )
    )


async def test_registering_and_fetching_over_https_with_the_ca(
    https_url: str, tls: TlsFiles
) -> None:
    assert https_url.startswith("https://127.0.0.1:")
    async with open_registry(client_settings(https_url, tls.ca_file)) as registry:
        registered = await registry.register("orders-value", PLACED)
        fetched = await registry.get_by_id(registered.id)
        assert json.loads(fetched.schema) == json.loads(PLACED)
        assert await registry.list_subjects() == ["orders-value"]


async def test_a_client_without_the_ca_is_refused_naming_the_url_and_the_setting(
    https_url: str,
) -> None:
    async with open_registry(client_settings(https_url, None)) as registry:
        with pytest.raises(RegistryError) as failed:
            await registry.list_subjects()
    message = str(failed.value)
    assert https_url in message
    assert "certificate" in message.lower()
    assert "registry.ssl_cafile" in message
    assert "Traceback" not in message
    assert "ConnectionKey" not in message
    assert PASSWORD not in message + repr(failed.value)
    assert failed.value.__cause__ is None  # nothing below to print a second, rawer story


async def test_wrong_basic_auth_over_https_is_a_clear_error(https_url: str, tls: TlsFiles) -> None:
    settings = Settings(
        registry=RegistrySettings(
            url=https_url, username="ops", password=SecretStr("wrong-0000"), ssl_cafile=tls.ca_file
        )
    )
    async with open_registry(settings) as registry:
        with pytest.raises(RegistryError) as failed:
            await registry.list_subjects()
    assert "credentials" in str(failed.value)
    assert "wrong-0000" not in str(failed.value)


async def test_confluents_client_reaches_our_https_server_with_its_ca_location(
    https_url: str, tls: TlsFiles
) -> None:
    client = SchemaRegistryClient(
        {
            "url": https_url,
            "ssl.ca.location": str(tls.ca_file),
            "basic.auth.user.info": f"ops:{PASSWORD}",
        }
    )
    try:
        schema_id = await asyncio.to_thread(
            client.register_schema, "payments-value", Schema(PLACED, "AVRO")
        )
        fetched = await asyncio.to_thread(client.get_schema, schema_id)
        assert json.loads(fetched.schema_str) == json.loads(PLACED)
    finally:
        client.__exit__()


def test_unreadable_tls_files_are_configuration_errors_naming_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigurationError, match=r"registry\.ssl_cafile"):
        client_context(RegistrySettings(ssl_cafile=missing))
    with pytest.raises(ConfigurationError, match=r"registry\.ssl_certfile"):
        client_context(RegistrySettings(ssl_certfile=missing))
    with pytest.raises(ConfigurationError, match=r"registry\.server_certfile"):
        server_context(RegistrySettings(server_certfile=missing))
    with pytest.raises(ConfigurationError, match="server_keyfile"):
        server_context(RegistrySettings(server_keyfile=missing))
    assert client_context(RegistrySettings()) is None
    assert server_context(RegistrySettings()) is None


def test_mutual_tls_client_certificate_loads(tls: TlsFiles) -> None:
    # The broker's keystore holds a key and its certificate: a client identity as good as any.
    context = client_context(RegistrySettings(ssl_cafile=tls.ca_file, ssl_certfile=tls.keystore))
    assert context is not None

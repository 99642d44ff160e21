"""The catalogue served by aiohttp at /catalogue and /asyncapi.json, on a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from eventplatform.catalogue import EventCatalogue, asyncapi_document, catalogue_routes


@pytest.fixture
async def base_url(demo: EventCatalogue) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(catalogue_routes(demo, registry_url="http://127.0.0.1:8081"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_page_and_the_document_are_served(base_url: str, demo: EventCatalogue) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/catalogue") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            page = await response.text()
        async with session.get(f"{base_url}/asyncapi.json") as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            document = await response.json()
        async with session.get(f"{base_url}/catalogue/", allow_redirects=False) as response:
            assert response.status == 308
            assert response.headers["Location"] == "/catalogue"

    assert "<h2>OrderPlaced</h2>" in page
    assert 'href="asyncapi.json"' in page  # relative: /catalogue links /asyncapi.json
    assert document == asyncapi_document(demo, registry_url="http://127.0.0.1:8081")

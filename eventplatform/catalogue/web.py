"""aiohttp routes that serve the catalogue: the page at ``/catalogue``, the document at
``/asyncapi.json``.

Both are rendered once, when the routes are made: a deployment's catalogue changes only when
its files do, and a restart re-reads them. ``up`` mounts them on an HTTP server it runs::

    app.add_routes(catalogue_routes(catalogue, registry_url=registry_url))
"""

from __future__ import annotations

import json

from aiohttp import web

from eventplatform.catalogue.asyncapi import asyncapi_document
from eventplatform.catalogue.html import render_html
from eventplatform.catalogue.model import EventCatalogue

__all__ = ["catalogue_routes"]


def catalogue_routes(
    catalogue: EventCatalogue,
    *,
    page_path: str = "/catalogue",
    document_path: str = "/asyncapi.json",
    registry_url: str | None = None,
) -> list[web.RouteDef]:
    """GET routes for the page and the AsyncAPI document of ``catalogue``.

    The page links the document as ``asyncapi.json`` relative to itself, so with the default
    paths ``/catalogue`` links ``/asyncapi.json``. ``/catalogue/`` redirects to ``/catalogue``.

    Args:
        catalogue: what to serve.
        page_path, document_path: where.
        registry_url: named in the document's Kafka server binding.
    """
    page = render_html(catalogue).encode("utf-8")
    document = json.dumps(
        asyncapi_document(catalogue, registry_url=registry_url), indent=2, ensure_ascii=False
    ).encode("utf-8")

    async def serve_page(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    async def serve_document(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json", charset="utf-8")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect(page_path)

    routes = [web.get(page_path, serve_page), web.get(document_path, serve_document)]
    if not page_path.endswith("/"):
        routes.append(web.get(page_path + "/", redirect))
    return routes

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

__all__ = ["LiveCatalogue", "catalogue_routes"]


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
    live = LiveCatalogue(page_path=page_path, document_path=document_path)
    live.publish(catalogue, registry_url=registry_url)
    return live.routes()


class LiveCatalogue:
    """Catalogue routes mounted before their content exists, published (or replaced) later.

    ``up`` starts its HTTP server before it registers the schemas, and the page shows what the
    registry then holds; until :meth:`publish` the routes answer 503 with ``Retry-After``.
    """

    def __init__(
        self, *, page_path: str = "/catalogue", document_path: str = "/asyncapi.json"
    ) -> None:
        self.page_path = page_path
        self.document_path = document_path
        self._page: bytes | None = None
        self._document: bytes | None = None

    def publish(self, catalogue: EventCatalogue, *, registry_url: str | None = None) -> None:
        """Render ``catalogue`` once; the routes serve it from now on."""
        self._page = render_html(catalogue).encode("utf-8")
        self._document = json.dumps(
            asyncapi_document(catalogue, registry_url=registry_url), indent=2, ensure_ascii=False
        ).encode("utf-8")

    def routes(self) -> list[web.RouteDef]:
        """GET routes for the page and the document (and a redirect from ``page_path/``)."""

        async def serve_page(request: web.Request) -> web.Response:
            if self._page is None:
                return _not_yet()
            return web.Response(body=self._page, content_type="text/html", charset="utf-8")

        async def serve_document(request: web.Request) -> web.Response:
            if self._document is None:
                return _not_yet()
            return web.Response(
                body=self._document, content_type="application/json", charset="utf-8"
            )

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPPermanentRedirect(self.page_path)

        routes = [web.get(self.page_path, serve_page), web.get(self.document_path, serve_document)]
        if not self.page_path.endswith("/"):
            routes.append(web.get(self.page_path + "/", redirect))
        return routes


def _not_yet() -> web.Response:
    return web.json_response(
        {"title": "the catalogue is being built", "status": 503},
        status=503,
        headers={"Retry-After": "1"},
        content_type="application/problem+json",
    )

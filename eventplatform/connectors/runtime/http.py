"""The HTTP servers that request-reply connectors share: one per host and port in a runtime.

The runtime creates one :class:`HttpServers` and hands it to every connector that answers
requests (:class:`~eventplatform.connectors.sdk.responder.Responder`, e.g. the webhook ingress),
and closes it when it closes; a connector run on its own opens one of its own. Each connector
attaches its route (``POST /hooks/<name>`` for the ingress) to the server of its host and port,
which starts when the first route attaches and stops when the last one detaches. So a
deployment's ingress connectors answer on one port, ``/health`` reports all of them, and
``/openapi.json`` describes all of their routes. A connector restarting after a failure
detaches and attaches again; meanwhile its route answers 404, the way a route that does not
exist does.

Every error answer is an RFC 9457 problem document (``application/problem+json``), also the
``400`` to a request aiohttp cannot parse (a NUL byte in a header, a line too long): that one is
logged once, at INFO and without a traceback, since a client can send as many as it likes. A
failure nobody anticipated is answered ``500`` with an incident id only, never a stack trace;
the trace goes to the log under that id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterable, MutableMapping
from types import TracebackType
from typing import Any, Protocol, Self

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from eventplatform.__about__ import __version__
from eventplatform.connectors.sdk.status import ConnectorState, ConnectorStatus
from eventplatform.errors import ConnectorError

__all__ = ["HttpServer", "HttpServers", "Route", "openapi_document", "problem"]

log = logging.getLogger("eventplatform.connectors.ingress")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    headers: MutableMapping[str, str] | None = None,
    **members: Any,
) -> web.Response:
    """An RFC 9457 problem answer with ``status``, a ``detail`` and extension ``members``."""
    body = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **members,
    }
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type="application/problem+json",
        headers=headers,
    )


class Route(Protocol):
    """What the server needs of an attached connector."""

    @property
    def name(self) -> str:
        """The connector's name."""

    @property
    def path(self) -> str:
        """The route's path, e.g. ``/hooks/orders``."""

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one ``POST`` to the route."""

    def health(self, *, type_name: str | None = None) -> ConnectorStatus:
        """The connector's state and counters."""

    def openapi_operation(self, components: MutableMapping[str, Any]) -> dict[str, Any]:
        """The OpenAPI operation object of the route.

        Its schemas go into ``components["schemas"]``, its security schemes into
        ``components["securitySchemes"]``.
        """


class _Connection(RequestHandler):
    """aiohttp's per-connection protocol, answering unparseable requests with a problem."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # The client's fault, as often as it likes: one line at INFO, no traceback. aiohttp's
        # message quotes the offending bytes on later lines; the first names the fault.
        reason = (exc.message or type(exc).__name__).partition("\n")[0].strip(" :")
        log.info("malformed HTTP request from %s: %s", request.remote, reason)
        if request.writer.output_size > 0:  # the answer was started: only closing is left
            raise ConnectionError("the answer was already being sent")
        answer = problem(status, f"malformed HTTP request: {reason}")
        answer.force_close()
        return answer


class _Server(web.Server):
    """aiohttp's low-level server, with :class:`_Connection` for each connection."""

    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class HttpServers:
    """The HTTP servers of a runtime, one per host and port (see the module docstring).

    An async context manager; :meth:`aclose` stops the servers still listening.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._by_address: dict[tuple[str, int], HttpServer] = {}
        self._own_port: set[HttpServer] = set()

    def __repr__(self) -> str:
        return f"<HttpServers {sorted(self._by_address)}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def attach(self, route: Route, *, host: str, port: int) -> HttpServer:
        """Attach ``route`` to the server of ``host``:``port``, starting it if needed.

        Port 0 always gets a server of its own on a free port.

        Raises:
            ConnectorError: another connector holds the path, or the port cannot be bound.
        """
        async with self._lock:
            server = self._by_address.get((host, port)) if port else None
            if server is None:
                server = HttpServer(host, port)
                await server._start()
                if port:
                    self._by_address[(host, port)] = server
                else:
                    self._own_port.add(server)
            if route.path in server.routes:
                holder = server.routes[route.path].name
                raise ConnectorError(
                    f"ingress {route.name!r}: {route.path} on {server.url} is already the route "
                    f"of connector {holder!r}"
                )
            server.routes[route.path] = route
            return server

    async def detach(self, server: HttpServer, route: Route) -> None:
        """Remove ``route`` from ``server``; stop the server when it was the last one."""
        async with self._lock:
            if server.routes.get(route.path) is route:
                del server.routes[route.path]
            if not server.routes:
                if self._by_address.get((server.host, server.port)) is server:
                    del self._by_address[(server.host, server.port)]
                self._own_port.discard(server)
                await server._stop()

    async def aclose(self) -> None:
        """Stop every server still listening. Idempotent."""
        async with self._lock:
            servers = [*self._by_address.values(), *self._own_port]
            self._by_address.clear()
            self._own_port.clear()
            for server in servers:
                await server._stop()


class HttpServer:
    """An aiohttp server dispatching to attached routes (see the module docstring).

    Get one from :meth:`HttpServers.attach` rather than the constructor.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.routes: dict[str, Route] = {}
        self._runner: web.ServerRunner | None = None
        self._bound_port: int | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` the server listens on.

        Raises:
            ConnectorError: the server is not listening.
        """
        if self._bound_port is None:
            raise ConnectorError("the ingress server is not listening")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}"

    async def _start(self) -> None:
        # The low-level server: every request goes to _dispatch (no router is needed), and a
        # connection handler of ours answers what aiohttp cannot parse.
        server = _Server(self._dispatch, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConnectorError(
                f"the webhook ingress cannot listen on {self.host}:{self.port}: {exc}"
            ) from exc
        sockets = [s for s in runner.addresses if isinstance(s, tuple)]
        self._bound_port = int(sockets[0][1]) if sockets else self.port
        self._runner = runner
        log.info("webhook ingress listening on %s", self.url)

    async def _stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("webhook ingress on %s:%s stopped", self.host, self._bound_port)
        self._bound_port = None

    # -- requests --------------------------------------------------------------------------

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        # The catch-all is here rather than in an aiohttp middleware: a middleware chain
        # costs each request a few wrapper calls, on the ingress's hottest path.
        try:
            return await self._route(request)
        except web.HTTPException:
            raise
        except Exception:
            incident = str(uuid.uuid4())
            log.exception("incident %s: %s %s failed", incident, request.method, request.path)
            return problem(500, "the request failed; quote the incident id", incident=incident)

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        route = self.routes.get(path)
        if route is not None:
            if request.method != "POST":
                return problem(405, f"{path} takes POST", headers={"Allow": "POST"})
            return await route.handle(request)
        if path in ("/health", "/openapi.json"):
            if request.method not in ("GET", "HEAD"):
                return problem(405, f"{path} takes GET", headers={"Allow": "GET, HEAD"})
            if path == "/health":
                return self._health()
            return web.json_response(self.openapi())
        return problem(404, f"no route {path}")

    def _health(self) -> web.Response:
        statuses = {route.name: route.health() for route in self.routes.values()}
        healthy = all(s.state is ConnectorState.RUNNING for s in statuses.values())
        body = {
            "status": "ok" if healthy else "degraded",
            "connectors": {
                name: {
                    "state": s.state.value,
                    "records": s.records,
                    "errors": s.errors,
                    "last_error": s.last_error,
                }
                for name, s in sorted(statuses.items())
            },
        }
        return web.json_response(body, status=200 if healthy else 503)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 description of the attached routes and the server's own."""
        return openapi_document(self.url, self.routes.values())


def openapi_document(url: str, routes: Iterable[Route]) -> dict[str, Any]:
    """The OpenAPI document of a server at ``url`` with ``routes`` attached.

    Each route adds its operation's schemas and security schemes to the ``components``
    object it is given.
    """
    components: dict[str, Any] = {"schemas": {}, "securitySchemes": {}}
    paths: dict[str, Any] = {}
    for route in sorted(routes, key=lambda r: r.path):
        paths[route.path] = {"post": route.openapi_operation(components)}
    health = {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string", "enum": ["ok", "degraded"]},
                        "connectors": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "properties": {
                                    "state": {"type": "string"},
                                    "records": {"type": "integer"},
                                    "errors": {"type": "integer"},
                                    "last_error": {"type": ["string", "null"]},
                                },
                            },
                        },
                    },
                    "required": ["status", "connectors"],
                }
            }
        }
    }
    paths["/health"] = {
        "get": {
            "operationId": "health",
            "summary": "State of the ingress connectors",
            "responses": {
                "200": {"description": "Every connector is running.", **health},
                "503": {"description": "A connector is not running.", **health},
            },
        }
    }
    paths["/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "The OpenAPI document of this server.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eventplatform webhook ingress",
            "version": __version__,
            "description": (
                "Events posted here are validated against their Avro contract, published to "
                "Kafka, and answered 202 once Kafka acknowledged them."
            ),
        },
        "servers": [{"url": url}],
        "paths": paths,
        "components": {
            **components,
            "schemas": dict(sorted(components["schemas"].items())),
        },
    }

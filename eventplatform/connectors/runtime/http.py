"""The HTTP server webhook ingress connectors share: one per host and port in a process.

Each :class:`~eventplatform.connectors.webhook_ingress.WebhookIngress` attaches its route
(``POST /hooks/<name>`` by default) to the server of its host and port, starting it when it is
the first and stopping it when the last one detaches. So a deployment's ingress connectors
answer on one port, ``/health`` reports all of them, and ``/openapi.json`` describes all of
their routes. A connector restarting after a failure detaches and attaches again; meanwhile its
route answers 404, the way a route that does not exist does.

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
import weakref
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from eventplatform.connectors.openapi import openapi_document
from eventplatform.connectors.status import ConnectorState, ConnectorStatus
from eventplatform.errors import ConnectorError

__all__ = ["IngressRoute", "IngressServer", "problem"]

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


class IngressRoute(Protocol):
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
        """The OpenAPI operation object of the route, its schemas added to ``components``."""


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


@dataclass(slots=True)
class _Servers:
    """The shared servers of one event loop (a server's sockets belong to its loop)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    by_address: dict[tuple[str, int], IngressServer] = field(default_factory=dict)


_SERVERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Servers] = (
    weakref.WeakKeyDictionary()
)


def _servers() -> _Servers:
    loop = asyncio.get_running_loop()
    found = _SERVERS.get(loop)
    if found is None:
        found = _SERVERS[loop] = _Servers()
    return found


class IngressServer:
    """An aiohttp server dispatching to attached routes (see the module docstring).

    Use :meth:`attach` and :meth:`detach` rather than the constructor.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.routes: dict[str, IngressRoute] = {}
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

    @classmethod
    async def attach(cls, route: IngressRoute, *, host: str, port: int) -> IngressServer:
        """Attach ``route`` to the server of ``host``:``port``, starting it if needed.

        Port 0 always gets a server of its own on a free port.

        Raises:
            ConnectorError: another connector holds the path, or the port cannot be bound.
        """
        shared = _servers()
        async with shared.lock:
            server = shared.by_address.get((host, port)) if port else None
            if server is None:
                server = cls(host, port)
                await server._start()
                if port:
                    shared.by_address[(host, port)] = server
            if route.path in server.routes:
                holder = server.routes[route.path].name
                raise ConnectorError(
                    f"ingress {route.name!r}: {route.path} on {server.url} is already the route "
                    f"of connector {holder!r}"
                )
            server.routes[route.path] = route
            return server

    async def detach(self, route: IngressRoute) -> None:
        """Remove ``route``; stop the server when it was the last one."""
        shared = _servers()
        async with shared.lock:
            if self.routes.get(route.path) is route:
                del self.routes[route.path]
            if not self.routes:
                if shared.by_address.get((self.host, self.port)) is self:
                    del shared.by_address[(self.host, self.port)]
                await self._stop()

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

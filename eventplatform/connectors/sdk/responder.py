"""The request-reply role: a connector that answers requests, publishing what they carry.

A :class:`Responder` serves one HTTP route on a server it shares with the other responders of
its host and port; the webhook ingress is one. Unlike a :class:`~.connector.Source` it has no
generator of records and no source positions: each request publishes its event through the
producer and is answered once the event is durable (or refused), so a retry is the sender's
business, not an offset's. The runtime hands it the shared producer and HTTP servers
(:class:`~eventplatform.connectors.runtime.http.HttpServers`); run on its own, it opens (and
closes) its own.

A subclass implements :meth:`Responder.handle` and :meth:`Responder.openapi_operation` and
sets :attr:`Responder.path`. The route is attached after
:meth:`~.connector.Connector.on_start` and detached before
:meth:`~.connector.Connector.on_stop`, so a request never meets a half-started connector.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Mapping, MutableMapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from aiohttp import web
from pydantic import Field

from eventplatform.connectors.sdk.connector import (
    Connector,
    ConnectorConfig,
    SourceConfig,
    _Lifecycle,
)
from eventplatform.errors import ConnectorError, ResourceStateError
from eventplatform.schema import AvroEvent
from eventplatform.settings import Settings

if TYPE_CHECKING:
    from eventplatform.connectors.runtime.http import HttpServer, HttpServers
    from eventplatform.producer import EventProducer
    from eventplatform.registry.base import SchemaRegistry

__all__ = ["Responder", "ResponderConfig"]

log = logging.getLogger("eventplatform.connectors")


class ResponderConfig(SourceConfig):
    """Settings every request-reply connector has: a source's, and where it listens.

    ``max_batch`` bounds the requests published together; ``max_in_flight`` and ``stop_grace``
    are accepted as a source's are.
    """

    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port; 0 picks a free one.")


ResponderConfigT = TypeVar("ResponderConfigT", bound=ResponderConfig)


class Responder(Connector[ResponderConfigT]):
    """A connector that answers HTTP requests on a shared server; implement :meth:`handle`.

    Its ``role`` is ``source``: what it publishes goes into topics, as a source's records do.

    Args:
        producer: a started :class:`~eventplatform.producer.EventProducer` to share; default
            one opened (and closed) here.
        http: the :class:`~eventplatform.connectors.runtime.http.HttpServers` to attach to;
            default one opened (and closed) here.
        The other arguments are :class:`~.connector.Connector`'s.
    """

    Config: ClassVar[type[ConnectorConfig]] = ResponderConfig
    role: ClassVar[str] = "source"
    resources: ClassVar[frozenset[str]] = Connector.resources | {"producer", "http"}
    #: The route's path, e.g. ``/hooks/orders``; set by the subclass.
    path: str

    def __init__(
        self,
        *,
        name: str,
        config: ResponderConfigT | Mapping[str, Any] | None = None,
        topic: str | None = None,
        event_type: type[AvroEvent] | None = None,
        settings: Settings | None = None,
        bootstrap_servers: str | None = None,
        registry: SchemaRegistry | None = None,
        producer: EventProducer | None = None,
        http: HttpServers | None = None,
    ) -> None:
        super().__init__(
            name=name,
            config=config,
            topic=topic,
            event_type=event_type,
            settings=settings,
            bootstrap_servers=bootstrap_servers,
            registry=registry,
        )
        self._producer = producer
        self._http = http
        self._server: HttpServer | None = None

    @property
    def event_source(self) -> str:
        """The CloudEvents ``source`` of the events: ``/connectors/<name>`` unless configured."""
        return self.config.event_source or f"/connectors/{self.name}"

    @property
    def producer(self) -> EventProducer:
        """The producer events go through.

        Raises:
            ResourceStateError: before :meth:`start`.
        """
        if self._producer is None or self._lifecycle is _Lifecycle.NEW:
            raise ResourceStateError(f"{self!r}: the producer is available after start()")
        return self._producer

    @property
    def url(self) -> str:
        """The full URL of the route.

        Raises:
            ConnectorError: the connector is not listening.
        """
        if self._server is None:
            raise ConnectorError(f"ingress {self.name!r} is not listening")
        return self._server.url + self.path

    @abstractmethod
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one ``POST`` to :attr:`path`."""

    @abstractmethod
    def openapi_operation(self, components: MutableMapping[str, Any]) -> dict[str, Any]:
        """The OpenAPI operation object of the route.

        Its schemas go into ``components["schemas"]``, its security schemes into
        ``components["securitySchemes"]``.
        """

    async def _open(self, stack: AsyncExitStack) -> None:
        await super()._open(stack)
        if self._producer is None:
            from eventplatform.producer import EventProducer  # noqa: PLC0415

            producer = EventProducer(
                bootstrap_servers=self.bootstrap_servers,
                registry=self._registry,
                settings=self.settings,
                source=self.event_source,
            )
            await producer.start()
            stack.push_async_callback(producer.close)
            self._producer = producer
        if self._http is None:
            # Run on its own: the servers are this connector's (the runtime's are shared).
            from eventplatform.connectors.runtime.http import HttpServers  # noqa: PLC0415

            http = HttpServers()
            stack.push_async_callback(http.aclose)
            self._http = http

    async def _started(self, stack: AsyncExitStack) -> None:
        assert self._http is not None  # _open made sure
        self._server = await self._http.attach(self, host=self.config.host, port=self.config.port)
        # Detached first when closing (the stack unwinds in reverse), before on_stop releases
        # what answers the requests: meanwhile the route answers 404.
        stack.push_async_callback(self._detach)
        log.info("%s %s: POST %s%s", type(self).__name__, self.name, self._server.url, self.path)

    async def _detach(self) -> None:
        server, self._server = self._server, None
        if server is not None and self._http is not None:
            await self._http.detach(server, self)

    async def _run(self) -> None:
        # The requests are answered by the server's tasks; running is waiting to be stopped.
        await self._stopping.wait()

"""Connectors: bridges that bring external systems' events into topics and take them out.

Three parts:

- :mod:`~eventplatform.connectors.sdk`, what a connector author imports, re-exported here:
  the roles :class:`Source`, :class:`Sink` and :class:`Responder` (request-reply), their config
  models, :class:`SourceRecord` and :class:`SourcePosition`, the state a connector reports.
- :mod:`~eventplatform.connectors.runtime`: running and supervising connectors
  (:class:`ConnectorRuntime`), the ``connectors/*.toml`` instance files, connector types by
  name (entry points), source positions and statuses in compacted topics, and the HTTP servers
  request-reply connectors share. Its names are also reachable here (loaded on first use, so
  that importing the SDK does not load the runtime).
- :mod:`~eventplatform.connectors.builtin`: the built-in types (webhook ingress and egress,
  PostgreSQL outbox, JSON-lines files, service).
"""

from typing import TYPE_CHECKING, Any

from eventplatform.connectors.sdk import (
    Connector,
    ConnectorConfig,
    ConnectorState,
    ConnectorStats,
    ConnectorStatus,
    Responder,
    ResponderConfig,
    Sink,
    SinkConfig,
    Source,
    SourceConfig,
    SourcePosition,
    SourceRecord,
)

if TYPE_CHECKING:
    from eventplatform.connectors.runtime import (
        Backoff,
        ConnectorRuntime,
        ConnectorSpec,
        OffsetStore,
        StatusStore,
        available,
        load_connector_class,
        load_instance,
        load_instances,
    )

# The runtime's names, importable from here as before the SDK/runtime split (PEP 562).
_RUNTIME = frozenset(
    {
        "Backoff",
        "ConnectorRuntime",
        "ConnectorSpec",
        "OffsetStore",
        "StatusStore",
        "available",
        "load_connector_class",
        "load_instance",
        "load_instances",
    }
)


def __getattr__(name: str) -> Any:
    if name in _RUNTIME:
        from eventplatform.connectors import runtime  # noqa: PLC0415

        return getattr(runtime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Backoff",
    "Connector",
    "ConnectorConfig",
    "ConnectorRuntime",
    "ConnectorSpec",
    "ConnectorState",
    "ConnectorStats",
    "ConnectorStatus",
    "OffsetStore",
    "Responder",
    "ResponderConfig",
    "Sink",
    "SinkConfig",
    "Source",
    "SourceConfig",
    "SourcePosition",
    "SourceRecord",
    "StatusStore",
    "available",
    "load_connector_class",
    "load_instance",
    "load_instances",
]

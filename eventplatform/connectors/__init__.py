"""Connectors: bridges that bring external systems' events into topics and take them out.

- :mod:`~eventplatform.connectors.base`: the seams, :class:`Source` and :class:`Sink`, with
  their config models; :class:`SourceRecord` and :class:`SourcePosition`.
- :mod:`~eventplatform.connectors.offsets`: source positions in a compacted topic.
- :mod:`~eventplatform.connectors.runtime`: several connectors in one process, restarted with
  backoff when they fail; :mod:`~eventplatform.connectors.status` their states.
- :mod:`~eventplatform.connectors.config`: the ``connectors/*.toml`` instance files.
- :mod:`~eventplatform.connectors.plugins`: connector types by name (entry points).
- Built-ins: :mod:`~eventplatform.connectors.webhook_ingress` (HTTP → topic),
  :mod:`~eventplatform.connectors.outbox` (PostgreSQL outbox → topics),
  :mod:`~eventplatform.connectors.files` (JSON-lines file → topic),
  :mod:`~eventplatform.connectors.webhook_egress` (topic → subscriber URLs, Standard
  Webhooks), :mod:`~eventplatform.connectors.file_sink` (topic → JSON-lines file), and
  :mod:`eventplatform.demo.receiver` (a signature-checking receiver for the demo).
"""

from eventplatform.connectors.base import (
    Connector,
    ConnectorConfig,
    Sink,
    SinkConfig,
    Source,
    SourceConfig,
)
from eventplatform.connectors.config import ConnectorSpec, load_instance, load_instances
from eventplatform.connectors.offsets import OffsetStore
from eventplatform.connectors.plugins import available, load_connector_class
from eventplatform.connectors.records import SourcePosition, SourceRecord
from eventplatform.connectors.runtime import Backoff, ConnectorRuntime
from eventplatform.connectors.status import (
    ConnectorState,
    ConnectorStats,
    ConnectorStatus,
    StatusStore,
)

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

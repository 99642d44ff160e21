"""The connector SDK: what a connector author imports (also as :mod:`eventplatform.connectors`).

- :mod:`~eventplatform.connectors.sdk.connector`: the roles :class:`Source` (yields records)
  and :class:`Sink` (receives events), their base :class:`Connector`, and their config models.
- :mod:`~eventplatform.connectors.sdk.responder`: the request-reply role :class:`Responder`
  (answers HTTP requests, publishing what they carry; the webhook ingress is one).
- :mod:`~eventplatform.connectors.sdk.records`: :class:`SourceRecord` and its
  :class:`SourcePosition`.
- :mod:`~eventplatform.connectors.sdk.status`: the state and counters a connector reports.
- :mod:`~eventplatform.connectors.sdk.payloads`: JSON into typed events, with JSONPath errors;
  :mod:`~eventplatform.connectors.sdk.deadletters`: input that cannot become an event, set
  aside.

Nothing here imports the runtime at import time; a connector run on its own opens what the
runtime would otherwise hand it (producer, offsets store, HTTP servers) when it starts.
"""

from eventplatform.connectors.sdk.connector import (
    Connector,
    ConnectorConfig,
    Sink,
    SinkConfig,
    Source,
    SourceConfig,
)
from eventplatform.connectors.sdk.records import SourcePosition, SourceRecord
from eventplatform.connectors.sdk.responder import Responder, ResponderConfig
from eventplatform.connectors.sdk.status import ConnectorState, ConnectorStats, ConnectorStatus

__all__ = [
    "Connector",
    "ConnectorConfig",
    "ConnectorState",
    "ConnectorStats",
    "ConnectorStatus",
    "Responder",
    "ResponderConfig",
    "Sink",
    "SinkConfig",
    "Source",
    "SourceConfig",
    "SourcePosition",
    "SourceRecord",
]

"""Webhook egress: events of a topic POSTed to subscriber URLs, signed, retried, recorded.

- :mod:`~eventplatform.connectors.builtin.egress.connector`: the connector.
- :mod:`~eventplatform.connectors.builtin.egress.endpoints`: each endpoint's queue,
  worker and state; :mod:`~eventplatform.connectors.builtin.egress.deliveries` what is
  sent, when it is tried again, and what is recorded.
- :mod:`~eventplatform.connectors.builtin.egress.destinations`: the SSRF guard.
- :mod:`~eventplatform.connectors.builtin.egress.watermarks`: committable offsets of
  events that settle out of order.
"""

from eventplatform.connectors.builtin.egress.connector import (
    WebhookEgress,
    WebhookEgressConfig,
)

__all__ = ["WebhookEgress", "WebhookEgressConfig"]

"""Webhook ingress: JSON events posted over HTTP, validated, published, then answered.

- :mod:`~eventplatform.connectors.builtin.ingress.connector`: the connector.
- :mod:`~eventplatform.connectors.builtin.ingress.answers`: answers kept for retries
  with an idempotency key.
- :mod:`~eventplatform.connectors.builtin.ingress.openapi`: each route's OpenAPI
  operation; :mod:`~eventplatform.connectors.builtin.ingress.jsonschema` the JSON
  Schema of an event, which bodies are checked against.
"""

from eventplatform.connectors.builtin.ingress.connector import (
    WebhookIngress,
    WebhookIngressConfig,
)

__all__ = ["WebhookIngress", "WebhookIngressConfig"]

"""The built-in connector types, registered by name in the ``eventplatform.connectors`` group.

- :mod:`~eventplatform.connectors.builtin.ingress` (``webhook-ingress``): HTTP → topic.
- :mod:`~eventplatform.connectors.builtin.egress` (``webhook-egress``): topic →
  subscriber URLs, Standard Webhooks.
- :mod:`~eventplatform.connectors.builtin.outbox` (``postgres-outbox``): PostgreSQL outbox →
  topics.
- :mod:`~eventplatform.connectors.builtin.files` (``file-source``, ``file-sink``): JSON-lines
  files in and out.
- :mod:`~eventplatform.connectors.builtin.service` (``service``): a deployment's own EventApp.
- :mod:`~eventplatform.connectors.builtin.webhooks`: Standard Webhooks signatures, which the
  ingress verifies and the egress makes.

:mod:`eventplatform.demo.receiver` (``demo-receiver``) is a signature-checking receiver for the
demo.
"""

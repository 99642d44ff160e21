"""The OpenAPI 3.1 description of the webhook ingress, generated from its routes and schemas.

Each route's request body is the JSON Schema of its event, derived from the event's Avro
contract (:mod:`eventplatform.connectors.jsonschema`); named Avro types become
``#/components/schemas`` entries under their full names. The security requirements say what
each route checks: a Standard Webhooks signature, an API key (``X-API-Key`` or a bearer
token), or both; the responses list every answer the route gives.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

from eventplatform.__about__ import __version__
from eventplatform.connectors.jsonschema import event_json_schema
from eventplatform.schema import AvroEvent

if TYPE_CHECKING:
    from eventplatform.connectors.ingress_server import IngressRoute

__all__ = ["openapi_document", "route_operation"]

_PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Schema violations (422).",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "JSONPath of the value."},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}
_SECURITY_SCHEMES = {
    "standardWebhooks": {
        "type": "apiKey",
        "in": "header",
        "name": "webhook-signature",
        "description": (
            "Standard Webhooks: v1,base64(HMAC-SHA256(secret, "
            "'<webhook-id>.<webhook-timestamp>.<body>')), with the webhook-id and "
            "webhook-timestamp headers; several space-separated signatures are allowed."
        ),
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "bearer": {"type": "http", "scheme": "bearer"},
}


def openapi_document(url: str, routes: Iterable[IngressRoute]) -> dict[str, Any]:
    """The OpenAPI document of a server at ``url`` with ``routes`` attached."""
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for route in sorted(routes, key=lambda r: r.path):
        paths[route.path] = {"post": route.openapi_operation(components)}
    paths["/health"] = {
        "get": {
            "operationId": "health",
            "summary": "State of the ingress connectors",
            "responses": {
                "200": {"description": "Every connector is running."},
                "503": {"description": "A connector is not running."},
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
            "schemas": dict(sorted(components.items())),
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }


def _header(name: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


def route_operation(
    *,
    name: str,
    topic: str,
    event_type: type[AvroEvent],
    signed: bool,
    keyed: bool,
    max_body_bytes: int,
    components: MutableMapping[str, Any],
) -> dict[str, Any]:
    """The operation object of one ingress route; its schemas are added to ``components``.

    Raises:
        SchemaError: the event class has no valid Avro schema.
    """
    components.setdefault("Problem", _PROBLEM)
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}

    def answer(description: str) -> dict[str, Any]:
        return {"description": description, "content": problem}

    parameters = [
        _header("Idempotency-Key", "Makes retries safe: a repeat is answered, not published."),
        _header("traceparent", "W3C Trace Context, passed on to the event."),
    ]
    if signed:
        parameters[:0] = [
            _header("webhook-id", "Standard Webhooks message id.", required=True),
            _header("webhook-timestamp", "Unix seconds of the signing.", required=True),
            _header("webhook-signature", "v1,<base64 HMAC-SHA256>.", required=True),
        ]
    signature: dict[str, list[str]] = {"standardWebhooks": []} if signed else {}
    if keyed:
        security = [{**signature, "apiKey": []}, {**signature, "bearer": []}]
    else:
        security = [signature] if signature else []
    event_name = event_type.__avro_name__
    operation: dict[str, Any] = {
        "operationId": "publish_" + name.replace("-", "_").replace(".", "_"),
        "summary": f"Publish a {event_name.rpartition('.')[2]} to topic {topic}",
        "description": (event_type.__doc__ or event_name).strip(),
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": event_json_schema(event_type, components)}},
        },
        "responses": {
            "202": {
                "description": "Accepted: the event is durable in Kafka.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"id": {"type": "string", "format": "uuid"}},
                            "required": ["id"],
                        }
                    }
                },
            },
            "400": answer("Malformed JSON or Idempotency-Key."),
            "401": answer("Missing or invalid API key or signature."),
            "413": answer(f"Body larger than {max_body_bytes} bytes."),
            "415": answer("Not application/json."),
            "422": answer("The event does not fit its schema (see errors)."),
            "429": answer("Too many requests waiting for Kafka; see Retry-After."),
            "503": answer("Kafka is unavailable; see Retry-After."),
        },
    }
    if security:
        operation["security"] = security
    return operation

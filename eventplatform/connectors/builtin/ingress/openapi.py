"""The OpenAPI 3.1 description of the webhook ingress, generated from its routes and schemas.

Each route's request body is the JSON Schema of its event, derived from the event's Avro
contract (:mod:`~.jsonschema`); named Avro types become
``#/components/schemas`` entries under their full names. The security requirements say what
each route checks: a Standard Webhooks signature, an API key (``X-API-Key`` or a bearer
token), or both; the responses list every answer the route gives, with their headers. Each
header parameter states exactly what the route accepts (``pattern``), since the route answers
400 or 401 to anything else; the test suite holds the server to the document with
Schemathesis.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

from eventplatform.connectors.builtin.ingress.jsonschema import event_json_schema
from eventplatform.connectors.builtin.webhooks import (
    MAX_ID_LENGTH,
    MESSAGE_ID_PATTERN,
    TIMESTAMP_PATTERN,
)
from eventplatform.schema import AvroEvent

__all__ = ["SECURITY_SCHEMES", "TRACEPARENT", "route_operation"]

#: A W3C Trace Context ``traceparent`` (version-format, §3.2.2); others are not passed on.
TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

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
            "description": "What does not fit (422): each value's JSONPath and the reason.",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "JSONPath of the value."},
                    "reason": {"type": "string"},
                },
                "required": ["path", "reason"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}
_PROBLEM_CONTENT = {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
#: The ``securitySchemes`` the routes' operations refer to.
SECURITY_SCHEMES = {
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


def _header(
    name: str, description: str, *, required: bool = False, **schema: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string", **schema},
    }


def _message_id(name: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return _header(
        name,
        description,
        required=required,
        minLength=1,
        maxLength=MAX_ID_LENGTH,
        pattern=MESSAGE_ID_PATTERN,
    )


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

    def answer(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
        found: dict[str, Any] = {"description": description, "content": _PROBLEM_CONTENT}
        if headers:
            found["headers"] = headers
        return found

    parameters = [
        _header(
            "traceparent",
            "W3C Trace Context, passed on to the event when well-formed (a malformed one is "
            "ignored, as the W3C recommendation asks).",
        )
    ]
    if signed:
        # A signed route's key is the webhook-id; an Idempotency-Key is not read there.
        parameters[:0] = [
            _message_id(
                "webhook-id",
                "Standard Webhooks message id; a retry with the same id is answered, not "
                "published again.",
                required=True,
            ),
            _header(
                "webhook-timestamp",
                "Unix seconds of the signing; refused when too far from the server's clock.",
                required=True,
                pattern=TIMESTAMP_PATTERN,
            ),
            _header(
                "webhook-signature",
                "Space-separated v1,<base64 HMAC-SHA256> signatures (Standard Webhooks).",
                required=True,
            ),
        ]
    else:
        parameters[:0] = [
            _message_id(
                "Idempotency-Key",
                "Makes retries safe: a repeat with the same body is answered 202 again, not "
                "published; with another body it is answered 422. Taken as sent (quotes "
                "included).",
            )
        ]
    unauthorized = (
        {
            "WWW-Authenticate": {
                "description": "Sent when the API key is missing or wrong.",
                "schema": {"type": "string"},
            }
        }
        if keyed
        else None
    )
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
            "description": (
                f"The event, as UTF-8 JSON of at most {max_body_bytes} bytes "
                "(application/*+json is taken as well)."
            ),
            "content": {"application/json": {"schema": event_json_schema(event_type, components)}},
        },
        "responses": {
            "202": {
                "description": "Accepted: the event is durable in Kafka.",
                "headers": {
                    "Idempotent-Replayed": {
                        "description": "Sent on the answer to a repeated idempotency key.",
                        "schema": {"type": "string", "enum": ["true"]},
                    }
                },
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
            "401": answer("Missing or invalid API key or signature.", unauthorized),
            "413": answer(f"Body larger than {max_body_bytes} bytes."),
            "415": answer("Not application/json (or application/*+json) in UTF-8."),
            "422": answer(
                "The event does not fit the request body's schema, or a value cannot be "
                "encoded in its Avro type (see errors); or the idempotency key was used for "
                "another body."
            ),
            "429": answer("Too many requests waiting for Kafka.", _RETRY_AFTER),
            "503": answer("Kafka is unavailable.", _RETRY_AFTER),
        },
    }
    if security:
        operation["security"] = security
    return operation

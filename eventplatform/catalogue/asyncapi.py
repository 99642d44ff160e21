"""The AsyncAPI 3.0 document of an event catalogue.

The mapping (AsyncAPI 3.0.0, https://www.asyncapi.com/docs/reference/specification/v3.0.0):

- **servers**: the Kafka cluster of the settings (``kafka``, or ``kafka-secure`` over TLS, with
  the Kafka server binding naming the schema registry), and one ``http`` server per webhook
  ingress address, secured by the schemes its routes accept;
- **channels**: one per topic, address = topic name, its messages = the event types it carries;
- **messages** (``components.messages``): one per event type, the payload its Avro schema as
  a Multi Format Schema Object (``application/vnd.apache.avro+json;version=1.9.0``), the
  headers the CloudEvents Kafka protocol binding (binary mode) puts on every record, as JSON
  Schema, the correlation id ``ce_id``, a Kafka message binding (Confluent framing: the schema
  id in the payload) and an example;
- **operations**: ``send`` for what writes a topic (webhook ingress routes, sources), with the
  security schemes of the route, ``receive`` for what reads one (apps' handlers, webhook egress,
  file sinks), with the consumer group in the Kafka operation binding;
- **securitySchemes**: the ingress's API key (``X-API-Key`` or a bearer token), the Standard
  Webhooks signature, and the cluster's SASL mechanism.

Avro schemas are written in the spec's own form for the payload (short ``name`` plus
``namespace``), as AsyncAPI's Avro schema definition requires, rather than the normalised
full names the registry holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventplatform.catalogue.model import EventCatalogue, EventTypeView, Participant, WebhookRoute
from eventplatform.serde.subjects import SubjectNameStrategy

__all__ = ["AVRO_SCHEMA_FORMAT", "ASYNCAPI_VERSION", "asyncapi_document", "avro_spec_form"]

ASYNCAPI_VERSION = "3.0.0"
#: AsyncAPI 3.0 Multi Format Schema Object: Avro 1.9.0 in JSON (the ``.avsc`` form).
AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
_KAFKA_BINDING = "0.5.0"
_HEADERS_SCHEMA = "CloudEventsHeaders"
_STRATEGY_CLASSES = {
    SubjectNameStrategy.TOPIC: "TopicNameStrategy",
    SubjectNameStrategy.RECORD: "RecordNameStrategy",
    SubjectNameStrategy.TOPIC_RECORD: "TopicRecordNameStrategy",
}
# AsyncAPI security scheme types of the SASL mechanisms settings accept.
_SASL_SCHEMES = {"PLAIN": "plain", "SCRAM-SHA-256": "scramSha256", "SCRAM-SHA-512": "scramSha512"}

# CloudEvents Kafka protocol binding, binary content mode (CloudEvents 1.0, kafka-protocol-
# binding.md §3.2): each attribute a ``ce_`` header, ``datacontenttype`` as ``content-type``;
# ``ce_idempotencykey`` is eventplatform's extension attribute, ``traceparent`` W3C Trace Context.
_CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": (
        "CloudEvents attributes in Kafka headers (CloudEvents Kafka protocol binding, binary "
        "content mode); values are UTF-8."
    ),
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0", "description": "CloudEvents 1.0."},
        "ce_id": {
            "type": "string",
            "description": "Event id, unique per source; the default idempotency key.",
        },
        "ce_source": {"type": "string", "format": "uri-reference", "description": "Producer."},
        "ce_type": {"type": "string", "description": "The Avro full name of the event type."},
        "ce_time": {
            "type": "string",
            "format": "date-time",
            "description": "When the event happened (RFC 3339).",
        },
        "ce_subject": {"type": "string", "description": "What the event is about, optional."},
        "ce_idempotencykey": {
            "type": "string",
            "description": "Consumers apply the event once per key; default ce_id.",
        },
        "content-type": {
            "type": "string",
            "const": "application/avro",
            "description": "Confluent wire format: 0x00, 4-byte schema id, Avro binary.",
        },
        "traceparent": {
            "type": "string",
            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "W3C Trace Context, when the producer was traced.",
        },
        "tracestate": {"type": "string", "description": "W3C Trace Context vendor state."},
    },
}
_SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiKey": {
        "type": "httpApiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of the route's API keys (settings.api_keys).",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key as a bearer token: Authorization: Bearer <key>.",
    },
    "standardWebhooks": {
        "type": "httpApiKey",
        "in": "header",
        "name": "webhook-signature",
        "description": (
            "Standard Webhooks: v1,base64(HMAC-SHA256(secret, "
            "'<webhook-id>.<webhook-timestamp>.<body>')) with the webhook-id and "
            "webhook-timestamp headers (settings.signing_secrets, whsec_…)."
        ),
    },
}


def asyncapi_document(
    catalogue: EventCatalogue, *, registry_url: str | None = None
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``catalogue``, as JSON-ready data.

    Args:
        catalogue: the catalogue.
        registry_url: the schema registry's REST URL, named in the Kafka server binding.
    """
    messages = {_key(event.full_name): _message(event, catalogue) for event in catalogue.events}
    schemes = _security_schemes(catalogue)
    servers = _servers(catalogue, registry_url, schemes)
    channels: dict[str, Any] = {}
    for topic, names in catalogue.topics.items():
        channel: dict[str, Any] = {
            "address": topic,
            "title": topic,
            "description": _channel_description(catalogue, topic),
            "messages": {
                _key(name): {"$ref": f"#/components/messages/{_key(name)}"} for name in names
            },
            "bindings": {"kafka": {"topic": topic, "bindingVersion": _KAFKA_BINDING}},
        }
        if "kafka" in servers:
            channel["servers"] = [{"$ref": "#/servers/kafka"}]
        channels[_key(topic)] = channel
    operations: dict[str, Any] = {}
    for participant in catalogue.participants:
        operation_id = participant.operation_id
        while operation_id in operations:  # two handlers of one function name on one topic
            operation_id += "_"
        operations[operation_id] = _operation(participant, catalogue)
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": catalogue.title,
            "version": catalogue.version,
            "description": _info_description(catalogue),
        },
        "defaultContentType": "application/avro",
    }
    if servers:
        document["servers"] = servers
    document["channels"] = channels
    document["operations"] = operations
    components: dict[str, Any] = {
        "schemas": {_HEADERS_SCHEMA: _CLOUDEVENTS_HEADERS},
        "messages": messages,
    }
    if schemes:
        components["securitySchemes"] = schemes
    document["components"] = components
    return document


def avro_spec_form(schema: Any, namespace: str = "") -> Any:
    """``schema`` with every full name split into a short ``name`` and its ``namespace``.

    The catalogue holds normalised schemas (full names everywhere); AsyncAPI's Avro schema
    definition takes names as the Avro specification writes them in a ``.avsc``. A name in the
    enclosing namespace is written short; a named type of the null namespace inside a
    namespaced one gets ``"namespace": ""`` (Avro spec, "Names").
    """
    if isinstance(schema, str):
        space, _, name = schema.rpartition(".")
        return name if space and space == namespace else schema
    if isinstance(schema, list):
        return [avro_spec_form(branch, namespace) for branch in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = dict(schema)
    kind = schema.get("type")
    inner = namespace
    if kind in ("record", "error", "enum", "fixed") and "name" in schema:
        space, _, name = str(schema["name"]).rpartition(".")
        out["name"] = name
        if space != namespace or "namespace" in schema:
            out["namespace"] = space
        elif "namespace" in out:
            del out["namespace"]
        inner = space
        if "aliases" in schema:
            out["aliases"] = [avro_spec_form(str(alias), space) for alias in schema["aliases"]]
    if "fields" in schema:
        out["fields"] = [
            {**item, "type": avro_spec_form(item["type"], inner)} for item in schema["fields"]
        ]
    if kind == "array":
        out["items"] = avro_spec_form(schema["items"], inner)
    elif kind == "map":
        out["values"] = avro_spec_form(schema["values"], inner)
    elif isinstance(kind, list | Mapping):
        out["type"] = avro_spec_form(kind, inner)
    return out


def _key(name: str) -> str:
    """A component key (``^[\\w\\d.\\-_]+$``) for a topic or event name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _message(event: EventTypeView, catalogue: EventCatalogue) -> dict[str, Any]:
    strategy = SubjectNameStrategy(catalogue.subject_strategy)
    message: dict[str, Any] = {
        "name": event.full_name,
        "title": event.name,
        "contentType": "application/avro",
        "headers": {
            "allOf": [
                {"$ref": f"#/components/schemas/{_HEADERS_SCHEMA}"},
                {"properties": {"ce_type": {"const": event.full_name}}},
            ]
        },
        "payload": {"schemaFormat": AVRO_SCHEMA_FORMAT, "schema": avro_spec_form(event.schema)},
        "correlationId": {
            "description": "The CloudEvents id.",
            "location": "$message.header#/ce_id",
        },
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The partitioning key (optional)."},
                "schemaIdLocation": "payload",
                "schemaIdPayloadEncoding": "confluent",
                "schemaLookupStrategy": _STRATEGY_CLASSES[strategy],
                "bindingVersion": _KAFKA_BINDING,
            }
        },
        "examples": [
            {
                "name": "example",
                "summary": f"An example {event.name}",
                "headers": {
                    "ce_specversion": "1.0",
                    "ce_id": "7e3ab2b0-5d0e-4a53-9a55-2f4e3b5f4c11",
                    "ce_source": f"/topics/{event.topics[0]}" if event.topics else "/example",
                    "ce_type": event.full_name,
                    "ce_time": "2026-05-01T12:00:00Z",
                    "content-type": "application/avro",
                },
                "payload": event.example,
            }
        ],
    }
    if event.doc:
        message["summary"] = event.doc
    if event.namespace:
        message["tags"] = [{"name": event.namespace}]
    return message


def _operation(participant: Participant, catalogue: EventCatalogue) -> dict[str, Any]:
    topic = participant.topic
    names = [n for n in catalogue.topics.get(topic, ()) if participant.takes(n)]
    verb = "Publishes to" if participant.action == "send" else "Consumes"
    operation: dict[str, Any] = {
        "action": participant.action,
        "channel": {"$ref": f"#/channels/{_key(topic)}"},
        "title": f"{participant.name} ({participant.kind})",
        "summary": f"{verb} {topic}",
    }
    if participant.detail:
        operation["description"] = participant.detail
    if names:
        operation["messages"] = [
            {"$ref": f"#/channels/{_key(topic)}/messages/{_key(name)}"} for name in names
        ]
    if participant.group_id:
        operation["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "enum": [participant.group_id]},
                "bindingVersion": _KAFKA_BINDING,
            }
        }
    route = next(
        (r for r in catalogue.routes if r.connector == participant.name),
        None,
    )
    if route is not None and participant.kind == "webhook-ingress":
        security = [{"$ref": f"#/components/securitySchemes/{s}"} for s in _route_schemes(route)]
        if security:
            operation["security"] = security
    return operation


def _route_schemes(route: WebhookRoute) -> list[str]:
    schemes = []
    if route.signed:
        schemes.append("standardWebhooks")
    if route.api_key:
        schemes += ["apiKey", "bearer"]
    return schemes


def _security_schemes(catalogue: EventCatalogue) -> dict[str, Any]:
    used = {s for route in catalogue.routes for s in _route_schemes(route)}
    schemes = {name: scheme for name, scheme in _SECURITY_SCHEMES.items() if name in used}
    mechanism = catalogue.sasl_mechanism
    if mechanism in _SASL_SCHEMES and catalogue.security_protocol.startswith("SASL"):
        schemes["kafkaSasl"] = {
            "type": _SASL_SCHEMES[mechanism],
            "description": f"SASL {mechanism} (settings kafka.sasl_username / sasl_password).",
        }
    return schemes


def _servers(
    catalogue: EventCatalogue, registry_url: str | None, schemes: Mapping[str, Any]
) -> dict[str, Any]:
    servers: dict[str, Any] = {}
    if catalogue.bootstrap_servers:
        first, *others = [s.strip() for s in catalogue.bootstrap_servers.split(",") if s.strip()]
        secure = catalogue.security_protocol in ("SSL", "SASL_SSL")
        kafka: dict[str, Any] = {
            "host": first,
            "protocol": "kafka-secure" if secure else "kafka",
            "title": "Kafka",
            "description": "The Kafka cluster"
            + (f"; other bootstrap servers: {', '.join(others)}" if others else "")
            + ".",
        }
        binding: dict[str, Any] = {"bindingVersion": _KAFKA_BINDING}
        if registry_url:
            binding |= {"schemaRegistryUrl": registry_url, "schemaRegistryVendor": "confluent"}
        kafka["bindings"] = {"kafka": binding}
        if "kafkaSasl" in schemes:
            kafka["security"] = [{"$ref": "#/components/securitySchemes/kafkaSasl"}]
        servers["kafka"] = kafka
    for route in catalogue.routes:
        host = route.url.split("://", 1)[1].split("/", 1)[0]
        key = _key(f"ingress-{host}")
        server = servers.setdefault(
            key,
            {
                "host": host,
                "protocol": "http",
                "title": f"Webhook ingress at {host}",
                "description": "POST /hooks/<route> takes one JSON event (see the ingress "
                "OpenAPI document at /openapi.json).",
            },
        )
        refs = server.setdefault("security", [])
        for scheme in _route_schemes(route):
            ref = {"$ref": f"#/components/securitySchemes/{scheme}"}
            if ref not in refs:
                refs.append(ref)
        if not refs:
            del server["security"]
    return servers


def _channel_description(catalogue: EventCatalogue, topic: str) -> str:
    names = catalogue.topics.get(topic, ())
    carried = ", ".join(n.rpartition(".")[2] for n in names) or "records of unnamed types"
    return f"Kafka topic {topic}: {carried}."


def _info_description(catalogue: EventCatalogue) -> str:
    lines = [
        "The events of this eventplatform deployment: Avro records in Confluent's wire format "
        "with CloudEvents headers (Kafka protocol binding, binary mode).",
        "",
        f"- {len(catalogue.events)} event types on {len(catalogue.topics)} topics",
        f"- subjects by {_STRATEGY_CLASSES[SubjectNameStrategy(catalogue.subject_strategy)]}",
    ]
    if catalogue.registry.note:
        lines.append(f"- {catalogue.registry.note}")
    return "\n".join(lines)

"""What the event catalogue shows: the event types of a deployment and who moves them.

:func:`describe_deployment` gathers it from the deployment's own descriptions, through their
loaders: the schema catalogue (``schemas/``, :func:`~eventplatform.schema.load_catalogue`),
the connector instances (``connectors/*.toml``, :func:`~eventplatform.connectors.runtime.instances.\
load_instances`) and the :class:`~eventplatform.app.EventApp` objects of the apps that join the
platform (their handler routes). It does no I/O beyond what those loaders did;
:func:`add_registry_versions` then asks a schema registry for each event type's subjects,
versions and compatibility level.

A *participant* is anything that sends records of an event type to a topic (a webhook ingress
route, a file or outbox source) or receives them (an app's handler, a webhook egress, a file
sink). An event type's topics are the topics some participant names it on; who publishes and
consumes it follows from the participants of those topics.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from eventplatform.__about__ import __version__
from eventplatform.catalogue.examples import example_value
from eventplatform.errors import RegistryError, SchemaNotFound, SubjectNotFound
from eventplatform.schema import AvroEvent, Catalogue
from eventplatform.serde.subjects import SubjectNameStrategy, subject_name

if TYPE_CHECKING:
    from eventplatform.app import EventApp
    from eventplatform.connectors.runtime.instances import ConnectorSpec
    from eventplatform.registry.base import SchemaRegistry

__all__ = [
    "EventCatalogue",
    "EventTypeView",
    "FieldView",
    "Participant",
    "RegistryView",
    "SubjectVersions",
    "WebhookRoute",
    "add_registry_versions",
    "describe_deployment",
]

Action = Literal["send", "receive"]


@dataclass(frozen=True, slots=True)
class FieldView:
    """One field of an event type or of a record inside it.

    Attributes:
        record: the full name of the record the field belongs to.
        name: the field name.
        type: the Avro type as people read it (``array<LineItem>``, ``null | string``).
        logical_type: the logical type (``uuid``, ``decimal(10, 2)``), if any.
        doc: the field's doc.
        default: the default as JSON text; None when the field has none (it is required).
        symbols: the symbols of an enum type.
    """

    record: str
    name: str
    type: str
    logical_type: str | None
    doc: str
    default: str | None
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Participant:
    """A connector instance or an app handler that sends to or receives from a topic.

    Attributes:
        name: the connector instance or the app.
        kind: the connector type (``webhook-ingress``, ``file-sink``, …) or ``app``.
        action: ``send`` (it writes the topic) or ``receive`` (it reads it).
        topic: the topic.
        patterns: the event types it takes or writes: full names, ``prefix.*`` or ``*``
            (every type on the topic).
        group_id: the consumer group of a receiver.
        handler: the handler's dotted name (apps).
        detail: a line saying what it does, for people.
    """

    name: str
    kind: str
    action: Action
    topic: str
    patterns: tuple[str, ...]
    group_id: str | None = None
    handler: str | None = None
    detail: str = ""

    @property
    def operation_id(self) -> str:
        """An AsyncAPI operation id: ``<name>.<handler function>`` or ``<name>.<action>``."""
        last = self.handler.rpartition(".")[2] if self.handler else self.action
        return _identifier(f"{self.name}.{last}.{self.topic}")

    def takes(self, event_type: str) -> bool:
        """Whether it sends or receives ``event_type`` (a full name)."""
        return any(_matches(pattern, event_type) for pattern in self.patterns)


@dataclass(frozen=True, slots=True)
class WebhookRoute:
    """A webhook ingress route: HTTP POSTs of JSON events that become records of a topic.

    Attributes:
        connector: the ingress instance.
        url: ``http://host:port/path`` as configured.
        topic, event_type: where the events go, and their type (full name).
        api_key: it takes ``X-API-Key`` / ``Authorization: Bearer``.
        signed: it takes Standard Webhooks signatures.
        anonymous: it also takes requests with neither.
        api_key_variable, secret_variable: the environment variable the instance file reads
            the key (or signing secret) from, when it does; never the value.
        source: the instance file.
    """

    connector: str
    url: str
    topic: str
    event_type: str
    api_key: bool
    signed: bool
    anonymous: bool = False
    api_key_variable: str | None = None
    secret_variable: str | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class SubjectVersions:
    """A registry subject of an event type.

    Attributes:
        subject: the subject name.
        versions: its versions, ascending.
        latest_id: the schema id of its latest version.
        compatibility: its effective compatibility level.
        file_version: the version that holds the catalogue file's schema; None when the file
            is not registered under the subject (a change not yet registered).
    """

    subject: str
    versions: tuple[int, ...]
    latest_id: int | None
    compatibility: str | None
    file_version: int | None


@dataclass(frozen=True, slots=True)
class RegistryView:
    """Where the versions shown come from.

    Attributes:
        consulted: True when a registry answered; False when the page shows the catalogue
            files alone.
        url: the registry's URL (or Kafka-log topic), without credentials.
        note: why no registry was consulted, or what answered.
    """

    consulted: bool
    url: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class EventTypeView:
    """One event type and everything the catalogue says about it.

    Attributes:
        full_name: the Avro full name (the CloudEvents ``type``).
        doc: the record's doc.
        schema: the normalised, self-contained Avro schema.
        source: the ``.avsc`` file, or the Python class it came from.
        fields: the record's fields, then those of the records inside it.
        example: an example value in the JSON form the ingress accepts.
        topics: the topics that carry it.
        publishers, consumers: who sends it to those topics and who receives it there.
        routes: the webhook ingress routes that accept it.
        subjects: its registry subjects (empty when no registry was consulted).
    """

    full_name: str
    doc: str
    schema: dict[str, Any]
    source: str
    fields: tuple[FieldView, ...]
    example: Any
    topics: tuple[str, ...] = ()
    publishers: tuple[Participant, ...] = ()
    consumers: tuple[Participant, ...] = ()
    routes: tuple[WebhookRoute, ...] = ()
    subjects: tuple[SubjectVersions, ...] = ()

    @property
    def name(self) -> str:
        """The short name."""
        return self.full_name.rpartition(".")[2]

    @property
    def namespace(self) -> str:
        """The namespace ('' for the null namespace)."""
        return self.full_name.rpartition(".")[0]


@dataclass(frozen=True, slots=True)
class EventCatalogue:
    """The event catalogue of a deployment.

    Attributes:
        title: the catalogue's title.
        version: the document version (the eventplatform version by default).
        events: every event type, sorted by full name.
        topics: each topic and the event types it carries, sorted by topic.
        participants: every sender and receiver.
        routes: every webhook ingress route.
        bootstrap_servers: the Kafka cluster, if configured.
        security_protocol, sasl_mechanism: how clients connect to it.
        subject_strategy: how serializers name subjects (settings.registry.subject_strategy).
        registry: where versions come from.
    """

    title: str
    version: str
    events: tuple[EventTypeView, ...]
    topics: Mapping[str, tuple[str, ...]]
    participants: tuple[Participant, ...]
    routes: tuple[WebhookRoute, ...]
    bootstrap_servers: str | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    subject_strategy: str = SubjectNameStrategy.TOPIC.value
    registry: RegistryView = field(default_factory=lambda: RegistryView(consulted=False))

    def event(self, full_name: str) -> EventTypeView:
        """The event type of ``full_name``.

        Raises:
            KeyError: no such event type.
        """
        for event in self.events:
            if event.full_name == full_name:
                return event
        raise KeyError(full_name)


def describe_deployment(
    *,
    catalogue: Catalogue | None,
    specs: Sequence[ConnectorSpec] = (),
    apps: Sequence[EventApp] = (),
    title: str = "Event catalogue",
    version: str | None = None,
    bootstrap_servers: str | None = None,
    security_protocol: str = "PLAINTEXT",
    sasl_mechanism: str | None = None,
    subject_strategy: str = SubjectNameStrategy.TOPIC.value,
    registry: RegistryView | None = None,
) -> EventCatalogue:
    """The catalogue of a deployment, from its schemas, connectors and apps.

    Args:
        catalogue: the loaded schema catalogue (its records are the event types).
        specs: the connector instances.
        apps: the apps whose handlers consume events.
        title, version: the catalogue's title and version.
        bootstrap_servers: the Kafka cluster, shown as the server.
        security_protocol, sasl_mechanism: how clients connect to it.
        subject_strategy: ``topic``, ``record`` or ``topic_record``.
        registry: where versions come from; default: not consulted.

    Raises:
        SchemaError: an event class has no valid Avro schema.
    """
    if version is None:
        version = __version__
    schemas: dict[str, tuple[dict[str, Any], str]] = {}
    if catalogue is not None:
        for entry in catalogue:
            if entry.kind == "record":
                # Relative to the catalogue's folder: the page is published, local paths not.
                where = Path(catalogue.root.name) / entry.path.relative_to(catalogue.root)
                schemas[entry.full_name] = (entry.resolved, where.as_posix())
    participants: list[Participant] = []
    routes: list[WebhookRoute] = []
    for spec in specs:
        if spec.event_type is not None:
            _add_class(schemas, spec.event_type)
        participant = _connector_participant(spec)
        if participant is not None:
            participants.append(participant)
        if spec.type_name == "webhook-ingress" and spec.event_type is not None and spec.topic:
            routes.append(_route(spec))
    for app in apps:
        for route in app.routes:
            _add_class(schemas, route.event_type)
            participants.append(
                Participant(
                    name=app.name,
                    kind="app",
                    action="receive",
                    topic=route.topic,
                    patterns=tuple(sorted(route.names)),
                    group_id=app.group_id,
                    handler=route.name,
                    detail=f"handler {route.name}, dead letters to {route.dlq_topic}",
                )
            )
    topics: dict[str, list[str]] = {}
    for participant in participants:
        names = topics.setdefault(participant.topic, [])
        for pattern in participant.patterns:
            if pattern in schemas and pattern not in names:
                names.append(pattern)
    events = []
    for full_name, (schema, source) in sorted(schemas.items()):
        carried = tuple(sorted(t for t, names in topics.items() if full_name in names))
        on_topics = [p for p in participants if p.topic in carried and p.takes(full_name)]
        events.append(
            EventTypeView(
                full_name=full_name,
                doc=str(schema.get("doc", "")),
                schema=schema,
                source=source,
                fields=tuple(_fields(schema)),
                example=example_value(schema),
                topics=carried,
                publishers=tuple(p for p in on_topics if p.action == "send"),
                consumers=tuple(p for p in on_topics if p.action == "receive"),
                routes=tuple(r for r in routes if r.event_type == full_name),
            )
        )
    return EventCatalogue(
        title=title,
        version=version,
        events=tuple(events),
        topics={topic: tuple(sorted(names)) for topic, names in sorted(topics.items())},
        participants=tuple(participants),
        routes=tuple(routes),
        bootstrap_servers=bootstrap_servers,
        security_protocol=security_protocol,
        sasl_mechanism=sasl_mechanism,
        subject_strategy=subject_strategy,
        registry=registry or RegistryView(consulted=False, note="no registry was consulted"),
    )


async def add_registry_versions(
    catalogue: EventCatalogue, registry: SchemaRegistry, *, url: str | None
) -> EventCatalogue:
    """``catalogue`` with each event type's subjects, versions and levels from ``registry``.

    The subjects looked at are those the serializers use for the event's topics (the subject
    name strategy) and the event's full name (what ``eventplatform schemas register`` and
    ``up`` register under); subjects the registry does not have are left out.

    Args:
        catalogue: the catalogue.
        registry: a started registry.
        url: where it is, as the page may show it (no credentials).

    Raises:
        RegistryError: the registry failed.
    """
    strategy = SubjectNameStrategy(catalogue.subject_strategy)
    events = []
    for event in catalogue.events:
        candidates = [subject_name(strategy, topic, event.full_name) for topic in event.topics]
        candidates.append(event.full_name)
        text = json.dumps(event.schema, separators=(",", ":"), ensure_ascii=False)
        found = []
        for subject in dict.fromkeys(candidates):
            versions = await _subject_versions(registry, subject, text)
            if versions is not None:
                found.append(versions)
        events.append(dataclasses.replace(event, subjects=tuple(found)))
    view = RegistryView(consulted=True, url=url, note=f"versions from the registry at {url}")
    return dataclasses.replace(catalogue, events=tuple(events), registry=view)


async def _subject_versions(
    registry: SchemaRegistry, subject: str, schema: str
) -> SubjectVersions | None:
    try:
        versions = await registry.list_versions(subject)
        latest = await registry.get_version(subject, "latest")
    except (SubjectNotFound, SchemaNotFound):
        return None
    compatibility = await registry.get_compatibility(subject)
    try:
        file_version: int | None = (await registry.lookup(subject, schema)).version
    except (SubjectNotFound, SchemaNotFound):
        file_version = None
    except RegistryError:
        # A registry may refuse to look up a schema that does not parse under its rules;
        # the versions above are still right.
        file_version = None
    return SubjectVersions(
        subject=subject,
        versions=tuple(versions),
        latest_id=latest.id,
        compatibility=str(compatibility.value),
        file_version=file_version,
    )


def _add_class(schemas: dict[str, tuple[dict[str, Any], str]], event_type: type[AvroEvent]) -> None:
    name = event_type.__avro_name__
    if name not in schemas:
        schemas[name] = (event_type.avro_schema(), f"{event_type.__module__}.{event_type.__name__}")


def _connector_participant(spec: ConnectorSpec) -> Participant | None:
    if not spec.topic or spec.role not in ("source", "sink"):
        return None  # receivers (HTTP only) touch no topic
    action: Action = "send" if spec.role == "source" else "receive"
    patterns: tuple[str, ...] = ("*",)
    if spec.event_type is not None:
        patterns = (spec.event_type.__avro_name__,)
    endpoints = getattr(spec.config, "endpoints", None)
    detail = {"send": f"writes topic {spec.topic}", "receive": f"reads topic {spec.topic}"}[action]
    if spec.type_name == "webhook-egress" and isinstance(endpoints, list):
        patterns = tuple(dict.fromkeys(p for e in endpoints for p in e.event_types))
        names = ", ".join(str(e.name) for e in endpoints)
        detail = f"delivers signed webhooks to {names} (Standard Webhooks)"
    elif spec.type_name == "webhook-ingress":
        detail = f"POST {_route(spec).url}"
    elif spec.type_name == "file-sink":
        detail = "appends CloudEvents JSON lines to a file"
    group_id = None
    if action == "receive":
        group_id = getattr(spec.config, "group_id", None) or f"connect-{spec.name}"
    return Participant(
        name=spec.name,
        kind=spec.type_name,
        action=action,
        topic=spec.topic,
        patterns=patterns,
        group_id=group_id,
        detail=detail,
    )


def _route(spec: ConnectorSpec) -> WebhookRoute:
    config: Any = spec.config
    host = str(config.host)
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: try it on this machine
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = int(config.port) or "PORT"
    path = config.path or f"/hooks/{spec.name}"
    event_type = spec.event_type.__avro_name__ if spec.event_type is not None else ""
    return WebhookRoute(
        connector=spec.name,
        url=f"http://{host}:{port}{path}",
        topic=spec.topic or "",
        event_type=event_type,
        api_key=bool(config.api_keys),
        signed=bool(config.signing_secrets),
        anonymous=bool(config.allow_anonymous),
        api_key_variable=_variable(spec.path, "api_keys"),
        secret_variable=_variable(spec.path, "signing_secrets"),
        source=f"{spec.path.parent.name}/{spec.path.name}" if spec.path else None,
    )


_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)")


def _variable(path: Path | None, key: str) -> str | None:
    """The environment variable the first ``settings.<key>`` entry of ``path`` reads."""
    if path is None:
        return None
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None  # the loader already read it; a race with an edit only loses the hint
    values = raw.get("settings", {}).get(key)
    if isinstance(values, list) and values and isinstance(values[0], str):
        match = _REFERENCE.match(values[0])
        return match.group(1) if match else None
    return None


def _matches(pattern: str, event_type: str) -> bool:
    if pattern in ("*", event_type):
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


def _identifier(text: str) -> str:
    """AsyncAPI component and operation keys: ``^[\\w\\d.\\-_]+$``."""
    return re.sub(r"[^\w.\-]", "_", text)


def _fields(schema: Mapping[str, Any]) -> Iterable[FieldView]:
    """The fields of ``schema``, then those of each record defined inside it (in order)."""
    pending: list[Mapping[str, Any]] = [schema]
    seen: set[str] = set()
    while pending:
        record = pending.pop(0)
        name = str(record["name"])
        if name in seen:
            continue
        seen.add(name)
        for item in record.get("fields", []):
            inner: list[Mapping[str, Any]] = []
            type_text, logical, symbols = _describe(item["type"], inner)
            pending += inner
            yield FieldView(
                record=name,
                name=str(item["name"]),
                type=type_text,
                logical_type=logical,
                doc=str(item.get("doc", "")),
                default=json.dumps(item["default"], ensure_ascii=False)
                if "default" in item
                else None,
                symbols=symbols,
            )


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _describe(
    schema: Any, records: list[Mapping[str, Any]]
) -> tuple[str, str | None, tuple[str, ...]]:
    """(type text, logical type, enum symbols) of a field type; records inside it are added."""
    if isinstance(schema, str):
        return _short(schema), None, ()
    if isinstance(schema, list):
        parts = [_describe(branch, records) for branch in schema]
        logical = next((p[1] for p in parts if p[1]), None)
        symbols = next((p[2] for p in parts if p[2]), ())
        return " | ".join(p[0] for p in parts), logical, symbols
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical == "decimal":
        logical = f"decimal({schema.get('precision')}, {schema.get('scale', 0)})"
    if kind in ("record", "error"):
        records.append(schema)
        return _short(str(schema["name"])), None, ()
    if kind == "enum":
        return f"enum {_short(str(schema['name']))}", None, tuple(schema.get("symbols", ()))
    if kind == "fixed":
        return f"fixed {_short(str(schema['name']))}[{schema.get('size')}]", logical, ()
    if kind == "array":
        inner, _, symbols = _describe(schema["items"], records)
        return f"array<{inner}>", None, symbols
    if kind == "map":
        inner, _, symbols = _describe(schema["values"], records)
        return f"map<{inner}>", None, symbols
    if isinstance(kind, str):
        return kind, logical if isinstance(logical, str) else None, ()
    return _describe(kind, records)

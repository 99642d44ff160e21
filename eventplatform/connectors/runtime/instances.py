"""Connector instances: the ``connectors/*.toml`` files of a deployment.

One file per instance::

    # connectors/orders-in.toml
    type = "webhook-ingress"               # a registered connector type
    topic = "orders"                       # where it writes (sources) or reads (sinks)
    event_type = "com.example.orders.OrderPlaced"   # a catalogue name, or "module:Class"
    # name = "orders-in"                   # default: the file name without .toml
    # enabled = true

    [settings]                             # validated by the type's Config model
    port = 8080
    signing_secrets = ["${ORDERS_WEBHOOK_SECRET}"]

``${NAME}`` is replaced by the environment variable ``NAME`` when the file is loaded
(``${NAME:-default}`` when it may be unset, ``$$`` for a literal ``$``), in every string of the
file. Secrets belong in ``SecretStr`` fields of the Config model, which keep them out of reprs,
logs and ``connectors list``; errors name the file and the key, never a value.

``event_type`` names an event class: ``package.module:Class`` is imported, anything else is the
full Avro name of a record in the schema catalogue (``schemas/`` next to the ``connectors/``
folder by default), whose class is built by
:func:`~eventplatform.schema.load_event_class`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from eventplatform._importing import import_object
from eventplatform.connectors.runtime.plugins import load_connector_class
from eventplatform.connectors.sdk.connector import (
    Connector,
    ConnectorConfig,
    Sink,
    Source,
    check_connector_name,
    validation_problems,
)
from eventplatform.errors import (
    ConnectorConfigError,
    ConnectorError,
    ImportSpecError,
    SchemaError,
)
from eventplatform.schema import AvroEvent, Catalogue, load_catalogue, load_event_class

__all__ = [
    "ConnectorSpec",
    "EventTypeResolver",
    "load_instance",
    "load_instances",
    "substitute_env",
]

_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(value: Any, env: Mapping[str, str], *, where: str = "") -> Any:
    """``value`` with ``${NAME}`` / ``${NAME:-default}`` references replaced, recursively.

    Raises:
        ConnectorConfigError: a variable is unset (and has no default), or a ``$`` starts
            something that is not a reference; ``key`` is the dotted path of the string.
    """
    if isinstance(value, str):
        return _substitute(value, env, where)
    if isinstance(value, Mapping):
        return {
            k: substitute_env(v, env, where=f"{where}.{k}" if where else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [substitute_env(v, env, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _substitute(text: str, env: Mapping[str, str], where: str) -> str:
    out: list[str] = []
    position = 0
    for match in _REFERENCE.finditer(text):
        literal = text[position : match.start()]
        if "$" in literal:
            break
        out.append(literal)
        position = match.end()
        if match.group(0) == "$$":
            out.append("$")
            continue
        name, default = match.group(1), match.group(2)
        if name in env:
            out.append(env[name])
        elif default is not None:
            out.append(default)
        else:
            raise ConnectorConfigError(
                f"{where}: environment variable {name} is not set "
                f"(write ${{{name}:-default}} if it may be)",
                key=where,
            )
    rest = text[position:]
    if "$" in rest:
        raise ConnectorConfigError(
            f"{where}: a '$' that is not a ${{NAME}} reference (write $$ for a literal '$')",
            key=where,
        )
    out.append(rest)
    return "".join(out)


class _InstanceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    name: str | None = None
    topic: str | None = None
    event_type: str | None = None
    enabled: bool = True
    settings: dict[str, Any] = {}


class EventTypeResolver:
    """Resolves ``event_type`` strings to event classes, loading the catalogue once.

    Args:
        schemas_dir: the schema catalogue, for full Avro names.
    """

    def __init__(self, schemas_dir: Path | None = None) -> None:
        self.schemas_dir = schemas_dir
        self._catalogue: Catalogue | None = None

    @property
    def catalogue(self) -> Catalogue:
        """The loaded catalogue.

        Raises:
            ConnectorError: no catalogue folder is configured.
            SchemaError: the catalogue is invalid or missing.
        """
        if self._catalogue is None:
            if self.schemas_dir is None:
                raise ConnectorError("no schema catalogue folder is configured")
            self._catalogue = load_catalogue(self.schemas_dir)
        return self._catalogue

    def resolve(self, spec: str) -> type[AvroEvent]:
        """The event class ``spec`` names (``module:Class`` or a full Avro name).

        Raises:
            ConnectorError: the class cannot be imported, is not an AvroEvent, or the name is
                not a record of the catalogue.
            SchemaError: the catalogue is invalid.
        """
        if ":" in spec:
            try:
                target = import_object(spec, what="event type", form="MODULE:Class")
            except ImportSpecError as exc:
                raise ConnectorError(str(exc)) from exc
            if not (isinstance(target, type) and issubclass(target, AvroEvent)):
                raise ConnectorError(f"event type {spec!r} is not an AvroEvent class")
            return target
        catalogue = self.catalogue
        if spec not in catalogue:
            raise ConnectorError(
                f"event type {spec!r} is not in the schema catalogue {catalogue.root} "
                "(use the record's full name, or module:Class)"
            )
        entry = catalogue[spec]
        if entry.kind != "record":
            raise ConnectorError(f"event type {spec!r} is a {entry.kind}, not a record")
        return load_event_class(entry.resolved)


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """A connector instance, validated and ready to create (and re-create after a failure).

    Attributes:
        name: the instance name.
        type_name: the registered type name (``type`` in the file).
        connector_class: the class ``type`` names.
        config: the validated ``[settings]``.
        topic, event_type: the instance's topic and event class.
        event_type_name: ``event_type`` as written in the file.
        path: the file it came from, if any.
        enabled: False keeps ``connectors run`` from starting it unless named.
    """

    name: str
    type_name: str
    connector_class: type[Connector[Any]]
    config: ConnectorConfig
    topic: str | None = None
    event_type: type[AvroEvent] | None = None
    event_type_name: str | None = None
    path: Path | None = None
    enabled: bool = True

    def create(self, **shared: Any) -> Connector[Any]:
        """A new connector of this spec.

        Args:
            shared: resources for the role's constructor (``settings``, ``bootstrap_servers``,
                ``registry``; for sources also ``producer`` and ``offsets``, for responders
                ``producer`` and ``http``); those the class does not take (its ``resources``)
                are left out.

        Raises:
            ConnectorConfigError: the connector refused its arguments.
        """
        allowed = self.connector_class.resources
        arguments = {k: v for k, v in shared.items() if k in allowed}
        try:
            return self.connector_class(
                name=self.name,
                config=self.config,
                topic=self.topic,
                event_type=self.event_type,
                **arguments,
            )
        except ConnectorConfigError as exc:
            where = f"{self.path}: " if self.path else ""
            raise ConnectorConfigError(
                f"{where}{exc}", path=str(self.path) if self.path else None, key=exc.key
            ) from exc

    @property
    def role(self) -> str:
        """``source`` or ``sink``."""
        if issubclass(self.connector_class, Source):
            return "source"
        if issubclass(self.connector_class, Sink):
            return "sink"
        return self.connector_class.role


def _fail(path: Path, key: str | None, reason: str) -> ConnectorConfigError:
    where = f"{path}: {key}: " if key else f"{path}: "
    return ConnectorConfigError(f"{where}{reason}", path=str(path), key=key)


def load_instance(
    path: Path,
    *,
    resolver: EventTypeResolver | None = None,
    env: Mapping[str, str] | None = None,
) -> ConnectorSpec:
    """Read and validate one instance file.

    Args:
        path: the ``.toml`` file.
        resolver: resolves ``event_type``; default one on ``schemas/`` next to the file's
            folder.
        env: the environment for ``${NAME}`` references; default ``os.environ``.

    Raises:
        ConnectorConfigError: the file cannot be read or parsed, a key is unknown or invalid,
            a variable is unset, the type is unknown, or the event type cannot be resolved;
            the message starts with the file and the key.
    """
    path = Path(path)
    resolver = resolver or EventTypeResolver(path.resolve().parent.parent / "schemas")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(path, None, f"cannot be read: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, None, f"is not valid TOML: {exc}") from exc
    try:
        raw = substitute_env(raw, os.environ if env is None else env)
    except ConnectorConfigError as exc:
        raise _fail(path, exc.key, str(exc).split(": ", 1)[-1]) from exc
    try:
        instance = _InstanceFile.model_validate(raw)
    except ValidationError as exc:
        key, reason = validation_problems(exc)[0]
        raise _fail(path, key, reason) from exc
    name = instance.name or path.stem
    try:
        check_connector_name(name)
        connector_class = load_connector_class(instance.type)
    except ConnectorConfigError as exc:
        raise _fail(path, "name", str(exc)) from exc
    except ConnectorError as exc:
        raise _fail(path, "type", str(exc)) from exc
    model = connector_class.Config
    try:
        config = model.model_validate(instance.settings)
    except ValidationError as exc:
        # Every problem is named by its own key, and each key once: "<file>: settings.a: …;
        # settings.b: …" (the error's key is the first).
        problems = validation_problems(exc, "settings.")
        listed = "; ".join(f"{key}: {reason}" for key, reason in problems)
        raise ConnectorConfigError(f"{path}: {listed}", path=str(path), key=problems[0][0]) from exc
    event_type = None
    if instance.event_type:
        try:
            event_type = resolver.resolve(instance.event_type)
        except (ConnectorError, SchemaError) as exc:
            raise _fail(path, "event_type", str(exc)) from exc
    spec = ConnectorSpec(
        name=name,
        type_name=instance.type,
        connector_class=connector_class,
        config=config,
        topic=instance.topic,
        event_type=event_type,
        event_type_name=instance.event_type,
        path=path,
        enabled=instance.enabled,
    )
    if connector_class.requires_topic and not spec.topic:
        raise _fail(path, "topic", f"a {instance.type} connector needs a topic")
    if connector_class.requires_event_type and spec.event_type is None:
        raise _fail(path, "event_type", f"a {instance.type} connector needs an event_type")
    return spec


def load_instances(
    directory: Path,
    *,
    names: Iterable[str] | None = None,
    schemas_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> list[ConnectorSpec]:
    """Every instance in ``directory`` (``*.toml``, sorted by name).

    Args:
        directory: the instances folder (``connectors/``).
        names: only these instances, in this order; default every enabled one.
        schemas_dir: the schema catalogue; default ``schemas/`` next to ``directory``.
        env: the environment for ``${NAME}`` references; default ``os.environ``.

    Raises:
        ConnectorConfigError: an instance is invalid, two have one name, or a named one does
            not exist.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConnectorConfigError(f"{directory}: not a folder of connector instances")
    resolver = EventTypeResolver(schemas_dir or directory.resolve().parent / "schemas")
    specs: dict[str, ConnectorSpec] = {}
    for path in sorted(directory.glob("*.toml")):
        spec = load_instance(path, resolver=resolver, env=env)
        if spec.name in specs:
            raise _fail(path, "name", f"{spec.name!r} is also the name in {specs[spec.name].path}")
        specs[spec.name] = spec
    if names is None:
        return [spec for spec in sorted(specs.values(), key=lambda s: s.name) if spec.enabled]
    chosen = []
    for name in names:
        if name not in specs:
            raise ConnectorConfigError(
                f"{directory}: no connector instance named {name!r} "
                f"(found: {', '.join(sorted(specs)) or 'none'})",
                key="name",
            )
        chosen.append(specs[name])
    return chosen

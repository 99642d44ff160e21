"""Connector types by name: the ``eventplatform.connectors`` entry-point group.

A distribution makes a connector type available by declaring an entry point::

    [project.entry-points."eventplatform.connectors"]
    salesforce-cdc = "acme_connectors.salesforce:ChangeDataCapture"

and an instance file then says ``type = "salesforce-cdc"``. The built-ins register the same
way in eventplatform's own ``pyproject.toml``; :data:`BUILTINS` repeats them so that they
resolve through the same loader in a source checkout that was not installed (where no entry
points exist). A name both an entry point and a built-in use must name the same class;
anything else is an error rather than a silent pick.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from eventplatform._importing import import_object
from eventplatform.connectors.sdk.connector import Connector
from eventplatform.errors import ConnectorError, ConnectorNotFound, ImportSpecError

__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "ConnectorType", "available", "load_connector_class"]

#: The entry-point group connector types register in.
ENTRY_POINT_GROUP = "eventplatform.connectors"

_OWN_DISTRIBUTION = "eventplatform"

#: Built-in connector types: name → ``module:Class``, as in the entry points.
BUILTINS: dict[str, str] = {
    "demo-receiver": "eventplatform.demo.receiver:DemoReceiver",
    "file-sink": "eventplatform.connectors.builtin.files:FileSink",
    "file-source": "eventplatform.connectors.builtin.files:FileSource",
    "postgres-outbox": "eventplatform.connectors.builtin.outbox:OutboxSource",
    "service": "eventplatform.connectors.builtin.service:Service",
    "webhook-egress": "eventplatform.connectors.builtin.egress:WebhookEgress",
    "webhook-ingress": "eventplatform.connectors.builtin.ingress:WebhookIngress",
}


@dataclass(frozen=True, slots=True)
class ConnectorType:
    """A connector type that can be loaded by name.

    Attributes:
        name: the name instance files use in ``type``.
        target: ``module:Class``.
        origin: the distribution declaring it, or ``eventplatform (built-in)``.
    """

    name: str
    target: str
    origin: str

    def load(self) -> type[Connector[Any]]:
        """Import the class.

        Raises:
            ConnectorNotFound: the module or class cannot be imported.
            ConnectorError: the target is not a Connector subclass.
        """
        try:
            target = import_object(self.target, what="connector class", form="MODULE:Class")
        except ImportSpecError as exc:
            raise ConnectorNotFound(
                f"connector type {self.name!r} (from {self.origin}): {exc}"
            ) from exc
        if not (isinstance(target, type) and issubclass(target, Connector)):
            raise ConnectorError(
                f"connector type {self.name!r} ({self.target}) is not a Connector subclass"
            )
        return target


def available() -> dict[str, ConnectorType]:
    """Every connector type: the entry points of installed distributions, then the built-ins.

    Raises:
        ConnectorError: two registrations of one name name different classes.
    """
    found: dict[str, ConnectorType] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        origin = point.dist.name if point.dist is not None else "an unknown distribution"
        if origin == _OWN_DISTRIBUTION:
            # BUILTINS speaks for eventplatform itself: the entry points an editable install
            # recorded name the modules of its install time, which a later move leaves behind.
            continue
        _add(found, ConnectorType(point.name, point.value.replace(" ", ""), origin))
    for name, target in BUILTINS.items():
        _add(found, ConnectorType(name, target, "eventplatform (built-in)"))
    return dict(sorted(found.items()))


def _add(found: dict[str, ConnectorType], candidate: ConnectorType) -> None:
    existing = found.get(candidate.name)
    if existing is None:
        found[candidate.name] = candidate
    elif existing.target != candidate.target:
        raise ConnectorError(
            f"connector type {candidate.name!r} is registered twice: {existing.target} "
            f"(from {existing.origin}) and {candidate.target} (from {candidate.origin})"
        )


def load_connector_class(name: str) -> type[Connector[Any]]:
    """The connector class registered as ``name``.

    Raises:
        ConnectorNotFound: no connector type has that name (the message lists the known ones),
            or it cannot be imported.
        ConnectorError: the registrations conflict, or the target is not a Connector.
    """
    types = available()
    found = types.get(name)
    if found is None:
        raise ConnectorNotFound(
            f"no connector type {name!r}; known types: {', '.join(types) or 'none'} (install "
            f"a distribution registering it in the {ENTRY_POINT_GROUP!r} entry-point group)"
        )
    return found.load()

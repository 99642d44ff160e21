"""Avro names: what a valid name is and how a name becomes a full name.

Rules from the Avro specification, section "Names"
(https://avro.apache.org/docs/1.12.0/specification/#names):

- a name matches ``[A-Za-z_][A-Za-z0-9_]*``; a namespace is a dot-separated sequence of names;
- a name containing a dot is a full name, its namespace is everything before the last dot and
  any ``namespace`` attribute is ignored;
- otherwise the full name is ``namespace + "." + name``, the namespace coming from the
  ``namespace`` attribute or else from the nearest enclosing named type;
- references to named types follow the same rule, relative to the enclosing namespace;
- primitive type names have no namespace and cannot be redefined.
"""

from __future__ import annotations

import re

__all__ = [
    "LOGICAL_TYPES",
    "NAMED_TYPES",
    "PRIMITIVE_TYPES",
    "full_name",
    "is_valid_name",
    "is_valid_namespace",
    "qualify",
    "split_full_name",
]

PRIMITIVE_TYPES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
NAMED_TYPES = frozenset({"record", "enum", "fixed"})

# Logical type -> the underlying types the specification allows it on.
LOGICAL_TYPES: dict[str, frozenset[str]] = {
    "decimal": frozenset({"bytes", "fixed"}),
    "uuid": frozenset({"string"}),
    "date": frozenset({"int"}),
    "time-millis": frozenset({"int"}),
    "time-micros": frozenset({"long"}),
    "timestamp-millis": frozenset({"long"}),
    "timestamp-micros": frozenset({"long"}),
    "local-timestamp-millis": frozenset({"long"}),
    "local-timestamp-micros": frozenset({"long"}),
}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def is_valid_name(name: object) -> bool:
    """Whether ``name`` is a valid Avro name (one component, no dots)."""
    return isinstance(name, str) and _NAME.match(name) is not None


def is_valid_namespace(namespace: object) -> bool:
    """Whether ``namespace`` is a valid Avro namespace; the empty string is the null namespace."""
    if not isinstance(namespace, str):
        return False
    return namespace == "" or all(is_valid_name(part) for part in namespace.split("."))


def full_name(name: str, namespace: str | None) -> str:
    """The full name of a definition named ``name`` in ``namespace`` (None or "" for none)."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def split_full_name(name: str) -> tuple[str, str | None]:
    """Split a full name into its short name and namespace (None for the null namespace)."""
    namespace, _, short = name.rpartition(".")
    return short, namespace or None


def qualify(reference: str, enclosing_namespace: str | None) -> str:
    """The full name a type reference denotes inside ``enclosing_namespace``.

    Primitive names are returned unchanged: they live in no namespace.
    """
    if reference in PRIMITIVE_TYPES:
        return reference
    return full_name(reference, enclosing_namespace)

"""How classes, enums and fields of Python name themselves in Avro, and their defaults."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Final

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from eventplatform.errors import SchemaError
from eventplatform.schema.names import full_name, is_valid_name

__all__ = [
    "NO_DEFAULT",
    "EnumOptions",
    "RecordOptions",
    "clean_doc",
    "field_default",
    "field_name",
]

NO_DEFAULT: Final = object()
"""Marks a field without an Avro default."""


@dataclass(frozen=True, slots=True)
class RecordOptions:
    """The Avro identity of an event class (its class keyword arguments).

    Attributes:
        name: the record name (default: the class name).
        namespace: the namespace, None for the null namespace.
        aliases: former full names, for schema resolution.
        doc: the record's doc; None means "from the class docstring".
    """

    name: str
    namespace: str | None
    aliases: tuple[str, ...] = ()
    doc: str | None = None

    @property
    def full_name(self) -> str:
        """``namespace.name``."""
        return full_name(self.name, self.namespace)


@dataclass(frozen=True, slots=True)
class EnumOptions:
    """The Avro identity of an :class:`~eventplatform.schema.AvroEnum` subclass."""

    name: str
    namespace: str | None
    aliases: tuple[str, ...] = ()
    doc: str | None = None
    default: str | None = None


def clean_doc(docstring: str | None) -> str | None:
    """The Avro ``doc`` for a docstring: dedented, each paragraph joined onto one line.

    Code generation wraps long docs over several docstring lines; joining them back makes the
    round trip exact for docs without hard line breaks.
    """
    if not docstring:
        return None
    paragraphs = inspect.cleandoc(docstring).split("\n\n")
    text = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return text or None


def field_name(name: str, info: FieldInfo, where: str) -> str:
    """The Avro name of a model field: its alias if it has one, else its Python name.

    Raises:
        SchemaError: the aliases for validation and serialisation differ, or the name is not
            a valid Avro name.
    """
    avro = info.serialization_alias or info.alias or name
    validation = info.validation_alias
    if validation is not None and validation != avro:
        raise SchemaError(
            f"{where}: validation alias {validation!r} differs from {avro!r}; an Avro field "
            "has one name, so use a single alias"
        )
    if not is_valid_name(avro):
        raise SchemaError(f"{where}: {avro!r} is not a valid Avro field name; set an alias")
    return avro


def field_default(info: FieldInfo) -> Any:
    """The default a field contributes to the schema, or a sentinel for none.

    A ``default_factory`` counts only for ``list`` and ``dict`` (an empty array or map): other
    factories, like ``uuid4``, produce a new value per event, not a schema constant.
    """
    if info.default is not PydanticUndefined:
        return info.default
    if info.default_factory in (list, dict):
        return info.default_factory()
    return NO_DEFAULT

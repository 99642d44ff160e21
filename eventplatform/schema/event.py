"""The base classes of typed events: :class:`AvroEvent` (records) and :class:`AvroEnum`.

An event class is a pydantic model bound to an Avro record schema::

    class OrderPlaced(AvroEvent, namespace="com.example.orders", topic="orders"):
        \"\"\"A customer placed an order.\"\"\"

        order_id: UUID = Field(description="Id of the order.")
        total: Annotated[Decimal, AvroDecimal(10, 2)]

The schema is derived from the class once (at class creation, or on first use when the class
still has unresolved forward references) and cached with its fastavro-parsed form and its
encode plan; nothing per event walks a schema.

The hot path
------------
``to_avro()`` is pydantic-core's serializer in python mode (what ``model_dump(by_alias=True)``
runs) plus, only for classes that need one, the fix-ups of :mod:`eventplatform.schema._codec.plan`,
then the check of :mod:`eventplatform.schema.limits` (nothing is encoded that a reader cannot
return equal).

``from_avro()`` is pydantic-core's validator (what ``model_validate`` runs, minus its Python
wrapper), so it validates fully. ``model_construct`` would be faster (about 2.2 against 3.5 µs
for the demo's ``OrderPlaced``) but is only equivalent when validation is provably redundant,
and it is not: construction leaves nested records as dicts and enum symbols as strings, and
skips pydantic constraints (lengths, ranges, ``Int32``'s bounds) and user validators, none of
which Avro enforces. What decoding *does* rely on fastavro for is shape and type: every field
present with its Avro type, logical types already converted to ``datetime``, ``UUID``,
``Decimal`` and so on, which keeps pydantic on its fast paths (no string parsing).

The serde does not call either: it uses :func:`eventplatform.schema._codec.rawcodec.raw_codec`,
which writes the same bytes from the attributes and a schema without logical types, and
builds instances without validation only for classes where that is provably redundant. What
that relies on, precisely: no validators, custom ``__init__``, ``model_post_init``, private
attributes or value-changing config in the class or any record class it contains; field
metadata limited to this package's markers, whose constraints Avro enforces itself (``int``
is 32-bit, ``fixed`` has its size) or the codec checks (a decimal's unscaled value below
``10**precision``, with its scale); and field annotations among the mapped types, so every
decoded value has the type validation would give. Other classes are validated as here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self

import fastavro
from pydantic import BaseModel, ConfigDict
from pydantic._internal._model_construction import ModelMetaclass, build_lenient_weakvaluedict
from pydantic._internal._typing_extra import parent_frame_namespace

from eventplatform.errors import SchemaError, SerializationError
from eventplatform.schema._codec.plan import Converter, build_plan
from eventplatform.schema.limits import Check, Refused, record_check
from eventplatform.schema.names import is_valid_name, is_valid_namespace
from eventplatform.schema.options import EnumOptions, RecordOptions
from eventplatform.schema.tree import validate_schema
from eventplatform.schema.types import derive

__all__ = ["AvroEnum", "AvroEvent"]

_INHERIT: Final[Any] = object()
_LAZY = ("__avro_schema__", "__avro_encode__", "__avro_check__")


class _Unbound:
    """Placeholder for a class attribute that needs the class bound to its schema first.

    The first read binds the class, which replaces the placeholder by the value in the class
    ``__dict__``, so later reads are plain attribute lookups.
    """

    __slots__ = ("attribute",)

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, instance: object, owner: type[AvroEvent]) -> Any:
        _bind(owner)
        return owner.__dict__[self.attribute]


def _check_options(cls_name: str, namespace: str | None, name: str | None) -> None:
    if namespace is not None and not is_valid_namespace(namespace):
        raise SchemaError(f"{cls_name}: namespace {namespace!r} is not a valid Avro namespace")
    if name is not None and not is_valid_name(name):
        raise SchemaError(f"{cls_name}: name {name!r} is not a valid Avro name")


class _AvroEventMeta(ModelMetaclass):
    """Takes the Avro class keywords before pydantic's metaclass sees them.

    ``namespace`` is also the name of ``ModelMetaclass.__new__``'s class-dict parameter, so it
    cannot travel through to ``__init_subclass__`` like other class keywords.
    """

    def __new__(
        mcs,
        cls_name: str,
        bases: tuple[type[Any], ...],
        class_dict: dict[str, Any],
        /,
        *,
        namespace: str | None = _INHERIT,
        name: str | None = None,
        topic: str | None = None,
        aliases: Sequence[str] = (),
        doc: str | None = None,
        **kwargs: Any,
    ) -> type:
        if kwargs.pop("__pydantic_reset_parent_namespace__", True):
            # ModelMetaclass captures the class-defining scope (for forward references to
            # local names) two frames up from itself; this __new__ adds a frame, so capture the
            # scope here and hand it over the way ModelMetaclass stores it.
            class_dict["__pydantic_parent_namespace__"] = build_lenient_weakvaluedict(
                parent_frame_namespace(parent_depth=2)
            )
        cls = super().__new__(
            mcs, cls_name, bases, class_dict, __pydantic_reset_parent_namespace__=False, **kwargs
        )
        if class_dict.get("__module__") == __name__ and cls_name == "AvroEvent":
            for attribute in _LAZY:  # the base binds to nothing: reading these raises
                setattr(cls, attribute, _Unbound(attribute))
        else:
            _configure(cls, namespace, name, topic, tuple(aliases), doc)
        return cls


def _configure(
    cls: Any,
    namespace: str | None,
    name: str | None,
    topic: str | None,
    aliases: tuple[str, ...],
    doc: str | None,
) -> None:
    if namespace is _INHERIT:
        parent = getattr(cls, "__avro_options__", None)
        namespace = parent.namespace if isinstance(parent, RecordOptions) else None
    _check_options(cls.__name__, namespace, name)
    options = RecordOptions(
        name=name or cls.__name__, namespace=namespace, aliases=aliases, doc=doc
    )
    cls.__avro_options__ = options
    cls.__avro_name__ = options.full_name
    cls.__avro_topic__ = topic
    for attribute in _LAZY:
        setattr(cls, attribute, _Unbound(attribute))
    for cache in ("__avro_parsed__", "__avro_json__"):
        setattr(cls, cache, None)
    # Bind now when possible so a class that has no Avro equivalent fails where it is
    # defined; a class waiting for forward references (or a pydantic generic parametrisation
    # whose name is not an Avro name) binds on first use.
    if cls.__pydantic_complete__ and is_valid_name(options.name):
        _bind(cls)


def _bind(cls: type[AvroEvent]) -> None:
    if cls is AvroEvent:
        raise SchemaError("AvroEvent is the base class; subclass it to define an event type")
    derivation = derive(cls)
    # Re-validate the derived schema: it normalises it exactly like an .avsc file (so
    # both sides of `schemas check` compare like with like) and catches a derivation bug
    # before fastavro would.
    tree = validate_schema(derivation.schema, source=f"<class {cls.__qualname__}>")
    encode: Converter | None = build_plan(tree.schema, tree.definitions, derivation.origins)
    type.__setattr__(cls, "__avro_schema__", tree.schema)
    type.__setattr__(cls, "__avro_encode__", encode)
    type.__setattr__(cls, "__avro_check__", record_check(tree.schema, tree.definitions))


class AvroEvent(BaseModel, metaclass=_AvroEventMeta):
    """Base class of event types: a pydantic model bound to an Avro record schema.

    Class keywords: ``namespace`` (inherited from an event base class, else none), ``name``
    (default: the class name), ``topic`` (the default topic, None to derive it later),
    ``aliases`` (former full names) and ``doc`` (default: the class docstring). Field docs come
    from ``Field(description=...)``, Avro defaults from pydantic defaults; see
    :mod:`eventplatform.schema.types` for the type mapping.

    Raises:
        SchemaError: at class definition, when the class has no valid Avro schema (a field type
            without Avro equivalent, a misplaced marker, a bad name or default).
    """

    model_config = ConfigDict(extra="forbid")

    __avro_schema__: ClassVar[dict[str, Any]]
    __avro_name__: ClassVar[str]
    __avro_topic__: ClassVar[str | None] = None
    __avro_encode__: ClassVar[Converter | None]
    __avro_check__: ClassVar[Check]
    __avro_options__: ClassVar[RecordOptions]
    __avro_parsed__: ClassVar[Any] = None
    __avro_json__: ClassVar[str | None] = None

    if TYPE_CHECKING:
        # For type checkers: the class keywords `_AvroEventMeta` consumes at runtime.
        def __init_subclass__(
            cls,
            *,
            namespace: str | None = ...,
            name: str | None = ...,
            topic: str | None = ...,
            aliases: Sequence[str] = ...,
            doc: str | None = ...,
            **kwargs: Any,
        ) -> None: ...

    @classmethod
    def avro_schema(cls) -> dict[str, Any]:
        """The class's Avro record schema, normalised (full names, named types inlined).

        Returns a copy of :attr:`__avro_schema__`.

        Raises:
            SchemaError: the class has no valid Avro schema.
        """
        return copy.deepcopy(cls.__avro_schema__)

    @classmethod
    def avro_schema_json(cls) -> str:
        """The schema as compact, normalised JSON text: what to register (cached).

        This is :func:`eventplatform.schema.normalized_json` of :meth:`avro_schema`: stable
        text that keeps docs, defaults, aliases and logical types (unlike the Parsing
        Canonical Form, which drops what schema evolution needs).

        Raises:
            SchemaError: the class has no valid Avro schema.
        """
        cached = cls.__dict__.get("__avro_json__")
        if cached is None:
            cached = json.dumps(cls.__avro_schema__, separators=(",", ":"), ensure_ascii=False)
            type.__setattr__(cls, "__avro_json__", cached)
        return cached

    @classmethod
    def parsed_schema(cls) -> Any:
        """The schema parsed by ``fastavro.parse_schema``, once per class.

        Use it as writer schema for ``schemaless_writer`` and as reader schema for
        ``schemaless_reader``.

        Raises:
            SchemaError: the class has no valid Avro schema, or fastavro rejects it.
        """
        cached = cls.__dict__.get("__avro_parsed__")
        if cached is None:
            try:
                cached = fastavro.parse_schema(cls.__avro_schema__, named_schemas={})
            except Exception as exc:
                raise SchemaError(
                    f"{cls.__qualname__}: fastavro rejects the schema: {exc}"
                ) from exc
            type.__setattr__(cls, "__avro_parsed__", cached)
        return cached

    def to_avro(self) -> dict[str, Any]:
        """The event as the record dict ``fastavro.schemaless_writer`` takes.

        Keys are the Avro field names (pydantic aliases where set); values stay Python objects
        fastavro converts itself (``datetime``, ``UUID``, ``Decimal`` ...). Every value is
        checked against what a reader can read back (:mod:`eventplatform.schema.limits`).

        Raises:
            SerializationError: a value a reader could not return equal (a timestamp before
                year 1 in UTC, a long beyond 64 bits ...); ``field`` names its path.
        """
        cls = type(self)
        record: dict[str, Any] = self.__pydantic_serializer__.to_python(self, by_alias=True)
        encode = cls.__avro_encode__
        if encode is not None:
            encode(self, record)
        try:
            return cls.__avro_check__(record)  # type: ignore[no-any-return]
        except Refused as refused:
            raise SerializationError(
                f"{cls.__name__}.{refused.where}: {refused.reason}", field=refused.where
            ) from None

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> Self:
        """The validated event from what ``fastavro.schemaless_reader`` returned.

        ``record`` must have been read with this class's schema as reader schema (or written
        with it), so its keys are the Avro field names.

        Raises:
            pydantic.ValidationError: the record violates a constraint of the class that Avro
                cannot express (a length, a range, a custom validator).
        """
        return cls.__pydantic_validator__.validate_python(record)  # type: ignore[no-any-return]


class AvroEnum(StrEnum):
    """Base class of Avro enums that carry their own name and namespace.

    ::

        class Currency(AvroEnum, namespace="com.example.orders"):
            \"\"\"ISO 4217 currency code.\"\"\"

            EUR = "EUR"
            USD = "USD"

    Class keywords: ``namespace`` (default: that of the record using the enum), ``name``
    (default: the class name), ``aliases``, ``doc`` (default: the docstring) and ``default``,
    the symbol a reader falls back to for a symbol it does not know (Avro 1.9+). The member
    values are the Avro symbols. Any ``Enum`` with ``str`` values works as an Avro enum; this
    base is for when the enum needs those Avro attributes.

    Raises:
        SchemaError: a keyword is not a valid Avro name or namespace.
    """

    __avro_options__: ClassVar[EnumOptions]

    def __init_subclass__(
        cls,
        *,
        namespace: str | None = None,
        name: str | None = None,
        aliases: Sequence[str] = (),
        doc: str | None = None,
        default: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        _check_options(cls.__name__, namespace, name)
        cls.__avro_options__ = EnumOptions(
            name=name or cls.__name__,
            namespace=namespace,
            aliases=tuple(aliases),
            doc=doc,
            default=default,
        )

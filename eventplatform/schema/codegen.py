"""``.avsc`` to Python: a readable, typed module of event classes.

:func:`generate_module` turns a :class:`~eventplatform.schema.catalogue.Catalogue` into the
source of one module: a class per record (:class:`~eventplatform.schema.AvroEvent`) and enum
(:class:`~eventplatform.schema.AvroEnum`), an ``Annotated`` alias per fixed, each defined
before its first use, with docstrings from ``doc`` and ``Field(description=...)`` from field
docs. The text is already what ``ruff format`` and ``ruff check`` (isort, line length 100)
accept, so a checked-in module stays clean and regenerating it is a no-op diff.

The generated class derives exactly the schema it was generated from (compared in normalised
form), which ``tests/unit/schema`` checks for the sample catalogue and for generated schemas.
Unknown logical types and custom attributes are the exception: they have no Python
counterpart and are dropped.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eventplatform.errors import SchemaError
from eventplatform.schema import defaults
from eventplatform.schema.catalogue import Catalogue
from eventplatform.schema.names import PRIMITIVE_TYPES
from eventplatform.schema.pynames import AMBIGUOUS, attribute_name, member_name
from eventplatform.schema.pysource import (
    WIDTH,
    docstring,
    is_annotated,
    layout,
    py_scalar,
    py_str,
    string_arg,
    width,
)

__all__ = ["DEFAULT_COMMAND", "generate_module", "render_module"]

DEFAULT_COMMAND = "eventplatform schemas codegen"

_IMPORTS: dict[str, str] = {
    "UTC": "datetime",
    "date": "datetime",
    "datetime": "datetime",
    "time": "datetime",
    "Decimal": "decimal",
    "Annotated": "typing",
    "UUID": "uuid",
    "AwareDatetime": "pydantic",
    "ConfigDict": "pydantic",
    "Field": "pydantic",
    "NaiveDatetime": "pydantic",
    "AvroDecimal": "eventplatform.schema",
    "AvroEnum": "eventplatform.schema",
    "AvroEvent": "eventplatform.schema",
    "AvroField": "eventplatform.schema",
    "Fixed": "eventplatform.schema",
    "Float32": "eventplatform.schema",
    "Int32": "eventplatform.schema",
    "KeepOrder": "eventplatform.schema",
    "Millis": "eventplatform.schema",
}
_SECTIONS = (("datetime", "decimal", "typing", "uuid"), ("pydantic",), ("eventplatform.schema",))
_RESERVED = (
    set(_IMPORTS)
    | {"__all__", "None", "True", "False"}
    | set(dir(builtins))
    | set(keyword.kwlist)
    | AMBIGUOUS
)


class _Module:
    """Collects the named types of some schemas and renders them as one module."""

    def __init__(self, schemas: Iterable[Mapping[str, Any]]) -> None:
        self.types: dict[str, dict[str, Any]] = {}
        for schema in schemas:
            self.collect(schema)
        self.names = self.python_names()
        self.members = {
            name: self.member_names(node)
            for name, node in self.types.items()
            if node["type"] == "enum"
        }
        self.imports: set[str] = set()
        self.defined: set[str] = set()
        self.rebuild: list[str] = []
        self.forward = False
        self.noqa = False

    # -- collection ---------------------------------------------------------------------------

    def collect(self, node: Any) -> None:
        """Add the named types of ``node`` in post-order: a type after those it uses."""
        if isinstance(node, list):
            for branch in node:
                self.collect(branch)
            return
        if not isinstance(node, dict):
            return
        kind = node["type"]
        if kind == "array":
            self.collect(node["items"])
        elif kind == "map":
            self.collect(node["values"])
        elif kind in ("record", "enum", "fixed") and node["name"] not in self.types:
            placeholder: dict[str, Any] = {}
            self.types[node["name"]] = placeholder  # reserves the name against recursion
            for field in node.get("fields", ()):
                self.collect(field["type"])
            del self.types[node["name"]]
            self.types[node["name"]] = node

    def python_names(self) -> dict[str, str]:
        shorts: dict[str, list[str]] = {}
        for name in self.types:
            shorts.setdefault(name.rpartition(".")[2], []).append(name)
        out: dict[str, str] = {}
        for short, names in shorts.items():
            for name in names:
                candidate = short
                if len(names) > 1 or short in _RESERVED:
                    # Qualify by namespace, innermost part first: a.b.Address -> BAddress.
                    parts = name.split(".")[:-1]
                    for part in reversed(parts):
                        candidate = part[:1].upper() + part[1:] + candidate
                        if candidate not in out.values() and candidate not in _RESERVED:
                            break
                while candidate in out.values() or candidate in _RESERVED:
                    candidate += "_"
                out[name] = candidate
        return out

    def member_names(self, node: Mapping[str, Any]) -> dict[str, str]:
        taken: set[str] = set()
        out = {}
        for symbol in node["symbols"]:
            out[symbol] = member_name(symbol, taken)
            taken.add(out[symbol])
        return out

    # -- type expressions ---------------------------------------------------------------------

    def use(self, name: str, uses: set[str] | None = None) -> str:
        """Import ``name``; note it in ``uses``, the names a class body refers to."""
        self.imports.add(name)
        if uses is not None:
            uses.add(name)
        return name

    def annotation(self, node: Any, uses: set[str], *, has_default: bool = False) -> str:
        """The Python type for a schema node; names it needs go into ``uses``."""
        if isinstance(node, list):
            return self.union(node, uses, has_default)
        if isinstance(node, str) and node not in PRIMITIVE_TYPES:
            name = self.names[node]
            uses.add(name)
            if node not in self.defined:
                self.forward = True  # used before its class exists: recursion
            return name
        kind = node if isinstance(node, str) else node["type"]
        logical = node.get("logicalType") if isinstance(node, dict) else None
        if kind in ("record", "enum", "fixed"):
            return self.annotation(node["name"], uses)
        if kind == "array":
            return f"list[{self.annotation(node['items'], uses)}]"
        if kind == "map":
            return f"dict[str, {self.annotation(node['values'], uses)}]"
        if logical == "decimal" and kind == "bytes":
            text = f"Annotated[Decimal, AvroDecimal({node['precision']}, {node['scale']})]"
        elif logical in _LOGICAL_PY and kind == _LOGICAL_BASE[logical]:
            text = _LOGICAL_PY[logical]
        else:
            text = _PRIMITIVE_PY[kind]  # an unknown logical type: its underlying type
        for word in re.findall(r"\w+", text):
            if word in _IMPORTS:
                uses.add(self.use(word))
        return text

    def union(self, node: list[Any], uses: set[str], has_default: bool) -> str:
        if len(node) < 2:
            # Union[X] is X in Python, but on the wire a union carries a branch index.
            raise SchemaError(
                f"a union with {len(node)} branch(es) has no Python equivalent: {node}"
            )
        others = [self.annotation(branch, uses) for branch in node if branch != "null"]
        # `A | B | None` derives null first, or (with a non-null default) the default's branch
        # first and the rest in order (see types._Deriver.order). Any other order is spelled
        # out with KeepOrder().
        if "null" not in node or node[0] == "null" or (has_default and node[-1] == "null"):
            return " | ".join([*others, "None"] if "null" in node else others)
        if node[-1] != "null":
            self.noqa = True  # None in the middle: ruff's RUF036 wants it last
        branches = iter(others)
        verbatim = " | ".join("None" if b == "null" else next(branches) for b in node)
        return f"{self.use('Annotated', uses)}[{verbatim}, {self.use('KeepOrder', uses)}()]"

    # -- defaults -----------------------------------------------------------------------------

    def literal(self, node: Any, value: Any, uses: set[str]) -> str:
        """Python source for the Python value of a default (see :func:`defaults.to_python`)."""
        node = defaults.resolve(node, self.types)
        if isinstance(node, list):
            return self.literal(node[0], value, uses)
        kind = defaults.type_name(node)
        if value is None:
            return "None"
        if kind == "enum":
            enum = self.names[node["name"]]
            uses.add(enum)
            return f"{enum}.{self.members[node['name']][value]}"
        if kind == "record":
            # Validating a dict keyed by Avro names works whatever the attributes are called.
            record = self.names[node["name"]]
            uses.add(record)
            items = (
                f"{py_str(f['name'])}: {self.literal(f['type'], value[f['name']], uses)}"
                for f in node["fields"]
            )
            return f"{record}.model_validate({{{', '.join(items)}}})"
        if kind == "array":
            return f"[{', '.join(self.literal(node['items'], item, uses) for item in value)}]"
        if kind == "map":
            items = (
                f"{py_str(k)}: {self.literal(node['values'], v, uses)}" for k, v in value.items()
            )
            return f"{{{', '.join(items)}}}"
        return self.scalar_literal(value, uses)

    def scalar_literal(self, value: Any, uses: set[str]) -> str:
        text, names = py_scalar(value)
        for name in names:
            uses.add(name)
            if name in _IMPORTS:
                self.use(name)
        return text

    # -- definitions --------------------------------------------------------------------------

    def render(self) -> list[str]:
        """Each definition's source, in definition order."""
        blocks = []
        for name, node in self.types.items():
            if node["type"] == "record":
                blocks.append(self.record(name, node))
            elif node["type"] == "enum":
                blocks.append(self.enum(name, node))
            else:
                blocks.append(self.fixed(name, node))
            self.defined.add(name)
        return blocks

    def identity(self, name: str, node: Mapping[str, Any]) -> list[str]:
        """Class keywords that give a class its Avro name, namespace and aliases."""
        short = name.rpartition(".")[2]
        namespace = name.rpartition(".")[0]
        args = []
        if namespace:
            args.append(f"namespace={py_str(namespace)}")
        if self.names[name] != short:
            args.append(f"name={py_str(short)}")
        if node.get("aliases"):
            args.append(f"aliases=[{', '.join(py_str(a) for a in node['aliases'])}]")
        return args

    def class_block(
        self, name: str, node: Mapping[str, Any], base: str, extra: list[str], body: list[str]
    ) -> str:
        args = [self.use(base), *self.identity(name, node), *extra]
        doc = node.get("doc")
        text = docstring(doc, 4) if doc is not None else None
        if doc is not None and text is None:
            args.append(string_arg("doc", doc, 4))
        lines = layout(f"class {self.names[name]}(", args, "):", 0)
        if text is not None:
            lines.append(text)
            if body:
                lines.append("")
        if body:
            lines.extend(body)
        elif text is None:
            lines.append("    pass")
        return "\n".join(lines)

    def enum(self, name: str, node: Mapping[str, Any]) -> str:
        members = self.members[name]
        body = [f"    {members[s]} = {py_str(s)}" for s in node["symbols"]]
        extra = [f"default={py_str(node['default'])}"] if "default" in node else []
        return self.class_block(name, node, "AvroEnum", extra, body)

    def fixed(self, name: str, node: Mapping[str, Any]) -> str:
        short = name.rpartition(".")[2]
        namespace = name.rpartition(".")[0]
        args = [str(node["size"]), f"name={py_str(short)}"]
        if namespace:
            args.append(f"namespace={py_str(namespace)}")
        if node.get("aliases"):
            args.append(f"aliases=[{', '.join(py_str(a) for a in node['aliases'])}]")
        if node.get("doc") is not None:
            args.append(f"doc={py_str(node['doc'])}")
        fixed = f"{self.use('Fixed')}({', '.join(args)})"
        if node.get("logicalType") == "decimal":
            self.use("Decimal")
            self.use("AvroDecimal")
            inner = f"Decimal, AvroDecimal({node['precision']}, {node['scale']}), {fixed}"
        else:
            inner = f"bytes, {fixed}"
        self.use("Annotated")
        return "\n".join(layout(f"{self.names[name]} = Annotated[", [inner], "]", 0))

    def record(self, name: str, node: Mapping[str, Any]) -> str:
        uses: set[str] = {"Field"}
        rendered = []
        for field in node["fields"]:
            self.forward = self.noqa = False
            annotation = self.field_annotation(field, uses)
            if self.forward:
                # pydantic resolves the quoted annotation once the class exists.
                annotation = py_str(annotation)
                if self.names[name] not in self.rebuild:
                    self.rebuild.append(self.names[name])
            uses.update(re.findall(r"[A-Za-z_]\w*", annotation))  # incl. builtins: list, str...
            rendered.append((field, annotation, self.noqa, *self.field_default(field, uses)))
        # A field named like something its class body uses (a type, `Field`) would shadow it
        # for the annotations after it, so such fields get a different name and an alias.
        taken = set(uses)
        body: list[str] = []
        renamed = False
        for field, annotation, noqa, default, bare in rendered:
            attribute = attribute_name(field["name"], taken)
            taken.add(attribute)
            args = [default] if default else []
            if attribute != field["name"]:
                renamed = True
                args.append(f"alias={py_str(field['name'])}")
            flat = [*args, f"description={py_str(field['doc'])}"] if "doc" in field else args
            if "doc" in field:
                args.append(string_arg("description", field["doc"], 8))
            body.extend(self.field_lines(f"{attribute}: {annotation}", args, flat, bare, noqa))
        if renamed:
            body[:0] = [f"    model_config = {self.use('ConfigDict')}(populate_by_name=True)", ""]
        return self.class_block(name, node, "AvroEvent", [], body)

    def field_lines(
        self, head: str, args: list[str], flat: list[str], bare: bool, noqa: bool
    ) -> list[str]:
        """A field statement laid out as ruff formats it.

        ``head`` is ``name: annotation``; ``args`` the ``Field(...)`` arguments (long strings
        already split), ``flat`` the same on one line each; ``bare``: a lone default may stand
        without ``Field``.
        """
        pragma = "  # noqa: RUF036" if noqa else ""
        value = args[0].removeprefix("default=") if bare and len(args) == 1 else None
        if not args:
            lines = [f"    {head}"]
        elif value is not None and width(f"    {head} = {value}") <= WIDTH:
            lines = [f"    {head} = {value}"]
        else:
            lines = layout(f"{head} = {self.use('Field')}(", args, ")", 4)
        if all(width(row) <= WIDTH for line in lines for row in line.split("\n")):
            lines[0] += pragma
            return lines
        # An annotation or a default literal too long for a line. ruff would split inside it;
        # rather than reimplement that, keep the statement on one line and tell ruff to leave
        # it (realistic schemas do not get here).
        call = f" = {self.use('Field')}({', '.join(flat)})" if args else ""
        codes = "E501, RUF036" if noqa else "E501"
        return [f"    {head}{call}  # noqa: {codes}  # fmt: skip"]

    def field_annotation(self, field: Mapping[str, Any], uses: set[str]) -> str:
        text = self.annotation(field["type"], uses, has_default="default" in field)
        options = []
        if field.get("aliases"):
            options.append(f"aliases=[{', '.join(py_str(a) for a in field['aliases'])}]")
        if field.get("order"):
            options.append(f"order={py_str(field['order'])}")
        if not options:
            return text
        uses.update((self.use("Annotated"), self.use("AvroField")))
        marker = f"AvroField({', '.join(options)})"
        if is_annotated(text):  # Annotated[int, Int32] -> Annotated[int, Int32, AvroField(...)]
            return f"{text[:-1]}, {marker}]"
        return f"Annotated[{text}, {marker}]"

    def field_default(self, field: Mapping[str, Any], uses: set[str]) -> tuple[str, bool]:
        """The ``default=``/``default_factory=`` argument, and whether it may stand bare."""
        if "default" not in field:
            return "", False
        value = defaults.to_python(field["type"], field["default"], self.types)
        if isinstance(value, list | dict) and not value:
            factory = type(value).__name__
            uses.add(factory)
            return f"default_factory={factory}", False
        literal = self.literal(field["type"], value, uses)
        # Mutable values (lists, dicts, records) go through Field(default=...): pydantic copies
        # them per instance, and a bare mutable class attribute reads like a shared one.
        return f"default={literal}", not isinstance(value, list | dict)


_PRIMITIVE_PY = {
    "null": "None",
    "boolean": "bool",
    "int": "Annotated[int, Int32]",
    "long": "int",
    "float": "Annotated[float, Float32]",
    "double": "float",
    "bytes": "bytes",
    "string": "str",
}
_LOGICAL_PY = {
    "uuid": "UUID",
    "date": "date",
    "time-millis": "Annotated[time, Millis]",
    "time-micros": "time",
    "timestamp-millis": "Annotated[AwareDatetime, Millis]",
    "timestamp-micros": "AwareDatetime",
    "local-timestamp-millis": "Annotated[NaiveDatetime, Millis]",
    "local-timestamp-micros": "NaiveDatetime",
}
_LOGICAL_BASE = {
    "uuid": "string",
    "date": "int",
    "time-millis": "int",
    "time-micros": "long",
    "timestamp-millis": "long",
    "timestamp-micros": "long",
    "local-timestamp-millis": "long",
    "local-timestamp-micros": "long",
}


def _import_lines(names: set[str]) -> list[str]:
    lines: list[str] = []
    for section in _SECTIONS:
        block = []
        for module in section:
            wanted = sorted(
                (n for n in names if _IMPORTS[n] == module),
                # isort's order-by-type: CONSTANTS, then Classes, then functions/variables.
                key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n),
            )
            if wanted:
                block.extend(layout(f"from {module} import ", wanted, "", 0, parens=True))
        if block:
            if lines:
                lines.append("")
            lines.extend(block)
    return lines


def render_module(
    schemas: Sequence[Mapping[str, Any]], *, header: Sequence[str] = (), doc: str | None = None
) -> tuple[str, dict[str, str]]:
    """Source of a module defining the named types of normalised, self-contained schemas.

    Returns:
        The source text, and full name -> Python name of every type defined in it.
    """
    module = _Module(schemas)
    blocks = module.render()
    exported = sorted(module.names[name] for name in module.types)
    lines = [f"# {line}" if line else "#" for line in header]
    if doc:
        lines.append(docstring(doc, 0) or f'"""{doc}"""')
    if lines:
        lines.append("")
    lines.extend(_import_lines(module.imports))
    lines.append("")
    lines.extend(
        layout("__all__ = [", [py_str(name) for name in exported], "]", 0, collection=True)
    )
    for block in blocks:
        lines.extend(["", "", block])
    if module.rebuild:
        lines.extend(["", ""])
        lines.extend(f"{name}.model_rebuild()" for name in module.rebuild)
    return "\n".join(lines) + "\n", dict(module.names)


def generate_module(catalogue: Catalogue, *, command: str | None = None) -> str:
    """The source of a Python module with a class for every type of ``catalogue``.

    Args:
        catalogue: the loaded catalogue.
        command: the command line that regenerates the module, quoted in its header comment
            (default: ``eventplatform schemas codegen``).
    """
    header = [
        f"Generated by `{command or DEFAULT_COMMAND}`.",
        "Do not edit: change the .avsc files and run the command again.",
    ]
    doc = "Typed event classes of the Avro schema catalogue."
    source, _ = render_module([entry.resolved for entry in catalogue], header=header, doc=doc)
    return source

"""Binding an ``.avsc`` to a Python class at run time.

:func:`load_event_class` generates the same source :mod:`~eventplatform.schema.codegen`
would write to a file and executes it in a fresh module namespace, so a class loaded at run
time and a generated, checked-in class of the same schema behave identically. The input is
validated first (names are Avro names, docs and defaults are rendered as literals), so the
executed text is never taken from the schema verbatim.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from eventplatform.errors import SchemaError
from eventplatform.schema.avsc import inline, parse_avsc
from eventplatform.schema.catalogue import Catalogue
from eventplatform.schema.codegen import render_module
from eventplatform.schema.event import AvroEvent

__all__ = ["load_event_class"]

_PACKAGE = "eventplatform.schema.loaded"


def load_event_class(
    source: str | Path | Mapping[str, Any], *, catalogue: Catalogue | None = None
) -> type[AvroEvent]:
    """Build the event class of a record schema.

    Args:
        source: an ``.avsc`` path, JSON text, or a decoded schema dict.
        catalogue: where to find named types the schema references but does not define.

    Returns:
        An :class:`~eventplatform.schema.AvroEvent` subclass whose ``avro_schema()`` is the
        normalised input schema. Nested records and enums become classes of the same module
        (reachable through the fields' annotations). Loading the same schema twice returns the
        same class.

    Raises:
        SchemaParseError: the schema is invalid (message with source and JSON path).
        SchemaError: the schema is not a record.
    """
    named = catalogue.named_types if catalogue is not None else {}
    tree = parse_avsc(source, named_types=named)
    schema = inline(tree.schema, named) if tree.references else tree.schema
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaError(f"{source}: an event class needs a record schema at the top")
    return _build(json.dumps(schema, separators=(",", ":"), ensure_ascii=False))


@functools.lru_cache(maxsize=256)
def _build(schema_json: str) -> type[AvroEvent]:
    schema = json.loads(schema_json)
    source, names = render_module([schema])
    digest = hashlib.sha256(schema_json.encode()).hexdigest()[:16]
    module = types.ModuleType(f"{_PACKAGE}.{names[schema['name']]}_{digest}")
    # pydantic resolves string annotations (recursive types) in the module's namespace, found
    # through sys.modules as for an imported module.
    sys.modules[module.__name__] = module
    # dont_inherit: this file's `from __future__ import annotations` must not leak into the
    # generated code (its annotations would all become strings).
    code = compile(source, f"<avsc {schema['name']}>", "exec", dont_inherit=True)
    exec(code, module.__dict__)
    return cast(type[AvroEvent], module.__dict__[names[schema["name"]]])

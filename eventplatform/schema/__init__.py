"""Typed Avro events: event classes, ``.avsc`` parsing, the schema catalogue and codegen.

- :class:`AvroEvent` / :class:`AvroEnum`: pydantic models and enums bound to Avro schemas
  (Python -> ``.avsc``), with the markers that pick Avro types (:data:`Int32`,
  :class:`AvroDecimal`, :class:`Fixed`, ...).
- :func:`parse_avsc`, :func:`canonical_form`, :func:`normalized_json`: reading schemas with
  errors that name file and JSON path, and their normal forms.
- :func:`load_catalogue`: every ``.avsc`` under a directory, references resolved, in
  dependency order.
- :func:`load_event_class`, :func:`generate_module`: ``.avsc`` -> Python, at run time or as
  a generated module.
- :func:`check_class_against_schema`: where a class and its contract disagree.
"""

from eventplatform.schema.avsc import (
    SchemaTree,
    canonical_form,
    normalize,
    normalized_json,
    parse_avsc,
)
from eventplatform.schema.catalogue import Catalogue, CatalogueEntry, load_catalogue
from eventplatform.schema.check import check_class_against_schema, ensure_class_matches_schema
from eventplatform.schema.codegen import generate_module
from eventplatform.schema.event import AvroEnum, AvroEvent
from eventplatform.schema.loader import load_event_class
from eventplatform.schema.markers import (
    AvroDecimal,
    AvroField,
    Fixed,
    Float32,
    Int32,
    KeepOrder,
    Micros,
    Millis,
)

__all__ = [
    "AvroDecimal",
    "AvroEnum",
    "AvroEvent",
    "AvroField",
    "Catalogue",
    "CatalogueEntry",
    "Fixed",
    "Float32",
    "Int32",
    "KeepOrder",
    "Micros",
    "Millis",
    "SchemaTree",
    "canonical_form",
    "check_class_against_schema",
    "ensure_class_matches_schema",
    "generate_module",
    "load_catalogue",
    "load_event_class",
    "normalize",
    "normalized_json",
    "parse_avsc",
]

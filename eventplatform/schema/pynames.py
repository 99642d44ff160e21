"""Python names for Avro names: what generated attributes and enum members are called.

Avro names (``[A-Za-z_][A-Za-z0-9_]*``) are almost Python identifiers; the exceptions are
keywords, names pydantic reserves (leading underscores are private attributes, ``model_*``
is its namespace, ``BaseModel``'s own attributes cannot be shadowed) and the names pycodestyle
calls ambiguous. Those get a suffix or prefix, and the Avro name travels as an alias.
"""

from __future__ import annotations

import keyword

from eventplatform.schema.event import AvroEvent

__all__ = ["AMBIGUOUS", "attribute_name", "member_name"]

AMBIGUOUS = frozenset({"l", "O", "I"})
"""pycodestyle E741/E742: names that read like 1 and 0."""

_BASE_ATTRIBUTES = frozenset(dir(AvroEvent)) | frozenset(dir(type(AvroEvent)))
# pydantic warns about fields in its protected namespaces (ConfigDict.protected_namespaces).
_PROTECTED = ("model_validate", "model_dump")


def attribute_name(name: str, taken: set[str]) -> str:
    """A Python attribute name for an Avro field name that is not one (or clashes)."""
    candidate = name
    if name.startswith("_"):  # pydantic takes these for private attributes
        candidate = name.lstrip("_")
    if not candidate or candidate[0].isdigit() or candidate.startswith(_PROTECTED):
        candidate = f"field_{candidate}"
    while (
        keyword.iskeyword(candidate)
        or candidate in taken
        or candidate in _BASE_ATTRIBUTES
        or candidate in AMBIGUOUS
    ):
        candidate += "_"
    return candidate


def member_name(symbol: str, taken: set[str]) -> str:
    """A Python enum member name for an Avro symbol (the symbol itself where possible)."""
    candidate = f"M{symbol}" if symbol.startswith("_") else symbol
    while (
        keyword.iskeyword(candidate)
        or candidate in taken
        or candidate == "mro"
        or candidate in AMBIGUOUS
    ):
        candidate += "_"
    return candidate

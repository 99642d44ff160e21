"""Writing Python source the way ``ruff format`` would, for the code generator.

Only the few shapes generated code has: string and bytes literals, docstrings, and a
bracketed list of arguments. The layout rules are ruff's (and black's): keep a bracket on one
line if it fits in :data:`WIDTH` columns; else put its contents on one indented line; else,
with more than one element, one element per line with a trailing comma. Strings too long for
any line are split into implicitly concatenated parts inside parentheses, which ruff keeps.
"""

from __future__ import annotations

import math
import re
import textwrap
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventplatform.schema.options import clean_doc

__all__ = [
    "WIDTH",
    "docstring",
    "is_annotated",
    "layout",
    "py_bytes",
    "py_scalar",
    "py_str",
    "string_arg",
    "width",
]

WIDTH = 100
"""The line length of the project's ruff configuration."""

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def width(text: str) -> int:
    """Columns ``text`` takes on screen, as ruff measures line length (Unicode width).

    East Asian wide and fullwidth characters take two columns; combining marks and format
    characters none.
    """
    columns = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        columns += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return columns


def _quote_for(text: str) -> str:
    # ruff/black: double quotes, unless that needs more escaped quotes than single quotes.
    return "'" if text.count('"') > text.count("'") else '"'


def py_str(text: str) -> str:
    """A Python string literal for ``text``, quoted and escaped as ruff formats it."""
    quote = _quote_for(text)
    out = [quote]
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char == quote:
            out.append("\\" + char)
        elif not char.isprintable():
            code = ord(char)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
        else:
            out.append(char)
    out.append(quote)
    return "".join(out)


def py_bytes(data: bytes) -> str:
    """A Python bytes literal for ``data``."""
    text = data.decode("latin-1")
    quote = _quote_for(text)
    out = ["b", quote]
    for byte in data:
        char = chr(byte)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char == quote:
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    out.append(quote)
    return "".join(out)


def py_scalar(value: Any) -> tuple[str, list[str]]:
    """Source for a scalar default value, and the names the source needs in scope.

    Covers what :func:`~eventplatform.schema.defaults.to_python` returns for non-container
    types: None, bools, numbers, ``str``, ``bytes``, ``Decimal``, ``UUID`` and dates/times.
    """
    if value is None or isinstance(value, bool | int):
        return repr(value), []
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value).replace("e+", "e"), []  # ruff writes 1e16, not 1e+16
        return f'float("{value}")', ["float"]
    if isinstance(value, str):
        return py_str(value), []
    if isinstance(value, bytes):
        return py_bytes(value), []
    if isinstance(value, Decimal | UUID):
        return f'{type(value).__name__}("{value}")', [type(value).__name__]
    if isinstance(value, datetime):
        parts = [value.year, value.month, value.day, *_clock(value)]
        if value.tzinfo is None:
            return f"datetime({', '.join(map(str, parts))})", ["datetime"]
        return f"datetime({', '.join(map(str, parts))}, tzinfo=UTC)", ["datetime", "UTC"]
    if isinstance(value, date):
        return f"date({value.year}, {value.month}, {value.day})", ["date"]
    if isinstance(value, time):
        return f"time({', '.join(map(str, _clock(value)))})", ["time"]
    raise TypeError(f"no literal for {value!r}")


def _clock(value: time | datetime) -> list[int]:
    """Hour and minute, then second and microsecond only as far as they are not zero."""
    parts = [value.hour, value.minute]
    if value.second or value.microsecond:
        parts.append(value.second)
    if value.microsecond:
        parts.append(value.microsecond)
    return parts


def layout(
    head: str,
    items: Sequence[str],
    tail: str,
    indent: int,
    *,
    parens: bool = False,
    collection: bool = False,
) -> list[str]:
    """Lines for ``head`` + items joined by ", " + ``tail``, wrapped like ruff.

    Args:
        head: text up to and including the opening bracket (``"foo("``).
        items: the elements, possibly multi-line (already indented for column ``indent + 4``).
        tail: the closing bracket and anything after it (``"):"``).
        indent: the column ``head`` starts at.
        parens: for ``from x import a, b``: the brackets are added only when wrapping, and
            wrapped imports always take one name per line (isort's style).
        collection: a list/dict literal: once wrapped, always one element per line.
    """
    pad = " " * indent
    inner = " " * (indent + 4)
    multiline = any("\n" in item for item in items)
    joined = ", ".join(items)
    if not multiline and width(pad + head + joined + tail) <= WIDTH:
        return [pad + head + joined + tail]
    opening, closing = (head + "(", ")" + tail) if parens else (head, tail)
    hug = not (parens or collection)
    if hug and not multiline and width(inner + joined) <= WIDTH:
        return [pad + opening, inner + joined, pad + closing]
    if len(items) == 1 and hug:
        return [pad + opening, inner + items[0], pad + closing]
    return [pad + opening, *(inner + item + "," for item in items), pad + closing]


def string_arg(key: str, text: str, column: int) -> str:
    """``key=<literal>`` for an argument starting at ``column``; split into parts if too long."""
    literal = py_str(text)
    if column + width(f"{key}={literal},") <= WIDTH:
        return f"{key}={literal}"
    inner = " " * (column + 4)
    room = WIDTH - len(inner)
    parts: list[str] = []
    current = ""
    # Break after whitespace, so the parts concatenate back to exactly `text`.
    for token in re.findall(r"\S+\s*|\s+", text):
        if current and width(py_str(current + token)) > room:
            parts.append(current)
            current = token
        else:
            current += token
    parts.append(current)
    body = "\n".join(inner + py_str(part) for part in parts)
    return f"{key}=(\n{body}\n{' ' * column})"


def docstring(doc: str, indent: int) -> str | None:
    """The docstring that :func:`~eventplatform.schema.types.clean_doc` turns back into ``doc``.

    None when no docstring can: the doc has hard line breaks inside a paragraph, extra spaces,
    backslashes, triple quotes, control characters, or a word too long for a line. The caller
    then passes the doc explicitly (``doc=...``).
    """
    if clean_doc(doc) != doc or "\\" in doc or '"""' in doc or doc.endswith('"'):
        return None
    if not all(char.isprintable() or char == "\n" for char in doc):
        return None
    pad = " " * indent
    single = f'{pad}"""{doc}"""'
    if "\n" not in doc and width(single) <= WIDTH:
        return single
    lines: list[str] = []
    for number, paragraph in enumerate(doc.split("\n\n")):
        if number:
            lines.append("")
        lines.extend(
            textwrap.wrap(
                paragraph,
                width=WIDTH - indent,
                initial_indent='"""' if number == 0 else "",
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    lines.append('"""')
    if any(width(pad + line) > WIDTH for line in lines):
        return None
    return "\n".join(pad + line if line else "" for line in lines)


def is_annotated(text: str) -> bool:
    """Whether ``text`` is one ``Annotated[...]`` (not, say, ``Annotated[...] | None``)."""
    if not text.startswith("Annotated["):
        return False
    depth = 0
    for index, char in enumerate(text[len("Annotated") :], start=len("Annotated")):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth == 0:
            return index == len(text) - 1
    return False

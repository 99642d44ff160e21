"""Reading and writing one Avro record with fastavro's compiled functions, set up once.

fastavro's ``schemaless_reader`` and ``schemaless_writer`` re-check the schema they are given
on every call (``parse_schema`` of a parsed schema, the named-schema maps, the options)
before calling the compiled ``read_record``/``write_data``: ~0.4 µs of a 4 µs read, and the
writer copies from its own buffer into the caller's. :func:`record_reader` and
:func:`record_writer` do that setup once per schema and call the compiled functions
directly, when a probe at import proved that they read and write what the public functions
do (named references, tagged unions); otherwise they use the public functions.

Both compiled modules are private to fastavro and exist only when its C extension is
installed (a pure-Python build, e.g. ``FASTAVRO_USE_CYTHON=0`` or a platform without a wheel,
has ``_read_py``/``_write_py`` instead): they are imported behind a guard, and their absence
(or a changed signature, which the probes catch) means the public functions serve.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial
from io import BytesIO
from typing import IO, Any

import fastavro

__all__ = ["Reader", "Writer", "record_reader", "record_writer"]


def _compiled(module: str, name: str) -> Any:
    """``module.name`` of fastavro's C extension, or None when it is not installed."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


_read_record: Any = _compiled("fastavro._read", "read_record")
_write_data: Any = _compiled("fastavro._write", "write_data")

Reader = Callable[[IO[bytes]], Any]


def _options(tagged_unions: bool) -> dict[str, Any]:
    return {
        "return_record_name": False,
        "return_record_name_override": False,
        "handle_unicode_errors": "strict",
        "return_named_type": tagged_unions,
        "return_named_type_override": tagged_unions,
    }


def record_reader(parsed: Any, *, tagged_unions: bool = False) -> Reader:
    """A function reading one record of the parsed schema ``parsed`` from a buffer."""
    if not (_DIRECT and isinstance(parsed, dict) and parsed.get("type") == "record"):
        return partial(
            fastavro.schemaless_reader,
            writer_schema=parsed,
            reader_schema=None,
            return_named_type=tagged_unions,
            return_named_type_override=tagged_unions,
        )
    named = {"writer": parsed.get("__named_schemas", {}), "reader": {}}
    options = _options(tagged_unions)

    def direct(buffer: IO[bytes]) -> Any:
        return _read_record(buffer, parsed, named, None, options)

    return direct


Writer = Callable[[bytes, Any], bytes]
_WRITE_OPTIONS = {"strict": False, "strict_allow_default": False, "disable_tuple_notation": False}


def record_writer(parsed: Any) -> Writer:
    """A function writing ``header`` followed by one record of ``parsed``, as bytes."""
    if not (_DIRECT_WRITE and isinstance(parsed, dict)):

        def public(header: bytes, record: Any) -> bytes:
            buffer = BytesIO()
            buffer.write(header)
            fastavro.schemaless_writer(buffer, parsed, record)
            return buffer.getvalue()

        return public
    named = parsed.get("__named_schemas", {})

    def direct(header: bytes, record: Any) -> bytes:
        buffer = bytearray(header)
        _write_data(buffer, record, parsed, named, "", _WRITE_OPTIONS)
        return bytes(buffer)

    return direct


_PROBE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Probe",
    "namespace": "eventplatform.probe",
    "fields": [
        {
            "name": "a",
            "type": {"type": "record", "name": "A", "fields": [{"name": "n", "type": "long"}]},
        },
        {"name": "b", "type": "A"},
        {
            "name": "c",
            "type": [
                "null",
                "A",
                {"type": "record", "name": "C", "fields": [{"name": "s", "type": "string"}]},
            ],
        },
    ],
}
_PROBE_VALUE = {"a": {"n": 1}, "b": {"n": -2}, "c": ("eventplatform.probe.C", {"s": "é"})}


def _probe() -> tuple[Any, bytes]:
    parsed: Any = fastavro.parse_schema(_PROBE_SCHEMA, named_schemas={})
    buffer = BytesIO()
    fastavro.schemaless_writer(buffer, parsed, _PROBE_VALUE)
    return parsed, buffer.getvalue()


def _direct_reads_alike() -> bool:
    """Whether fastavro's ``read_record`` takes the arguments ``record_reader`` gives it."""
    if _read_record is None:
        return False
    try:
        parsed, data = _probe()
        named = {"writer": parsed["__named_schemas"], "reader": {}}
        for tagged in (False, True):
            public = fastavro.schemaless_reader(
                BytesIO(data),
                parsed,
                None,
                return_named_type=tagged,
                return_named_type_override=tagged,
            )
            direct = BytesIO(data)
            if _read_record(direct, parsed, named, None, _options(tagged)) != public:
                return False
            if direct.tell() != len(data):
                return False
    except Exception:
        return False
    return True


def _direct_writes_alike() -> bool:
    """Whether fastavro's ``write_data`` takes the arguments ``record_writer`` gives it."""
    if _write_data is None:
        return False
    try:
        parsed, data = _probe()
        buffer = bytearray(b"head")
        _write_data(buffer, _PROBE_VALUE, parsed, parsed["__named_schemas"], "", _WRITE_OPTIONS)
    except Exception:
        return False
    return bytes(buffer) == b"head" + data


_DIRECT = _direct_reads_alike()
_DIRECT_WRITE = _direct_writes_alike()

"""JSON input → typed events, with errors that name each field path.

Connectors that take JSON (webhook bodies, JSON lines, outbox payloads) validate it with the
event class's pydantic-core validator in *strict* JSON mode: the JSON types must be the ones
the Avro schema implies (a string is not coerced into an ``int``, a number is not a timestamp),
while the textual forms JSON needs are accepted (UUIDs, RFC 3339 timestamps, ISO dates, and
decimals as strings or numbers). One exception to strictness follows JSON Schema, where a number
with a zero fraction *is* an integer (draft 2020-12, section 6.1.1: ``2.0`` is an integer):
such a number is accepted for an Avro ``int``/``long``. The JSON Schema of an event
(:func:`~eventplatform.connectors.builtin.ingress.jsonschema.event_json_schema`)
is stricter in places (decimals
as strings only, exact forms of dates and times, UTC years 1-9999); the webhook ingress checks
bodies against it as well, since it publishes that schema as its contract.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import ValidationError

from eventplatform.errors import InvalidPayload, MalformedPayload
from eventplatform.schema import AvroEvent

__all__ = ["json_path", "parse_event"]

E = TypeVar("E", bound=AvroEvent)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Violations listed in an error, at most (a hostile body could produce thousands).
MAX_ERRORS = 50


def json_path(location: Sequence[int | str]) -> str:
    """A JSONPath for a pydantic error location: ``("items", 0, "sku")`` → ``$.items[0].sku``."""
    parts = ["$"]
    for step in location:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENTIFIER.fullmatch(step):
            parts.append(f".{step}")
        else:
            parts.append("['" + step.replace("\\", "\\\\").replace("'", "\\'") + "']")
    return "".join(parts)


def parse_event(event_type: type[E], data: bytes | str) -> E:
    """Validate JSON text into an event of ``event_type``.

    Raises:
        MalformedPayload: the text is not well-formed JSON (or not UTF-8).
        InvalidPayload: it does not fit the event type; ``errors`` lists
            ``(JSONPath, reason)`` per violation (at most 50).
    """
    try:
        return event_type.model_validate_json(data, strict=True)
    except ValidationError as exc:
        if not _integral_floats_refused(exc):
            raise _payload_error(event_type, exc) from exc
        first = exc
    # Rare, so off the hot path: the text again, with integral numbers written as integers.
    try:
        text = _integral_numbers_as_integers(data)
    except ValueError:  # NaN or Infinity, which pydantic's parser takes and Python's does not
        raise _payload_error(event_type, first) from first
    try:
        return event_type.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise _payload_error(event_type, exc) from exc


def _payload_error(
    event_type: type[AvroEvent], exc: ValidationError
) -> MalformedPayload | InvalidPayload:
    """The error of a failed validation: malformed JSON, or the violations by path."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(error["type"] == "json_invalid" for error in errors):
        reason = errors[0]["msg"]
        return MalformedPayload(f"malformed JSON: {reason}", errors=[("$", reason)])
    problems = [(json_path(error["loc"]), error["msg"]) for error in errors[:MAX_ERRORS]]
    summary = "; ".join(f"{path}: {reason}" for path, reason in problems[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return InvalidPayload(
        f"not a valid {event_type.__avro_name__}: {summary}{more}", errors=problems
    )


def _integral_floats_refused(exc: ValidationError) -> bool:
    """Whether strict validation refused a number with a zero fraction for an integer."""
    return any(
        error["type"] in ("int_type", "int_from_float")
        and isinstance(error.get("input"), float)
        and error["input"].is_integer()
        for error in exc.errors(include_url=False, include_context=False)
    )


def _integral_number(text: str) -> float | int:
    value = Decimal(text)
    # Within 64 bits only: beyond that no Avro integer can hold it, and a double field keeps it.
    if value == value.to_integral_value() and abs(value) < 2**64:
        return int(value)
    return float(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _integral_numbers_as_integers(data: bytes | str) -> str:
    """``data`` with every number that has a zero fraction (``2.0``, ``1e3``) as an integer.

    Only called on text pydantic already parsed, so it is well-formed JSON.
    """
    value = json.loads(data, parse_float=_integral_number, parse_constant=_refuse_constant)
    return json.dumps(value, ensure_ascii=False)

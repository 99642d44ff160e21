"""JSON input → typed events, with errors that name each field path.

Connectors that take JSON (webhook bodies, JSON lines, outbox payloads) validate it with the
event class's pydantic-core validator in *strict* JSON mode: the JSON types must be the ones
the Avro schema implies (a string is not coerced into an ``int``, a number is not a timestamp),
while the textual forms JSON needs are accepted (UUIDs, RFC 3339 timestamps, ISO dates, and
decimals as strings or numbers). The JSON Schema of these rules is
:func:`eventplatform.connectors.jsonschema.event_json_schema`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

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
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(error["type"] == "json_invalid" for error in errors):
            reason = errors[0]["msg"]
            raise MalformedPayload(f"malformed JSON: {reason}", errors=[("$", reason)]) from exc
        problems = [(json_path(error["loc"]), error["msg"]) for error in errors[:MAX_ERRORS]]
        summary = "; ".join(f"{path}: {reason}" for path, reason in problems[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InvalidPayload(
            f"not a valid {event_type.__avro_name__}: {summary}{more}", errors=problems
        ) from exc

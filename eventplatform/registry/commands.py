"""The commands a registry log holds, and their JSON encoding.

A command is a decision already taken: its writer read the log up to ``read_upto``, decided the
outcome there (a register's version and id, a delete's versions), and recorded it. A reader
applies it or, if the state it was decided on has changed since, voids it
(:class:`~eventplatform.registry.state.RegistryState`); it never decides again, so clients of
different library versions replaying the same log reach the same state.

On Kafka each command is one record: key = the subject (UTF-8; none for the global config),
value = one JSON object, ``{"format": 1, "op": "register" | "config" | "delete" | "init", …}``.
A record that is not such an object is void for every reader alike; a ``format`` newer than
this library understands stops the reader with an error rather than letting it skip commands
that newer clients apply.

Format 2 added modes (``"op": "mode"``), removing a level or mode (``"level": null``,
``"mode": null``) and imported registrations (``"import": true``). Each command is written
with the lowest format that expresses it, so a log that never uses these stays readable by
format-1 clients, and one that does stops them with "upgrade" instead of letting them
replay a different state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from eventplatform.errors import MalformedCommand, UnsupportedFormat
from eventplatform.registry.base import CompatibilityLevel, Mode, SchemaReference

__all__ = [
    "FORMAT",
    "Command",
    "Delete",
    "Guard",
    "Init",
    "MalformedCommand",
    "Register",
    "SetCompatibility",
    "SetMode",
    "UnsupportedFormat",
    "decode",
    "encode",
]

FORMAT = 2
"""The newest version of the command encoding this library writes and reads."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Guard:
    """What a decision depended on: if any of it changed after ``read_upto``, it is void.

    Attributes:
        subjects: subjects whose versions, level or mode the writer read (its own subject,
            and the subjects of the references it resolved).
        global_config: whether the writer read the global compatibility level or mode.
    """

    subjects: tuple[str, ...] = ()
    global_config: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Init:
    """Marks a new log; written first so that no schema gets id 0 (the log's first offset)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Register:
    """Add ``version`` of ``subject``, holding ``schema_id`` or, if None, a new id.

    A new schema's id is the position of this command in the log. An ``imported`` schema
    keeps the ``schema_id`` and ``version`` it was given (IMPORT mode): the id is created if
    no schema has it yet, and the version may skip numbers.
    """

    subject: str
    schema: str
    references: tuple[SchemaReference, ...] = ()
    fingerprint: str
    normalized_fingerprint: str
    version: int
    schema_id: int | None
    read_upto: int
    guard: Guard
    writer: str = ""
    imported: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SetCompatibility:
    """Set the level of ``subject``, or the global level when ``subject`` is None.

    A ``level`` of None removes it: the subject follows the global level, the global level
    returns to the default.
    """

    subject: str | None
    level: CompatibilityLevel | None
    read_upto: int
    guard: Guard
    writer: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SetMode:
    """Set the mode of ``subject``, or the global mode when ``subject`` is None.

    A ``mode`` of None removes it, as ``SetCompatibility`` does a level.
    """

    subject: str | None
    mode: Mode | None
    read_upto: int
    guard: Guard
    writer: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Delete:
    """Soft-delete or permanently remove ``versions`` of ``subject``."""

    subject: str
    versions: tuple[int, ...]
    permanent: bool
    read_upto: int
    guard: Guard
    writer: str = ""


Command = Init | Register | SetCompatibility | SetMode | Delete


def _format_of(command: Command) -> int:
    match command:
        case SetMode():
            return 2
        case SetCompatibility(level=None):
            return 2
        case Register(imported=True):
            return 2
    return 1


def encode(command: Command) -> tuple[bytes | None, bytes]:
    """The record key and value of ``command``."""
    body: dict[str, Any] = {"format": _format_of(command)}
    key: str | None = None
    match command:
        case Init():
            body["op"] = "init"
        case Register():
            key = command.subject
            body |= {
                "op": "register",
                "subject": command.subject,
                "schema": command.schema,
                "references": [
                    {"name": r.name, "subject": r.subject, "version": r.version}
                    for r in command.references
                ],
                "fingerprint": command.fingerprint,
                "normalizedFingerprint": command.normalized_fingerprint,
                "version": command.version,
                "id": command.schema_id,
            }
            if command.imported:
                body["import"] = True
        case SetCompatibility():
            key = command.subject
            level = command.level.value if command.level is not None else None
            body |= {"op": "config", "subject": command.subject, "level": level}
        case SetMode():
            key = command.subject
            mode = command.mode.value if command.mode is not None else None
            body |= {"op": "mode", "subject": command.subject, "mode": mode}
        case Delete():
            key = command.subject
            body |= {
                "op": "delete",
                "subject": command.subject,
                "versions": list(command.versions),
                "permanent": command.permanent,
            }
    if not isinstance(command, Init):
        body |= {
            "readUpto": command.read_upto,
            "guard": {
                "subjects": list(command.guard.subjects),
                "global": command.guard.global_config,
            },
            "writer": command.writer,
        }
    value = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return (key.encode("utf-8") if key is not None else None), value


def decode(value: bytes | None) -> Command:
    """The command in a record value.

    Raises:
        MalformedCommand: the value is not a command of a format this library knows.
        UnsupportedFormat: the command has a newer format.
    """
    try:
        body = json.loads(value) if value is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedCommand(f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise MalformedCommand("not a JSON object")
    version = body.get("format")
    if type(version) is not int:
        raise MalformedCommand("no integer 'format'")
    if version > FORMAT:
        raise UnsupportedFormat(
            f"the schema log holds a format {version} command; this eventplatform reads "
            f"formats up to {FORMAT}: upgrade it to use this registry"
        )
    try:
        return _decode_body(body)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedCommand(f"bad {body.get('op')!r} command: {exc!r}") from exc


def _decode_body(body: dict[str, Any]) -> Command:
    op = body["op"]
    if op == "init":
        return Init()
    common: dict[str, Any] = {
        "read_upto": _int(body["readUpto"]),
        "guard": Guard(
            subjects=tuple(_str(s) for s in body["guard"]["subjects"]),
            global_config=_bool(body["guard"]["global"]),
        ),
        "writer": _str(body.get("writer", "")),
    }
    if op == "register":
        schema_id = body["id"]
        return Register(
            subject=_str(body["subject"]),
            schema=_str(body["schema"]),
            references=tuple(
                SchemaReference(
                    name=_str(r["name"]), subject=_str(r["subject"]), version=_int(r["version"])
                )
                for r in body["references"]
            ),
            fingerprint=_str(body["fingerprint"]),
            normalized_fingerprint=_str(body["normalizedFingerprint"]),
            version=_int(body["version"]),
            schema_id=None if schema_id is None else _int(schema_id),
            imported=_bool(body.get("import", False)),
            **common,
        )
    if op in ("config", "mode"):
        subject = None if body["subject"] is None else _str(body["subject"])
        if op == "config":
            level = body["level"]
            return SetCompatibility(
                subject=subject,
                level=None if level is None else CompatibilityLevel(level),
                **common,
            )
        mode = body["mode"]
        return SetMode(subject=subject, mode=None if mode is None else Mode(mode), **common)
    if op == "delete":
        return Delete(
            subject=_str(body["subject"]),
            versions=tuple(_int(v) for v in body["versions"]),
            permanent=_bool(body["permanent"]),
            **common,
        )
    raise ValueError(f"unknown op {op!r}")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {value!r}")
    return value

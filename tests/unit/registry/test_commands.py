"""The JSON encoding of registry log commands."""

from __future__ import annotations

import json

import pytest

from eventplatform.errors import RegistryError
from eventplatform.registry.base import CompatibilityLevel, Mode, SchemaReference
from eventplatform.registry.commands import (
    FORMAT,
    Command,
    Delete,
    Guard,
    Init,
    MalformedCommand,
    Register,
    SetCompatibility,
    SetMode,
    UnsupportedFormat,
    decode,
    encode,
)

COMMANDS: list[Command] = [
    Init(),
    Register(
        subject="orders-value",
        schema='"string"',
        references=(SchemaReference(name="shop.A", subject="a", version=2),),
        fingerprint="f" * 64,
        normalized_fingerprint="n" * 64,
        version=3,
        schema_id=None,
        read_upto=17,
        guard=Guard(subjects=("orders-value", "a"), global_config=True),
        writer="host:1:abc",
    ),
    Register(
        subject="ünïcode",
        schema='"int"',
        fingerprint="f",
        normalized_fingerprint="n",
        version=1,
        schema_id=5,
        read_upto=9,
        guard=Guard(subjects=("ünïcode",)),
    ),
    SetCompatibility(
        subject=None, level=CompatibilityLevel.FULL, read_upto=4, guard=Guard(global_config=True)
    ),
    SetCompatibility(
        subject="s", level=CompatibilityLevel.NONE, read_upto=4, guard=Guard(subjects=("s",))
    ),
    Delete(subject="s", versions=(1, 2), permanent=True, read_upto=8, guard=Guard(subjects=("s",))),
    # Format 2: modes, removals and imports.
    SetCompatibility(subject="s", level=None, read_upto=4, guard=Guard(subjects=("s",))),
    SetMode(subject=None, mode=Mode.READONLY, read_upto=5, guard=Guard(global_config=True)),
    SetMode(subject="s", mode=Mode.IMPORT, read_upto=5, guard=Guard(subjects=("s",))),
    SetMode(subject="s", mode=None, read_upto=6, guard=Guard(subjects=("s",))),
    Register(
        subject="s",
        schema='"long"',
        fingerprint="f",
        normalized_fingerprint="n",
        version=7,
        schema_id=1234,
        read_upto=9,
        guard=Guard(subjects=("s",)),
        imported=True,
    ),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_commands_round_trip(command: Command) -> None:
    _, value = encode(command)
    assert decode(value) == command


def test_key_is_the_subject_and_none_for_global_config() -> None:
    assert encode(COMMANDS[2])[0] == "ünïcode".encode()
    assert encode(COMMANDS[3])[0] is None


def test_value_is_json_with_a_format() -> None:
    body = json.loads(encode(COMMANDS[1])[1])
    assert body["format"] == 1
    assert body["op"] == "register"
    assert body["readUpto"] == 17
    assert body["id"] is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"\xff\xfe",
        b"not json",
        b"[1, 2]",
        b'{"op": "init"}',
        b'{"format": 1, "op": "rename"}',
        b'{"format": 1, "op": "config", "subject": "s", "level": "SOMETIMES", "readUpto": 1, '
        b'"guard": {"subjects": [], "global": false}}',
        b'{"format": 1, "op": "delete", "subject": "s", "versions": ["1"], "permanent": false, '
        b'"readUpto": 1, "guard": {"subjects": [], "global": false}}',
    ],
    ids=[
        "tombstone",
        "not-utf8",
        "not-json",
        "array",
        "no-format",
        "unknown-op",
        "bad-level",
        "bad-version",
    ],
)
def test_records_that_are_not_commands_are_malformed(value: bytes | None) -> None:
    with pytest.raises(MalformedCommand):
        decode(value)


def test_newer_format_is_refused_not_skipped() -> None:
    with pytest.raises(UnsupportedFormat, match="upgrade") as caught:
        decode(json.dumps({"format": FORMAT + 1, "op": "register"}).encode())
    assert isinstance(caught.value, RegistryError)


def test_each_command_is_written_in_the_lowest_format_that_holds_it() -> None:
    # A log that never uses modes, removals or imports stays readable by format-1 readers;
    # one that does stops them ("upgrade") instead of letting them replay another state.
    formats = [json.loads(encode(command)[1])["format"] for command in COMMANDS]
    assert formats == [1] * 6 + [2] * 5
    mode = json.loads(encode(COMMANDS[7])[1])
    assert (mode["op"], mode["subject"], mode["mode"]) == ("mode", None, "READONLY")
    assert encode(COMMANDS[7])[0] is None
    assert json.loads(encode(COMMANDS[9])[1])["mode"] is None
    assert json.loads(encode(COMMANDS[10])[1])["import"] is True

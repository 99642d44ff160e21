"""Code generation: the demo module is current, generated code is clean and agrees with .avsc."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventplatform.errors import SchemaError, SchemaParseError
from eventplatform.schema import (
    AvroEvent,
    Catalogue,
    canonical_form,
    check_class_against_schema,
    generate_module,
    load_catalogue,
    load_event_class,
    normalized_json,
)
from eventplatform.schema.codegen import render_module
from tests.unit.schema import strategies

ROOT = Path(__file__).resolve().parents[3]
COMMAND = "eventplatform schemas codegen schemas/ --out eventplatform/demo/events.py"
LONG = (
    "A doc long enough that neither a docstring line nor a description argument can hold it "
    "on one line of a hundred columns, so the generator has to wrap it, twice over even."
)


def put(root: Path, relative: str, schema: dict[str, Any]) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema))


@pytest.fixture(scope="module")
def tricky(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    """A catalogue that exercises every corner of the generator."""
    root = tmp_path_factory.mktemp("tricky") / "schemas"
    put(root, "com/acme/Kind.avsc", {
        "type": "enum", "name": "Kind", "namespace": "com.acme", "doc": 'Says "kind"',
        "aliases": ["OldKind"], "symbols": ["None", "class", "_hidden", "mro", "A"], "default": "A",
    })  # fmt: skip
    put(root, "com/acme/MD5.avsc", {
        "type": "fixed", "name": "MD5", "namespace": "com.acme", "size": 16, "doc": "A digest.",
    })  # fmt: skip
    put(root, "com/acme/Address.avsc", {
        "type": "record", "name": "Address", "namespace": "com.acme",
        "fields": [{"name": "street", "type": "string"}],
    })  # fmt: skip
    put(root, "org/other/Address.avsc", {
        "type": "record", "name": "Address", "namespace": "org.other",
        "fields": [{"name": "line", "type": "string"}],
    })  # fmt: skip
    node = {
        "type": "record", "name": "Node", "doc": "A linked list.",
        "fields": [
            {"name": "value", "type": "long"},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }  # fmt: skip
    point = {"type": "record", "name": "Point", "fields": [
        {"name": "x", "type": "int"}, {"name": "y", "type": "int", "default": 0},
    ]}  # fmt: skip
    money = {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal",
             "precision": 12, "scale": 2}  # fmt: skip
    put(root, "com/acme/Everything.avsc", {
        "type": "record", "name": "Everything", "namespace": "com.acme",
        "doc": f"{LONG}\n\nA second paragraph.", "aliases": ["com.acme.Old"],
        "fields": [
            {"name": "class", "type": "Kind", "doc": LONG},
            {"name": "list", "type": {"type": "array", "items": "string"}, "default": []},
            {"name": "date", "type": {"type": "int", "logicalType": "date"}, "default": 19000},
            {"name": "later", "type": {"type": "int", "logicalType": "date"}},
            {"name": "Field", "type": "string", "default": "x"},
            {"name": "_private", "type": "boolean", "default": True},
            {"name": "model_dump_x", "type": "double", "default": 1.5},
            {"name": "digest", "type": "MD5", "default": "\u0000" * 16},
            {"name": "other_digest", "type": ["null", "MD5"], "default": None},
            {"name": "home", "type": "Address"},
            {"name": "abroad", "type": "org.other.Address"},
            {"name": "head", "type": node},
            {"name": "point", "type": point, "default": {"x": 1}},
            {"name": "fee", "type": money, "default": "\u0000" * 6 + "\u0001\u0000"},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 5,
                                       "scale": 2}, "default": "\u0001\u0000"},
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"},
             "default": "12345678-1234-5678-1234-567812345678"},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"},
             "default": 1},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
            {"name": "clock", "type": {"type": "int", "logicalType": "time-millis"},
             "default": 3723004},
            {"name": "tick", "type": {"type": "long", "logicalType": "time-micros"}},
            {"name": "choice", "type": ["string", "long", "Point", "null"], "default": "x"},
            {"name": "required_optional", "type": ["null", "float"]},
            {"name": "kinds", "type": {"type": "map", "values": "Kind"}, "default": {"a": "class"}},
            {"name": "blob", "type": "bytes", "default": "\u00ff\"'\\"},
            {"name": "renamed", "type": "int", "aliases": ["old"], "order": "descending"},
            {"name": "odd_doc", "type": "int", "doc": "line one\nline two \\ \"quoted\""},
            {"name": "null_last", "type": ["string", "null"]},
            {"name": "null_middle", "type": ["string", "null", "long"], "default": "m"},
            {"name": "nested", "type": {"type": "array", "items": ["long", "null"]}},
        ],
    })  # fmt: skip
    return load_catalogue(root)


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    config = str(ROOT / "pyproject.toml")
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--config", config],
        capture_output=True,
        text=True,
        check=False,
    )


def exec_module(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "generated_for_test"}
    exec(compile(source, "<generated>", "exec", dont_inherit=True), namespace)
    return namespace


def roundtrip(event: AvroEvent) -> AvroEvent:
    cls = type(event)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, cls.parsed_schema(), event.to_avro())
    buffer.seek(0)
    return cls.from_avro(fastavro.schemaless_reader(buffer, cls.parsed_schema(), None))


def test_demo_module_is_up_to_date() -> None:
    generated = generate_module(load_catalogue(ROOT / "schemas"), command=COMMAND)
    assert (ROOT / "eventplatform" / "demo" / "events.py").read_text() == generated


def test_demo_classes_derive_their_resolved_schemas() -> None:
    events = importlib.import_module("eventplatform.demo.events")
    for entry in load_catalogue(ROOT / "schemas"):
        cls = getattr(events, entry.name)
        if entry.kind != "record":
            continue
        assert canonical_form(cls.avro_schema()) == entry.canonical_form()
        assert normalized_json(cls.avro_schema()) == entry.resolved_json()
        assert check_class_against_schema(cls, entry.resolved) == []


@pytest.mark.parametrize("which", ["demo", "tricky"])
def test_generated_module_is_ruff_clean(which: str, tricky: Catalogue, tmp_path: Path) -> None:
    catalogue = load_catalogue(ROOT / "schemas") if which == "demo" else tricky
    path = tmp_path / "events.py"
    path.write_text(generate_module(catalogue, command=COMMAND))
    formatted = ruff("format", "--diff", str(path))
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    checked = ruff("check", "--no-cache", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_tricky_module_agrees_with_every_schema(tricky: Catalogue) -> None:
    module = exec_module(generate_module(tricky))
    names = render_module([entry.resolved for entry in tricky])[1]
    for entry in tricky:
        if entry.kind == "record":
            cls = module[names[entry.full_name]]
            assert normalized_json(cls.avro_schema()) == entry.resolved_json()


def test_tricky_names_become_valid_python(tricky: Catalogue) -> None:
    source = generate_module(tricky)
    assert 'class_: Kind = Field(\n        alias="class",' in source
    assert "model_config = ConfigDict(populate_by_name=True)" in source
    assert 'class OtherAddress(AvroEvent, namespace="org.other", name="Address"):' in source
    assert 'class AcmeAddress(AvroEvent, namespace="com.acme", name="Address"):' in source
    for member in ("None_", "class_", "M_hidden", "mro_"):
        assert f"    {member} = " in source
    assert '    next: "Node | None" = None' in source
    assert "Node.model_rebuild()" in source
    assert (
        'MD5 = Annotated[bytes, Fixed(16, name="MD5", namespace="com.acme", doc="A digest.")]'
        in source
    )
    assert "doc='line one\\nline two" not in source  # field docs are descriptions
    assert "description='line one\\nline two \\\\ \"quoted\"'" in source
    assert (
        'renamed: Annotated[int, Int32, AvroField(aliases=["old"], order="descending")]' in source
    )
    assert "null_last: Annotated[str | None, KeepOrder()]" in source
    assert 'null_middle: Annotated[str | None | int, KeepOrder()] = "m"  # noqa: RUF036' in source
    assert "nested: list[Annotated[int | None, KeepOrder()]]" in source


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_tricky_events_round_trip(data: st.DataObject, tricky: Catalogue) -> None:
    entry = tricky["com.acme.Everything"]
    cls = load_event_class(entry.path, catalogue=tricky)
    record = data.draw(strategies.values(entry.resolved, strategies.definitions(entry.resolved)))
    record["head"] = {"value": 1, "next": {"value": 2, "next": None}}
    event = cls.from_avro(record)
    assert roundtrip(event) == event


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=strategies.records())
def test_generated_modules_of_random_schemas_are_ruff_clean(
    schema: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    source = render_module([schema])[0]
    path = tmp_path_factory.mktemp("gen") / "module.py"
    path.write_text(source)
    formatted = ruff("format", "--diff", str(path))
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    # RUF001-003 flag look-alike characters, which the invented docs are full of; generated
    # code carries docs verbatim, so that is the schema author's business.
    checked = ruff("check", "--no-cache", "--extend-ignore", "RUF001,RUF002,RUF003", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_load_event_class_from_path_text_and_dict(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "Ping", "namespace": "com.acme",
              "fields": [{"name": "n", "type": "int", "default": 0}]}  # fmt: skip
    path = tmp_path / "Ping.avsc"
    path.write_text(json.dumps(schema))
    from_path = load_event_class(path)
    assert load_event_class(str(path)) is from_path
    assert load_event_class(json.dumps(schema)) is from_path  # same schema, same class
    assert load_event_class(schema) is from_path
    assert from_path.__name__ == "Ping"
    assert from_path.__avro_name__ == "com.acme.Ping"
    assert from_path().n == 0


def test_load_event_class_resolves_catalogue_references(tricky: Catalogue, tmp_path: Path) -> None:
    schema = {"type": "record", "name": "UsesKind", "namespace": "com.acme",
              "fields": [{"name": "kind", "type": "Kind"}]}  # fmt: skip
    cls = load_event_class(schema, catalogue=tricky)
    assert cls(kind="class").to_avro() == {"kind": "class"}
    with pytest.raises(SchemaParseError, match="unknown type 'Kind'"):
        load_event_class(schema)


def test_load_event_class_needs_a_record() -> None:
    with pytest.raises(SchemaError, match="needs a record schema"):
        load_event_class({"type": "enum", "name": "E", "symbols": ["A"]})


def test_one_branch_union_is_refused() -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "u", "type": ["int"]}]}
    with pytest.raises(SchemaError, match="has no Python equivalent"):
        load_event_class(schema)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_demo_events_round_trip(data: st.DataObject) -> None:
    events = importlib.import_module("eventplatform.demo.events")
    records = [entry for entry in load_catalogue(ROOT / "schemas") if entry.kind == "record"]
    entry = data.draw(st.sampled_from(records))
    lookup = strategies.definitions(entry.resolved)
    event = getattr(events, entry.name).from_avro(
        data.draw(strategies.values(entry.resolved, lookup))
    )
    assert roundtrip(event) == event

"""CloudEvents Kafka binding (binary mode) headers round-trip and fail by name."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone

import pytest

from eventplatform.cloudevents import (
    _ASSEMBLED_FIELDS,
    EventMetadata,
    HeaderTemplate,
    InvalidEventHeaders,
    format_time,
    new_event_id,
)


def test_headers_round_trip_with_all_attributes() -> None:
    meta = EventMetadata.new(
        source="/services/orders",
        type="com.example.orders.OrderPlaced",
        subject="order-1",
        idempotency_key="order-1:placed",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate="vendor=1",
        extensions={"tenant": "acme"},
    )
    headers = meta.to_headers()
    names = [name for name, _ in headers]
    assert names[:6] == [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "content-type",
    ]
    assert ("ce_tenant", b"acme") in headers
    assert EventMetadata.from_headers(headers) == meta


def test_idempotency_key_defaults_to_id_and_is_not_sent_twice() -> None:
    meta = EventMetadata.new(source="/s", type="t")
    assert meta.idempotency_key == meta.id
    assert "ce_idempotencykey" not in dict(meta.to_headers())
    assert EventMetadata.from_headers(meta.to_headers()).idempotency_key == meta.id


def test_time_is_rfc3339_utc() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(when) == "2026-01-02T01:04:05.678000Z"
    assert datetime.fromisoformat(format_time(when)) == when.astimezone(UTC)


def test_missing_header_is_named_with_position() -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_type", b"t")]
    with pytest.raises(InvalidEventHeaders) as info:
        EventMetadata.from_headers(headers, topic="orders", partition=2, offset=41)
    assert (
        str(info.value)
        == "topic 'orders', partition 2, offset 41: missing CloudEvents header 'ce_source'"
    )


def test_bad_time_and_bad_utf8_are_named() -> None:
    base = [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_type", b"t"), ("ce_source", b"/s")]
    with pytest.raises(InvalidEventHeaders, match="'ce_time' is not RFC 3339"):
        EventMetadata.from_headers([*base, ("ce_time", b"yesterday")])
    with pytest.raises(InvalidEventHeaders, match="'ce_subject' is not UTF-8"):
        EventMetadata.from_headers([*base, ("ce_subject", b"\xff")])


def test_foreign_headers_are_ignored() -> None:
    meta = EventMetadata.new(source="/s", type="t")
    headers = [*meta.to_headers(), ("x-custom", b"\xff\xfe")]
    assert EventMetadata.from_headers(headers) == meta


def test_event_ids_are_random_uuids_in_canonical_text() -> None:
    ids = [new_event_id() for _ in range(2200)]  # several blocks of random bytes
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
    # Every hex digit outside the fixed version/variant positions occurs (they are random).
    assert {c for text in ids for c in text.replace("-", "")} == set("0123456789abcdef")


def test_header_template_gives_what_metadata_gives() -> None:
    meta = EventMetadata.new(source="/services/orders", type="com.example.orders.OrderPlaced")
    template = HeaderTemplate("/services/orders", "com.example.orders.OrderPlaced")
    extra = [("x-tenant", b"acme")]
    built = template.headers(meta.id, format_time(meta.time).encode(), extra)
    assert built == meta.to_headers(extra)
    assert EventMetadata.from_headers(built) == meta


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    import os

    new_event_id()  # the parent holds spare random digits now
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.write(writer, ",".join(new_event_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    child = set(os.read(reader, 4096).decode().split(","))
    os.close(reader)
    parent = {new_event_id() for _ in range(5)}
    assert len(child) == 5
    assert not child & parent


def test_metadata_read_from_headers_sets_every_field_as_the_constructor_does() -> None:
    assert {f.name for f in fields(EventMetadata)} == _ASSEMBLED_FIELDS
    meta = EventMetadata.new(source="/s", type="t", extensions={"region": "eu"})
    read = EventMetadata.from_headers(meta.to_headers())
    assert read == EventMetadata(
        id=meta.id, source="/s", type="t", time=meta.time, extensions={"region": "eu"}
    )
    assert read.idempotency_key == meta.id
    assert not read.derived
    with pytest.raises(AttributeError):
        read.id = "other"  # type: ignore[misc]

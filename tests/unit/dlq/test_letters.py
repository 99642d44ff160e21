"""Reading dead-letter headers, selecting letters, parsing offset ranges."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from eventplatform.dlq import DeadLetterRecord, Dialect, Selection, parse_offset_range

T0 = int(datetime(2026, 12, 6, 18, 0, tzinfo=UTC).timestamp() * 1000)


def connect_letter(offset: int = 3, *, exc: str = "app.handlers.PoisonError") -> DeadLetterRecord:
    return DeadLetterRecord.parse(
        topic="orders.dlq",
        partition=1,
        offset=offset,
        timestamp=T0,
        key=b"order-7",
        value=b"\x00\x00\x00\x00\x01\x02",
        headers=[
            ("ce_id", b"evt-1"),
            ("ce_idempotencykey", b"key-1"),
            ("traceparent", b"00-abc-def-01"),
            ("__connect.errors.topic", b"orders"),
            ("__connect.errors.partition", b"2"),
            ("__connect.errors.offset", b"41"),
            ("__connect.errors.stage", b"TASK_PUT"),
            ("__connect.errors.exception.class.name", exc.encode()),
            ("__connect.errors.exception.message", b"cannot take it\nsecond line"),
            ("eventplatform.errors.group", b"billing"),
            ("eventplatform.errors.attempts", b"5"),
            ("stray", None),
        ],
    )


def test_connect_headers_name_origin_and_reason() -> None:
    letter = connect_letter()
    assert letter.dialect is Dialect.CONNECT
    assert letter.origin == "orders/2@41"
    assert letter.position == "1:3"
    assert letter.group == "billing"
    assert letter.attempts == 5
    assert letter.reason == "PoisonError: cannot take it"
    assert letter.event_id == "evt-1"
    assert letter.idempotency_key == "key-1"
    assert letter.replayable is None


def test_a_replay_keeps_the_event_headers_only() -> None:
    assert connect_letter().event_headers == [
        ("ce_id", b"evt-1"),
        ("ce_idempotencykey", b"key-1"),
        ("traceparent", b"00-abc-def-01"),
        ("stray", b""),
    ]


def test_a_record_without_error_headers_cannot_be_replayed() -> None:
    letter = DeadLetterRecord.parse(
        topic="t", partition=0, offset=0, timestamp=T0, key=None, value=b"x", headers=[]
    )
    assert letter.dialect is Dialect.UNKNOWN
    assert letter.reason == "unknown (no error headers)"
    assert letter.replayable is not None
    assert "no origin topic" in letter.replayable


@pytest.mark.parametrize(
    ("selection", "selected"),
    [
        (Selection(), True),
        (Selection(partition=1), True),
        (Selection(partition=0), False),
        (Selection(first_offset=3, last_offset=3), True),
        (Selection(first_offset=4), False),
        (Selection(error_class="PoisonError"), True),
        (Selection(error_class="app.handlers.PoisonError"), True),
        (Selection(error_class="Poison"), False),
        (Selection(key="order-7"), True),
        (Selection(key="order-8"), False),
        (Selection(since=datetime(2026, 12, 6, 18, 0, tzinfo=UTC)), True),
        (Selection(until=datetime(2026, 12, 6, 18, 0, tzinfo=UTC)), False),
    ],
)
def test_selection(selection: Selection, selected: bool) -> None:
    assert selection.matches(connect_letter()) is selected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5-9", (5, 9)), ("5-", (5, None)), ("-9", (None, 9)), ("7", (7, 7)), (" 1 - 2 ", (1, 2))],
)
def test_offset_ranges(text: str, expected: tuple[int | None, int | None]) -> None:
    assert parse_offset_range(text) == expected


@pytest.mark.parametrize("text", ["", "-", "a-b", "9-5", "1-2-3"])
def test_bad_offset_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="offset range"):
        parse_offset_range(text)

"""``produce``'s input as bytes: encodings, line endings, sizes, and what a failure wrote.

No broker: every input here is refused before a connection is made (none is configured, so
reaching for one would fail differently).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from eventplatform.cli._common import fail_on_errors
from eventplatform.cli.io import ParsedLine, read_events, written_note
from eventplatform.errors import PublishError, PublishTimeout, RecordTooLarge
from tests.unit.cli.conftest import Invoke
from tests.unit.cli.test_io_lines import order, order_type

ORDER_PLACED = "com.example.orders.OrderPlaced"
# "café" in Latin-1: é is the single byte 0xe9, which UTF-8 never has alone.
NOT_UTF8 = order().encode().replace(b'"c-1"', b'"caf\xe9"')


def test_a_line_that_is_not_utf8_is_a_problem_of_its_line() -> None:
    lines = [order().encode(), NOT_UTF8, order(customer_id="c-3").encode()]

    parsed, problems = read_events(lines, order_type(), key=None, key_field=None)

    column = NOT_UTF8.index(b"\xe9") + 1
    assert problems == [f"line 2: not UTF-8 text: byte 0xe9 at byte {column} of the line"]
    assert [p.number for p in parsed] == [1, 3]


def test_a_byte_order_mark_and_crlf_line_endings_are_read() -> None:
    data = b"\xef\xbb\xbf" + order().encode() + b"\r\n\r\n" + order(customer_id="c-2").encode()

    parsed, problems = read_events(
        data.splitlines(), order_type(), key=None, key_field="customer_id"
    )

    assert problems == []
    assert [(p.number, p.key) for p in parsed] == [(1, "c-1"), (3, "c-2")]


def test_a_line_separator_inside_a_json_string_does_not_split_the_line() -> None:
    # U+2028 is legal unescaped in JSON strings; str.splitlines() would cut the line there.
    data = order(note="one\u2028two").encode() + b"\n"

    parsed, problems = read_events(data.splitlines(), order_type(), key=None, key_field=None)

    assert problems == []
    assert parsed[0].event.to_avro()["note"] == "one\u2028two"


def test_an_event_over_max_request_size_is_a_problem_of_its_line() -> None:
    small, large = order(), order(note="x" * 500)

    parsed, problems = read_events(
        [small, large], order_type(), key="k", key_field=None, max_record_bytes=300
    )

    assert [p.number for p in parsed] == [1]
    assert len(problems) == 1
    assert problems[0].startswith("line 2: the event is ")
    assert problems[0].endswith(
        "bytes (key and encoded value), over producer.max_request_size (300 bytes)"
    )
    size = int(problems[0].split("the event is ")[1].split(" ")[0])
    assert 500 < size <= 600


def _produce_file(cli: Invoke, path: Path) -> tuple[int, str]:
    result = cli("produce", "orders", "--type", ORDER_PLACED, "-i", str(path))
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    "bad",
    [
        NOT_UTF8,
        b"\xff\xfe" + order().encode("utf-16-le"),  # a UTF-16 file
        b"\x80",
    ],
)
def test_produce_from_a_file_that_is_not_utf8_names_the_line_like_stdin(
    cli: Invoke, catalogue: Path, tmp_path: Path, bad: bytes
) -> None:
    data = order().encode() + b"\n" + bad + b"\n" + order().encode() + b"\n"
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)

    from_file = cli("produce", "orders", "--type", ORDER_PLACED, "-i", str(path))
    from_stdin = cli("produce", "orders", "--type", ORDER_PLACED, input=data)

    for result in (from_file, from_stdin):
        assert result.exit_code == 1
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        assert "line 2: not UTF-8 text: byte 0x" in result.stderr
        assert "1 problem(s) in the input; nothing was written" in result.stderr
    assert from_file.stderr == from_stdin.stderr


def test_produce_names_an_event_over_max_request_size_before_connecting(
    cli: Invoke, catalogue: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTPLATFORM_PRODUCER__MAX_REQUEST_SIZE", "400")
    lines = [order(), order(note="x" * 1000), order()]

    result = cli("produce", "orders", "--type", ORDER_PLACED, input="\n".join(lines))

    assert result.exit_code == 1
    assert "line 2: the event is " in result.stderr
    assert "over producer.max_request_size (400 bytes)" in result.stderr
    assert "nothing was written" in result.stderr


def test_produce_blames_a_bad_setting_on_its_file_without_a_traceback(
    cli: Invoke, catalogue: Path, workdir: Path
) -> None:
    (workdir / "eventplatform.toml").write_text("[producer]\nmax_request_size = 0\n")

    result = cli("produce", "orders", "--type", ORDER_PLACED, input=order())

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"{workdir / 'eventplatform.toml'}, key producer.max_request_size" in result.stderr
    assert "EVENTPLATFORM_PRODUCER__MAX_REQUEST_SIZE" not in result.stderr


def _chunk(*numbers: int) -> list[ParsedLine]:
    event = read_events([order()], order_type(), key=None, key_field=None)[0][0].event
    return [ParsedLine(n, event, None) for n in numbers]


def test_the_note_after_a_failed_chunk_says_what_was_and_may_have_been_written() -> None:
    note = written_note(4, _chunk(6, 7, 9), PublishTimeout("not acknowledged within 30s"))

    assert note.startswith(
        "4 events (lines 1-5) were written; the events of lines 6-9 may or may not have been"
    )
    assert "new event ids" in note


def test_the_note_when_the_first_chunk_fails() -> None:
    assert written_note(0, _chunk(1, 2), PublishError("boom")).startswith(
        "no earlier event was written; the events of lines 1-2 may or may not have been"
    )
    assert written_note(0, _chunk(1, 2), RecordTooLarge("big")) == (
        "no earlier event was written; nothing of lines 1-2 was sent"
    )


def test_fail_on_errors_prints_the_notes_under_the_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = PublishTimeout("a batch was not acknowledged")
    error.add_note("2 events (lines 1-2) were written")

    with pytest.raises(typer.Exit), fail_on_errors():
        raise error

    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "error: PublishTimeout: a batch was not acknowledged",
        "  2 events (lines 1-2) were written",
    ]

"""Dead letters keep the record and add Kafka Connect's error headers."""

from __future__ import annotations

from eventplatform.app import RetryPolicy
from eventplatform.app.dlq import DeadLetter, DeadLetterQueue, Stage
from eventplatform.errors import PublishError, PublishTimeout


async def no_pause(delay: float) -> bool:
    return True


def queue(max_attempts: int = 3) -> DeadLetterQueue:
    return DeadLetterQueue(
        connector="billing",
        task_id="host-1",
        group="billing-group",
        policy=RetryPolicy(max_attempts=max_attempts, initial_backoff=0),
        pause=no_pause,
    )


def failure() -> ValueError:
    try:
        raise ValueError("bad amount")
    except ValueError as exc:
        return exc


def test_a_letter_keeps_the_record_and_replaces_older_error_headers() -> None:
    letter = queue().letter(
        dlq_topic="orders.dlq",
        topic="orders",
        partition=2,
        offset=41,
        key=b"k",
        value=b"\x00\x00\x00\x00\x01v",
        headers=[
            ("ce_id", b"1"),
            ("__connect.errors.offset", b"7"),
            ("eventplatform.errors.attempts", b"9"),
            ("empty", None),  # type: ignore[list-item]
        ],
        stage=Stage.TASK_PUT,
        class_name="billing.handlers.bill",
        exc=failure(),
        attempts=5,
    )
    headers = dict(letter.headers)
    assert (letter.topic, letter.key, letter.value) == (
        "orders.dlq",
        b"k",
        b"\x00\x00\x00\x00\x01v",
    )
    assert headers == {
        "ce_id": b"1",
        "empty": b"",
        "__connect.errors.topic": b"orders",
        "__connect.errors.partition": b"2",
        "__connect.errors.offset": b"41",
        "__connect.errors.connector.name": b"billing",
        "__connect.errors.task.id": b"host-1",
        "__connect.errors.stage": b"TASK_PUT",
        "__connect.errors.class.name": b"billing.handlers.bill",
        "__connect.errors.exception.class.name": b"ValueError",
        "__connect.errors.exception.message": b"bad amount",
        "__connect.errors.exception.stacktrace": headers["__connect.errors.exception.stacktrace"],
        "eventplatform.errors.group": b"billing-group",
        "eventplatform.errors.attempts": b"5",
    }
    assert b"raise ValueError" in headers["__connect.errors.exception.stacktrace"]
    assert len(letter.headers) == len(headers)


async def test_a_write_is_retried_and_reports_whether_it_was_acknowledged() -> None:
    letter = DeadLetter("t.dlq", None, b"v", [])
    calls = 0

    async def flaky(sent: DeadLetter) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise PublishTimeout("no ack")

    dlq = queue(max_attempts=3)
    assert await dlq.write(letter, flaky)
    assert calls == 3

    async def refused(sent: DeadLetter) -> None:
        raise PublishError("record too large")

    assert not await dlq.write(letter, refused)
    assert dlq.write_failures == 3


async def test_a_write_gives_up_when_the_app_stops() -> None:
    async def stopping(delay: float) -> bool:
        return False

    async def down(sent: DeadLetter) -> None:
        raise PublishTimeout("no ack")

    dlq = DeadLetterQueue(
        connector="c", task_id="t", group="g", policy=RetryPolicy(max_attempts=5), pause=stopping
    )
    assert not await dlq.write(DeadLetter("t.dlq", None, None, []), down)
    assert dlq.write_failures == 1

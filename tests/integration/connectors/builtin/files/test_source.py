"""The JSON-lines file source against the real broker: follow, positions, rotation, bad lines."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventplatform.connectors import OffsetStore
from eventplatform.connectors.builtin.files.source import FileSource
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.connectors.helpers import Tick, TopicReader, eventually, running


def line(n: int, label: str = "") -> bytes:
    return json.dumps({"n": n, "label": label}).encode() + b"\n"


def file_source(
    path: Path,
    topic: str,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    **config: Any,
) -> FileSource:
    return FileSource(
        name="ticks-file",
        topic=topic,
        event_type=Tick,
        config={"path": str(path), "poll_interval": 0.05, **config},
        settings=settings,
        registry=registry,
        offsets=offsets,
    )


async def test_lines_are_followed_and_their_positions_committed(
    tmp_path: Path,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("ticks")
    path = tmp_path / "ticks.jsonl"
    path.write_bytes(line(1) + b"\n" + line(2, "b"))
    source = file_source(path, topic, settings, registry, offsets, key_field="n")
    async with running(source):
        await eventually(lambda: _end_is(reader, topic, 2))
        with path.open("ab") as f:
            f.write(line(3)[:5])  # a line still being written is not read yet
            f.flush()
            await eventually(lambda: _stats_is(source, 2))
            f.write(line(3)[5:] + line(4))
        await eventually(lambda: _end_is(reader, topic, 4))
    received = await reader.read(topic, 4)
    ticks = [(await reader.decode(r, Tick)).n for r in received]
    assert ticks == [1, 2, 3, 4]
    assert [r.key for r in received] == [b"1", b"2", b"3", b"4"]
    assert len({r.headers["ce_id"] for r in received}) == 4
    committed = offsets.get("ticks-file", {"path": str(path)})
    assert committed == {
        "position": path.stat().st_size,
        "inode": path.stat().st_ino,
        "line": 5,  # the blank line counts
    }


async def _counted(source: FileSource, records: int) -> bool:
    return source.stats.records >= records


async def _end_is(reader: TopicReader, topic: str, count: int) -> bool:
    return await reader.end_offset(topic) >= count


async def _stats_is(source: FileSource, count: int) -> bool:
    return source.stats.records >= count


async def test_a_restart_resumes_at_the_committed_byte_with_the_same_ids(
    tmp_path: Path,
    settings: Settings,
    registry: MemoryRegistry,
    offsets_topic: str,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("ticks")
    path = tmp_path / "ticks.jsonl"
    path.write_bytes(b"".join(line(n) for n in range(1, 6)))
    async with (
        OffsetStore(topic=offsets_topic, settings=settings) as offsets,
        running(file_source(path, topic, settings, registry, offsets)),
    ):
        await eventually(lambda: _end_is(reader, topic, 5))
    with path.open("ab") as f:
        f.write(b"".join(line(n) for n in range(6, 9)))
    async with (
        OffsetStore(topic=offsets_topic, settings=settings) as offsets,
        running(file_source(path, topic, settings, registry, offsets)) as source,
    ):
        await eventually(lambda: _end_is(reader, topic, 8))
        # The count follows the acknowledgement, which may land just after the end offset.
        await eventually(lambda: _counted(source, 3))
        assert source.stats.records == 3
    received = await reader.read(topic, 8)
    assert [(await reader.decode(r, Tick)).n for r in received] == list(range(1, 9))


async def test_bad_lines_go_to_the_dead_letter_topic_with_their_line_numbers(
    tmp_path: Path,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("ticks")
    path = tmp_path / "ticks.jsonl"
    bad = [b'{"n": 2, "label":\n', b'{"n": "three"}\n', b"\xff\xfe not utf-8\n", b"x" * 300 + b"\n"]
    path.write_bytes(line(1) + bad[0] + bad[1] + line(4) + bad[2] + bad[3] + line(7))
    source = file_source(path, topic, settings, registry, offsets, max_line_bytes=256)
    async with running(source):
        await eventually(lambda: _end_is(reader, topic, 3))
        await eventually(lambda: _end_is(reader, f"{topic}.dlq", 4))
    good = await reader.read(topic, 3)
    assert [(await reader.decode(r, Tick)).n for r in good] == [1, 4, 7]
    letters = await reader.read(f"{topic}.dlq", 4)
    assert [r.headers["eventplatform.errors.source.line"] for r in letters] == ["2", "3", "5", "6"]
    assert letters[0].value == bad[0].rstrip(b"\n")
    assert letters[0].headers["eventplatform.errors.source.path"] == str(path)
    assert letters[0].headers["__connect.errors.topic"] == topic
    assert "malformed JSON" in letters[0].headers["__connect.errors.exception.message"]
    assert "$.n" in letters[1].headers["__connect.errors.exception.message"]
    assert "longer than 256 bytes" in letters[3].headers["__connect.errors.exception.message"]
    assert source.stats.errors == 4
    assert source.stats.counters == {"bad_lines": 4, "dead_lettered": 4}
    assert ":3:" in (source.stats.last_error or "") or ":6:" in (source.stats.last_error or "")


async def test_lines_written_to_the_old_file_just_before_the_rotation_is_seen_are_read(
    tmp_path: Path,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    """The source reached the old file's end; then, before it looks at the path again, the
    file is renamed, written a last time, and a new one takes the path. The last lines of the
    old file still come first (CI once lost line 3 this way)."""
    topic = unique_topic("ticks")
    path = tmp_path / "ticks.jsonl"
    path.write_bytes(line(1) + line(2))
    source = file_source(path, topic, settings, registry, offsets)
    check = source._check
    rotate = asyncio.Event()

    def rotating_check(current: Any) -> tuple[bool, bool]:
        # Runs at the old file's end, just before the source looks at the path again.
        if rotate.is_set():
            rotate.clear()
            os.rename(path, tmp_path / "ticks.jsonl.1")
            with (tmp_path / "ticks.jsonl.1").open("ab") as old:
                old.write(line(3) + line(4)[:-1])  # its last line never gets a newline
            path.write_bytes(line(5))
        return check(current)

    source._check = rotating_check  # type: ignore[method-assign]
    async with running(source):
        await eventually(lambda: _end_is(reader, topic, 2))
        rotate.set()
        await eventually(lambda: _end_is(reader, topic, 5))
    received = await reader.read(topic, 5)
    assert [(await reader.decode(r, Tick)).n for r in received] == [1, 2, 3, 4, 5]


async def test_rotation_and_truncation_are_followed(
    tmp_path: Path,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("ticks")
    path = tmp_path / "ticks.jsonl"
    path.write_bytes(line(1) + line(2))
    async with running(file_source(path, topic, settings, registry, offsets)):
        await eventually(lambda: _end_is(reader, topic, 2))
        # logrotate's create mode: the old file is renamed (and written a last time), a new
        # one takes the path.
        os.rename(path, tmp_path / "ticks.jsonl.1")
        with (tmp_path / "ticks.jsonl.1").open("ab") as old:
            old.write(line(3)[:-1])  # its last line never gets a newline
        path.write_bytes(line(4))
        await eventually(lambda: _end_is(reader, topic, 4))
        # copytruncate: the same file, emptied and written again (to less than it held, or
        # the truncation cannot be told from no change between two checks, as with tail -F).
        with path.open("r+b") as f:
            f.truncate(0)
        path.write_bytes(b'{"n": 5}\n')
        await eventually(lambda: _end_is(reader, topic, 5))
    received = await reader.read(topic, 5)
    assert [(await reader.decode(r, Tick)).n for r in received] == [1, 2, 3, 4, 5]

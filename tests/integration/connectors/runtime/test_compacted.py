"""The compacted tables behind connector offsets and statuses, on a topic they create."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from eventplatform.connectors.runtime.compacted import CompactedTable
from eventplatform.settings import Settings

pytestmark = pytest.mark.integration


async def test_tables_on_topics_created_a_moment_ago_start_quietly_and_read_from_the_start(
    settings: Settings, unique_topic: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    # A topic just created can answer ListOffsets with NotLeaderForPartition for a moment
    # (on one broker, about one start in four); starting waits that out without an ERROR line,
    # which `eventplatform up` would print to a new user.
    caplog.set_level(logging.ERROR, logger="aiokafka")
    for n in range(40):
        topic = unique_topic(f"table{n}")
        async with CompactedTable(topic, settings=settings, partitions=3) as table:
            await table.put([(b"key", b"first"), (b"other", b"x"), (b"key", f"{n}".encode())])
        async with CompactedTable(topic, settings=settings) as again:
            assert dict(again.entries) == {b"key": f"{n}".encode(), b"other": b"x"}, topic
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

"""Source offsets kept in a compacted Kafka topic, the way Kafka Connect keeps them.

Where a source stopped reading is its *position*: a source partition (which stream: a file,
a table) and a source offset (how far: a byte position, a sequence number), both JSON objects.
They live in the compacted topic ``_eventplatform_connect_offsets``, in Kafka Connect's own
format (``OffsetStorageWriter`` with the ``JsonConverter`` and schemas off):

- key: ``["<connector name>", {<source partition>}]``, compact JSON with sorted keys, so the
  same partition always gives the same bytes and compaction keeps only its latest offset;
- value: ``{<source offset>}`` as JSON, or a tombstone once reset.

The store is read to its end when it starts, so a restarted source resumes where the last
acknowledged record left it. The framework writes a position only after the record it belongs
to was acknowledged (:mod:`eventplatform.connectors.runtime.pump`): a crash in between re-emits the
record after the restart, with the same event id, and consumers deduplicate it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from eventplatform.connectors.runtime.compacted import CompactedTable
from eventplatform.connectors.sdk.records import SourcePosition
from eventplatform.errors import ConnectorError
from eventplatform.settings import Settings

__all__ = ["DEFAULT_OFFSETS_TOPIC", "OffsetStore", "offset_key"]

#: The compacted topic source offsets are kept in.
DEFAULT_OFFSETS_TOPIC = "_eventplatform_connect_offsets"


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def offset_key(connector: str, partition: Mapping[str, Any]) -> bytes:
    """The record key of ``partition`` of ``connector``: ``["name",{...}]``.

    Raises:
        ConnectorError: the partition is not JSON-serialisable.
    """
    try:
        return _json([connector, dict(partition)])
    except (TypeError, ValueError) as exc:
        raise ConnectorError(
            f"connector {connector!r}: source partition {partition!r} is not JSON: {exc}"
        ) from exc


def _decode_key(raw: bytes) -> tuple[str, dict[str, Any]] | None:
    try:
        name, partition = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(name, str) or not isinstance(partition, dict):
        return None
    return name, partition


class OffsetStore:
    """Committed source positions of every connector, backed by a compacted topic.

    An async context manager; reads the topic to its end on :meth:`start`.

    Args:
        topic: the offsets topic; default ``_eventplatform_connect_offsets``.
        bootstrap_servers, settings: where Kafka is (see
            :class:`~eventplatform.connectors.runtime.compacted.CompactedTable`).
        partitions: partitions of the topic when it is created here.
    """

    def __init__(
        self,
        *,
        topic: str = DEFAULT_OFFSETS_TOPIC,
        bootstrap_servers: str | None = None,
        settings: Settings | None = None,
        partitions: int = 1,
    ) -> None:
        self._table = CompactedTable(
            topic, bootstrap_servers=bootstrap_servers, settings=settings, partitions=partitions
        )

    @property
    def topic(self) -> str:
        """The offsets topic."""
        return self._table.topic

    def __repr__(self) -> str:
        return f"OffsetStore(topic={self.topic!r})"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Create the topic when missing and read it to its end.

        Raises:
            ResourceStateError: after :meth:`close`.
            ConfigurationError: the topic exists and is not compacted.
            KafkaError: Kafka cannot be reached.
        """
        await self._table.start()

    async def close(self) -> None:
        """Disconnect. Idempotent."""
        await self._table.close()

    async def refresh(self) -> None:
        """Read offsets written since the last read (by another process, e.g. a reset).

        Raises:
            ResourceStateError: not started.
            KafkaError: Kafka cannot be reached.
        """
        await self._table.refresh()

    def get(self, connector: str, partition: Mapping[str, Any]) -> dict[str, Any] | None:
        """The committed offset of ``partition`` of ``connector``, or None.

        Raises:
            ConnectorError: the partition is not JSON-serialisable.
        """
        raw = self._table.entries.get(offset_key(connector, partition))
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def positions(self, connector: str | None = None) -> list[tuple[str, SourcePosition]]:
        """``(connector, position)`` of every committed offset (of ``connector`` only if given),
        sorted by connector and partition."""
        found: list[tuple[str, SourcePosition]] = []
        for raw_key, raw_value in self._table.entries.items():
            decoded = _decode_key(raw_key)
            if decoded is None or (connector is not None and decoded[0] != connector):
                continue
            try:
                offset = json.loads(raw_value)
            except ValueError:
                continue
            if isinstance(offset, dict):
                found.append((decoded[0], SourcePosition(decoded[1], offset)))
        found.sort(key=lambda item: (item[0], _json(dict(item[1].partition))))
        return found

    def connectors(self) -> list[str]:
        """Names of the connectors that have committed offsets, sorted."""
        return sorted({name for name, _ in self.positions()})

    async def commit(self, connector: str, positions: Iterable[SourcePosition]) -> None:
        """Write the offsets of ``positions`` (the last one per partition wins) and wait for
        the acknowledgements.

        Raises:
            ConnectorError: a partition or offset is not JSON-serialisable.
            ResourceStateError: not started.
            PublishTimeout, KafkaError: the write was not acknowledged.
        """
        latest: dict[bytes, bytes] = {}
        for position in positions:
            key = offset_key(connector, position.partition)
            try:
                latest[key] = _json(dict(position.offset))
            except (TypeError, ValueError) as exc:
                raise ConnectorError(
                    f"connector {connector!r}: source offset {position.offset!r} is not JSON: {exc}"
                ) from exc
        await self._table.put(list(latest.items()))

    async def reset(
        self, connector: str, partitions: Iterable[Mapping[str, Any]] | None = None
    ) -> int:
        """Forget the offsets of ``connector`` (all of them, or those of ``partitions``).

        Writes a tombstone per partition; the connector starts those partitions afresh on its
        next start. Stop the connector first: a running one keeps the positions it holds.

        Returns:
            How many committed offsets were removed.

        Raises:
            ResourceStateError: not started.
            PublishTimeout, KafkaError: the tombstones were not acknowledged.
        """
        await self.refresh()
        if partitions is None:
            keys = [offset_key(name, p.partition) for name, p in self.positions(connector)]
        else:
            keys = [
                offset_key(connector, partition)
                for partition in partitions
                if offset_key(connector, partition) in self._table.entries
            ]
        await self._table.put([(key, None) for key in keys])
        return len(keys)

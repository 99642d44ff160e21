"""Connector statuses kept in a compacted Kafka topic, for status views in other processes.

Like Kafka Connect's ``status.storage.topic``, the runtime writes one record per connector
(key ``status-connector-<name>``, value a JSON
:class:`~eventplatform.connectors.sdk.status.ConnectorStatus`) when its state changes and every
few seconds while it runs, so ``eventplatform connectors status`` can show the state, counters
and last error of connectors running anywhere. A status whose ``updated_at`` is older than a
few report intervals belongs to a runtime that is gone (stopped hard, or killed): views show it
as stale.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from eventplatform.connectors.runtime.compacted import CompactedTable
from eventplatform.connectors.sdk.status import ConnectorStatus
from eventplatform.errors import ConnectorError
from eventplatform.settings import Settings

__all__ = ["DEFAULT_STATUS_TOPIC", "StatusStore"]


#: The compacted topic connector statuses are kept in.
DEFAULT_STATUS_TOPIC = "_eventplatform_connect_status"
_PREFIX = "status-connector-"


class StatusStore:
    """The latest status of every connector, backed by a compacted topic.

    Args:
        topic: the status topic; default ``_eventplatform_connect_status``.
        bootstrap_servers, settings: where Kafka is.
    """

    def __init__(
        self,
        *,
        topic: str = DEFAULT_STATUS_TOPIC,
        bootstrap_servers: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._table = CompactedTable(topic, bootstrap_servers=bootstrap_servers, settings=settings)

    @property
    def topic(self) -> str:
        """The status topic."""
        return self._table.topic

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
            ConfigurationError: the topic exists and is not compacted.
            KafkaError: Kafka cannot be reached.
        """
        await self._table.start()

    async def close(self) -> None:
        """Disconnect. Idempotent."""
        await self._table.close()

    async def publish(self, statuses: Iterable[ConnectorStatus]) -> None:
        """Write ``statuses`` and wait for the acknowledgements.

        Raises:
            ResourceStateError: not started.
            PublishTimeout, KafkaError: not acknowledged.
        """
        items: list[tuple[bytes, bytes | None]] = [
            (
                f"{_PREFIX}{status.name}".encode(),
                json.dumps(status.as_dict(), separators=(",", ":")).encode(),
            )
            for status in statuses
        ]
        await self._table.put(items)

    async def remove(self, name: str) -> None:
        """Forget the status of connector ``name`` (a tombstone).

        Raises:
            ResourceStateError: not started.
            PublishTimeout, KafkaError: not acknowledged.
        """
        await self._table.put([(f"{_PREFIX}{name}".encode(), None)])

    async def read(self) -> list[ConnectorStatus]:
        """The latest status of every connector, by name, after reading the topic to its end.

        Records that are not statuses are passed over.

        Raises:
            ResourceStateError: not started.
            KafkaError: Kafka cannot be reached.
        """
        await self._table.refresh()
        found: list[ConnectorStatus] = []
        for key, value in self._table.entries.items():
            if not key.startswith(_PREFIX.encode()):
                continue
            try:
                found.append(ConnectorStatus.from_dict(json.loads(value)))
            except (ValueError, ConnectorError):
                continue
        return sorted(found, key=lambda status: status.name)

    @staticmethod
    def is_stale(status: ConnectorStatus, interval: float, now: float | None = None) -> bool:
        """Whether ``status`` is older than three report intervals (its runtime is gone)."""
        return (now if now is not None else time.time()) - status.updated_at > 3 * interval

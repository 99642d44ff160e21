"""Connector statuses kept in a compacted Kafka topic, for status views in other processes.

:class:`ConnectorState` and :class:`ConnectorStats` are what a connector reports about itself;
:class:`ConnectorStatus` is a snapshot of both for a status view.

Like Kafka Connect's ``status.storage.topic``, the runtime writes one record per connector
(key ``status-connector-<name>``, value a JSON :class:`ConnectorStatus`) when its state changes
and every few seconds while it runs, so ``eventplatform connectors status`` can show the
state, counters and last error of connectors running anywhere. A status whose ``updated_at``
is older than a few report intervals belongs to a runtime that is gone (stopped hard, or
killed): views show it as stale.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

from eventplatform.connectors.compacted import CompactedTable
from eventplatform.errors import ConnectorError
from eventplatform.settings import Settings

__all__ = [
    "DEFAULT_STATUS_TOPIC",
    "ConnectorState",
    "ConnectorStats",
    "ConnectorStatus",
    "StatusStore",
]


#: The compacted topic connector statuses are kept in.
DEFAULT_STATUS_TOPIC = "_eventplatform_connect_status"
_PREFIX = "status-connector-"


class ConnectorState(StrEnum):
    """What a connector is doing, as a status view shows it."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(slots=True)
class ConnectorStats:
    """Live counters of one connector.

    Attributes:
        records: records published (sources) or events delivered (sinks).
        errors: records, requests or lines that failed (each also logged).
        last_activity: wall-clock time of the last record or error, None before the first.
        last_error: the message of the latest error.
        counters: connector-specific counts (``rejected``, ``duplicates``, ``dead_lettered``…).
    """

    records: int = 0
    errors: int = 0
    last_activity: float | None = None
    last_error: str | None = None
    counters: dict[str, int] = field(default_factory=dict)

    def published(self, count: int = 1) -> None:
        """Count ``count`` records done."""
        self.records += count
        self.last_activity = time.time()

    def failed(self, error: BaseException | str) -> None:
        """Count one error and remember its message."""
        self.errors += 1
        self.last_activity = time.time()
        self.last_error = error if isinstance(error, str) else _describe(error)

    def count(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the connector-specific counter ``name``."""
        self.counters[name] = self.counters.get(name, 0) + amount

    def merged(self, other: ConnectorStats) -> ConnectorStats:
        """These counters plus ``other``'s (the latest activity and error win)."""
        counters = dict(self.counters)
        for name, value in other.counters.items():
            counters[name] = counters.get(name, 0) + value
        latest = max(
            (self, other), key=lambda s: s.last_activity if s.last_activity is not None else -1
        )
        return ConnectorStats(
            records=self.records + other.records,
            errors=self.errors + other.errors,
            last_activity=latest.last_activity,
            last_error=other.last_error or self.last_error,
            counters=counters,
        )


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    """A snapshot of one connector for status views (``connectors status``, ``up``).

    Attributes:
        name, type, role: which connector (``type`` is its registered type name).
        state: what it is doing.
        records, errors, last_activity, last_error, counters: see :class:`ConnectorStats`;
            totals over restarts when reported by the runtime.
        restarts: how often the runtime restarted it after a failure.
        next_restart_at: when a failed connector is started again, None if it is not.
        since: wall-clock time the state was entered.
        worker: the process reporting (``host-pid``).
        updated_at: when the snapshot was taken.
    """

    name: str
    type: str
    role: str
    state: ConnectorState
    records: int = 0
    errors: int = 0
    last_activity: float | None = None
    last_error: str | None = None
    counters: Mapping[str, int] = field(default_factory=dict)
    restarts: int = 0
    next_restart_at: float | None = None
    since: float = 0.0
    worker: str = ""
    updated_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data."""
        data = asdict(self)
        data["state"] = self.state.value
        data["counters"] = dict(self.counters)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConnectorStatus:
        """The snapshot :meth:`as_dict` produced (unknown keys are ignored).

        Raises:
            ConnectorError: the data is not a status snapshot.
        """
        try:
            known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
            known["state"] = ConnectorState(known["state"])
            known["counters"] = {str(k): int(v) for k, v in dict(known.get("counters", {})).items()}
            return cls(**known)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConnectorError(f"not a connector status: {exc}") from exc


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

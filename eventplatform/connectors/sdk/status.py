"""What a connector reports about itself: its state, its counters, and a snapshot of both.

:class:`ConnectorState` and :class:`ConnectorStats` are kept by every connector;
:class:`ConnectorStatus` is a snapshot of both for a status view. The runtime keeps the
snapshots of every connector in a compacted topic
(:class:`~eventplatform.connectors.runtime.statuses.StatusStore`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from eventplatform.errors import ConnectorError

__all__ = ["ConnectorState", "ConnectorStats", "ConnectorStatus"]


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

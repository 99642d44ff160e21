"""Readiness: what ``/health/ready`` checks, as :class:`Check` results of :class:`Probe` objects.

A process is *ready* when every check of every probe passes:

- :class:`BrokerProbe`: a TCP connection to one of the bootstrap servers opens (within a
  second). It proves the listener is up, not that the credentials work: a client that cannot
  authenticate fails its own checks (an app does not join its group).
- :class:`AppProbe`: the :class:`~eventplatform.app.EventApp` is consuming, has joined its
  group (the coordinator is known) and holds at least one partition (``EventApp.health()``).
  A member of a group with more members than partitions holds none and reports not ready,
  with that reason.
- :class:`ConnectorsProbe`: every connector of the runtime is ``running`` (a failed one is
  reported with its last error and when it restarts).

:class:`Readiness` gathers the checks; its JSON form lists every check and, when not ready,
the reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from eventplatform.errors import ResourceStateError
from eventplatform.settings import parse_bootstrap_servers

if TYPE_CHECKING:  # the app imports this module; connectors import the app
    from eventplatform.connectors.sdk.status import ConnectorStatus

__all__ = [
    "AppHealth",
    "AppProbe",
    "BrokerProbe",
    "Check",
    "ConnectorsProbe",
    "Probe",
    "Readiness",
    "readiness",
]


@dataclass(frozen=True, slots=True)
class Check:
    """One condition of readiness.

    Attributes:
        name: what was checked (``broker``, ``app billing``, ``connector orders-in``).
        ok: whether it holds.
        detail: what was found, in words.
    """

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """The checks of one ``/health/ready`` answer."""

    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        """Whether every check passed."""
        return all(check.ok for check in self.checks)

    @property
    def reasons(self) -> list[str]:
        """``name: detail`` of each failed check."""
        return [f"{check.name}: {check.detail}" for check in self.checks if not check.ok]

    def as_dict(self) -> dict[str, Any]:
        """The JSON body: ``status``, the failed checks' ``reasons``, and every check."""
        body: dict[str, Any] = {"status": "ready" if self.ready else "not ready"}
        if not self.ready:
            body["reasons"] = self.reasons
        body["checks"] = [
            {"name": check.name, "ok": check.ok, "detail": check.detail} for check in self.checks
        ]
        return body


class Probe(Protocol):
    """Something readiness depends on."""

    async def checks(self) -> list[Check]:
        """The checks as of now; never raises for a failed condition (that is a failed check)."""


async def readiness(probes: Sequence[Probe]) -> Readiness:
    """The checks of all ``probes``, run concurrently."""
    results = await asyncio.gather(*(probe.checks() for probe in probes))
    return Readiness(tuple(check for checks in results for check in checks))


@dataclass(frozen=True, slots=True)
class AppHealth:
    """What an :class:`~eventplatform.app.EventApp` tells a readiness probe (``app.health()``).

    Attributes:
        name, group_id: which app.
        started: started and not closed.
        running: its consumption loop runs.
        rebalances: partition assignments received so far (0: never joined its group).
        coordinator_known: the consumer knows its group coordinator (false while the broker
            is unreachable: aiokafka marks the coordinator dead after a failed heartbeat).
        partitions: the ``(topic, partition)`` pairs assigned to this member now.
    """

    name: str
    group_id: str
    started: bool
    running: bool
    rebalances: int
    coordinator_known: bool
    partitions: tuple[tuple[str, int], ...]

    @property
    def ready(self) -> bool:
        """Consuming, in its group, with partitions."""
        return all(check.ok for check in self.checks())

    def checks(self) -> list[Check]:
        """The app's checks: running, then group membership."""
        name = f"app {self.name}"
        if not self.started:
            return [Check(name, False, "not started")]
        if not self.running:
            return [Check(name, False, "started, not consuming")]
        group = f"group {self.group_id}"
        if not self.rebalances:
            return [Check(name, True, "consuming"), Check(group, False, "not joined yet")]
        if not self.coordinator_known:
            detail = "group coordinator unknown (broker unreachable, or the group is moving)"
            return [Check(name, True, "consuming"), Check(group, False, detail)]
        if not self.partitions:
            detail = "joined, no partitions assigned (more members than partitions?)"
            return [Check(name, True, "consuming"), Check(group, False, detail)]
        shown = ", ".join(f"{t}[{p}]" for t, p in self.partitions[:10])
        more = f" and {len(self.partitions) - 10} more" if len(self.partitions) > 10 else ""
        return [
            Check(name, True, "consuming"),
            Check(group, True, f"{len(self.partitions)} partition(s): {shown}{more}"),
        ]


class _HasHealth(Protocol):
    def health(self) -> AppHealth: ...


class AppProbe:
    """The checks of an :class:`~eventplatform.app.EventApp` (see :class:`AppHealth`)."""

    def __init__(self, app: _HasHealth) -> None:
        self.app = app

    async def checks(self) -> list[Check]:
        """The app's checks as of now."""
        return self.app.health().checks()


class BrokerProbe:
    """Whether a TCP connection to one of ``bootstrap_servers`` opens within ``timeout``.

    Args:
        bootstrap_servers: ``host:port[,host:port…]``.
        timeout: seconds per attempt (the servers are tried concurrently).
    """

    def __init__(self, bootstrap_servers: str, *, timeout: float = 1.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.servers = parse_bootstrap_servers(bootstrap_servers)
        self.timeout = timeout

    async def _reach(self, host: str, port: int) -> str | None:
        """None when a connection opened, else why not."""
        try:
            async with asyncio.timeout(self.timeout):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            return f"{host}:{port} did not answer within {self.timeout:g}s"
        except OSError as exc:
            return f"{host}:{port}: {exc.strerror or exc}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None

    async def checks(self) -> list[Check]:
        """One check, ``broker``: reachable, or every server's failure."""
        failures = await asyncio.gather(*(self._reach(h, p) for h, p in self.servers))
        if any(failure is None for failure in failures):
            return [Check("broker", True, f"{self.bootstrap_servers} reachable")]
        return [Check("broker", False, "; ".join(f for f in failures if f))]


class ConnectorsProbe:
    """Every connector is ``running``.

    Args:
        statuses: the connectors' statuses now (``runtime.status``); may raise
            :class:`~eventplatform.errors.ResourceStateError` before the runtime exists.
    """

    def __init__(self, statuses: Callable[[], Sequence[ConnectorStatus]]) -> None:
        self.statuses = statuses

    async def checks(self) -> list[Check]:
        """One check per connector, or one ``connectors`` check before they exist."""
        try:
            statuses = self.statuses()
        except ResourceStateError:
            return [Check("connectors", False, "not started")]
        return [_connector_check(status) for status in statuses]


def _connector_check(status: ConnectorStatus) -> Check:
    name = f"connector {status.name}"
    state = status.state  # a StrEnum: compared by value, without importing the connectors
    if state == "running":
        return Check(name, True, "running")
    detail = str(state.value)
    if status.last_error and state == "failed":
        detail += f": {status.last_error}"
    if status.next_restart_at is not None:
        detail += " (restart pending)"
    return Check(name, False, detail)

"""Static group membership (KIP-345) and noticing a second process with the same instance id.

With ``group.instance.id`` set, the coordinator keeps a member's partitions for it while it is
gone (up to the session timeout) and hands them straight back when a process with the same id
joins again: a restarted instance resumes at once, without a rebalance of the whole group.

The price is that the coordinator cannot tell a restart from a *second* live process with the
same id. It gives the membership to whichever joined last and forgets the other's member id.
aiokafka's heartbeats (v0/v1) carry no instance id, so the displaced member is not told
``FENCED_INSTANCE_ID``; it sees ``UNKNOWN_MEMBER_ID``, rejoins with the same instance id and
displaces the newcomer in turn: the two hand the partitions to and fro every heartbeat.

:class:`StaticMembership` breaks that loop the way the Java client's fatal
``FencedInstanceIdException`` does. aiokafka revokes the partitions before every rejoin, and a
member that lost its membership reaches that point with its member id reset: a *loss*. One
loss is normal (a session that expired while the process was stalled). A second loss within
``window`` seconds means a live twin: the member then does not rejoin (which would displace the
twin once more) and stops with :class:`~eventplatform.errors.InstanceFenced`. Of two twins,
the one that joined first is displaced first and so is the one that stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from eventplatform.errors import InstanceFenced

__all__ = ["StaticMembership", "member_id_of", "stop_consumer"]

log = logging.getLogger("eventplatform.app")


class StaticMembership:
    """Watches one static member's membership across its joins.

    Args:
        group_id: the consumer group.
        instance_id: this member's ``group.instance.id``.
        window: seconds within which a second loss means a live twin; a few session
            timeouts (twins displace each other every heartbeat interval).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        *,
        group_id: str,
        instance_id: str,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group_id = group_id
        self.instance_id = instance_id
        self.window = window
        self._clock = clock
        self._member_id: str | None = None
        self._lost_at: float | None = None
        #: Set once a twin is detected; the consumption loop raises it.
        self.fenced: InstanceFenced | None = None

    def joined(self, member_id: str) -> None:
        """Record the member id of a completed join (called after every assignment)."""
        if member_id:
            self._member_id = member_id

    def rejoining(self, member_id: str) -> bool:
        """Called before a rejoin with the member id the consumer holds then.

        Returns:
            True when this member must not rejoin: a twin holds the instance id
            (:attr:`fenced` is set).
        """
        if self.fenced is not None:
            return True
        if member_id or self._member_id is None:
            return False  # an ordinary rebalance, or the first join
        self._member_id = None
        now = self._clock()
        if self._lost_at is not None and now - self._lost_at <= self.window:
            self.fenced = InstanceFenced(
                f"another process joined consumer group {self.group_id!r} with instance id "
                f"{self.instance_id!r} (KIP-345 static membership gives an instance id to one "
                "process at a time); this one stops. Give every running instance its own "
                "--instance-id (EVENTPLATFORM_CONSUMER__INSTANCE_ID).",
                group=self.group_id,
                instance_id=self.instance_id,
            )
            return True
        log.info(
            "instance %r of group %r lost its membership (its session expired, or another "
            "process took the instance id over); joining again",
            self.instance_id,
            self.group_id,
        )
        self._lost_at = now
        return False


def member_id_of(consumer: Any) -> str:
    """The member id an ``AIOKafkaConsumer`` holds in its group ('' before the first join).

    aiokafka exposes no accessor for it; the coordinator's attribute is read defensively so a
    future aiokafka without it only turns twin detection off.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    member_id = getattr(coordinator, "member_id", "")
    return member_id if isinstance(member_id, str) else ""


async def stop_consumer(consumer: Any, membership: StaticMembership | None) -> None:
    """Stop an ``AIOKafkaConsumer``; for a fenced static member, without rejoining first.

    The fenced member's coordinator task waits in the rebalance callback (see
    ``ConsumptionLoop.before_rejoin``); ``consumer.stop()`` would wait for that task to finish
    its join. It is cancelled first, so the member leaves without taking the instance id back.
    """
    if membership is not None and membership.fenced is not None:
        task = getattr(getattr(consumer, "_coordinator", None), "_coordination_task", None)
        if isinstance(task, asyncio.Task) and not task.done():
            task.cancel()
            await asyncio.wait([task])
    await consumer.stop()

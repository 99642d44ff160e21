"""What the cluster proofs share: app environments, group progress, reading topics back.

The single-broker proofs' helpers (:mod:`tests.integration.proofs`) take a bare bootstrap
address; on the cluster every client also needs the cluster's security options (SASL_SSL for
``secure_kafka_cluster``), so these take :class:`~eventplatform.settings.KafkaSettings`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Self

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError as AIOKafkaError

from eventplatform.devkafka.local import LocalCluster
from eventplatform.errors import EventPlatformError
from eventplatform.settings import KafkaSettings, ProducerSettings, RegistrySettings, Settings
from tests.integration.proofs.conftest import Names
from tests.integration.proofs.conftest import app_environment as single_broker_environment
from tests.integration.proofs.streams import GroupProgress, read_topic


def app_environment(
    cluster: LocalCluster, names: Names, store: str, **extra: str
) -> dict[str, str]:
    """The environment of a proof's ``serve`` processes on ``cluster`` (as its admin).

    As the single-broker proofs' (short session timeout, 250 records a poll), plus the
    cluster's address and security settings (:meth:`LocalCluster.env`).
    """
    env = cluster.env()
    servers = env.pop("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS")
    return single_broker_environment(servers, names, store, **env, **extra)


def client_settings(
    cluster: LocalCluster, names: Names, *, delivery_timeout: float = 60
) -> Settings:
    """The test process's settings: the cluster, the proof's registry topic, and a delivery
    timeout long enough to ride out a leader election (~6–7 s here)."""
    return Settings(
        kafka=cluster.kafka_settings(),
        registry=RegistrySettings(topic=names.registry),
        producer=ProducerSettings(delivery_timeout=delivery_timeout),
    )


def patient(check: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    """``check``, answering False while the cluster cannot answer it (a coordinator or leader
    moving after a kill), so that a wait polls again instead of failing on the first error."""

    async def asked() -> bool:
        try:
            return await check()
        except (AIOKafkaError, EventPlatformError, OSError, TimeoutError):
            return False

    return asked


def _admin(kafka: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers, **kafka.connection_options()
    )


class ClusterGroup(GroupProgress):
    """A consumer group on the cluster: committed offsets, lag and who holds what.

    An async context manager (it holds an admin client and a group-less consumer).
    """

    def __init__(self, kafka: KafkaSettings, *, group: str, topic: str, partitions: int) -> None:
        super().__init__(
            bootstrap_servers=kafka.bootstrap_servers,
            admin=_admin(kafka),
            group=group,
            topic=topic,
            partitions=partitions,
            **kafka.connection_options(),
        )

    async def __aenter__(self) -> Self:
        await self._admin.start()
        return await super().__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await super().__aexit__(exc_type, exc, tb)
        await self._admin.close()

    async def consumed(self) -> int:
        """Records the group committed past, over all partitions."""
        return sum((await self.committed()).values())

    async def assignment(self) -> dict[str, list[int]] | None:
        """Instance id → the partitions it holds, when the group is ``Stable`` (else None).

        From DescribeGroups: each member's assignment as the group leader computed it.
        """
        [response] = await self._admin.describe_consumer_groups([self.group])
        described: Any = response.groups[0]
        state, members = described[2], described[5]
        if state != "Stable":
            return None
        held: dict[str, list[int]] = {}
        for member in members:
            # aiokafka asks DescribeGroups v2: (member_id, client_id, host, metadata,
            # assignment); a static member's id is "<group.instance.id>-<UUID>".
            member_id: str = member[0]
            instance = member_id[:-37] if member_id[-37:-36] == "-" else member_id
            assignment = ConsumerProtocolMemberAssignment.decode(member[-1])
            held[instance] = sorted(p for _topic, parts in assignment.assignment for p in parts)
        return held


async def read_records(
    kafka: KafkaSettings,
    topic: str,
    *,
    partitions: int,
    isolation_level: str = "read_uncommitted",
) -> list[Any]:
    """Every record of ``topic`` up to its end offsets now (:func:`read_topic` on the
    cluster, with its connection options)."""
    return await read_topic(
        kafka.bootstrap_servers,
        topic,
        partitions=partitions,
        isolation_level=isolation_level,
        **kafka.connection_options(),
    )


def event_ids(records: Iterable[Any]) -> Counter[str]:
    """How often each CloudEvents id (the ``ce_id`` header) occurs among ``records``."""
    return Counter(dict(record.headers)["ce_id"].decode() for record in records)

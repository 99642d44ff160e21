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

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import TopicPartition

from eventplatform.devkafka.local import LocalCluster
from eventplatform.errors import EventPlatformError
from eventplatform.settings import KafkaSettings, ProducerSettings, RegistrySettings, Settings
from tests.integration.proofs.conftest import Names
from tests.integration.proofs.processes import child_environment


def app_environment(
    cluster: LocalCluster, names: Names, store: str, **extra: str
) -> dict[str, str]:
    """The environment of a proof's ``serve`` processes on ``cluster`` (as its admin).

    As the single-broker proofs' (short session timeout, 250 records a poll), plus the
    cluster's address and security settings (:meth:`LocalCluster.env`).
    """
    return child_environment(
        **cluster.env(),
        EVENTPLATFORM_REGISTRY__TOPIC=names.registry,
        EVENTPLATFORM_CONSUMER__GROUP_ID=names.group,
        EVENTPLATFORM_CONSUMER__SESSION_TIMEOUT_MS="6000",
        EVENTPLATFORM_CONSUMER__HEARTBEAT_INTERVAL_MS="1000",
        EVENTPLATFORM_CONSUMER__MAX_POLL_RECORDS="250",
        EVENTPLATFORM_IDEMPOTENCY__STORE=store,
        PROOF_TOPIC=names.topic,
        PROOF_OUTPUT_TOPIC=names.output,
        **extra,
    )


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


class ClusterGroup:
    """A consumer group on the cluster: committed offsets, lag and who holds what.

    An async context manager (it holds an admin client and a group-less consumer).
    """

    def __init__(self, kafka: KafkaSettings, *, group: str, topic: str, partitions: int) -> None:
        self.group = group
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._admin = _admin(kafka)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            enable_auto_commit=False,
            **kafka.connection_options(),
        )

    async def __aenter__(self) -> Self:
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offset per partition (0 where it committed nothing yet)."""
        offsets = await self._admin.list_consumer_group_offsets(
            self.group, partitions=self.partitions
        )
        return {tp: max(offsets[tp].offset, 0) if tp in offsets else 0 for tp in self.partitions}

    async def consumed(self) -> int:
        """Records the group committed past, over all partitions."""
        return sum((await self.committed()).values())

    async def lag(self) -> int:
        """Records of the topic the group has not committed past yet."""
        ends = await self._consumer.end_offsets(self.partitions)
        committed = await self.committed()
        return sum(ends[tp] - committed[tp] for tp in self.partitions)

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
    """Every record of ``topic`` up to its end offsets now (the last stable offsets when
    ``read_committed``): no settling delay, no guess of how many to expect."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka.connection_options(),
    )
    await consumer.start()
    records: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            batch = await consumer.getmany(*left, timeout_ms=500)
            for rs in batch.values():
                records += rs
            # Transaction markers take offsets but are never returned: compare positions.
            for tp in list(left):
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return records


def event_ids(records: Iterable[Any]) -> Counter[str]:
    """How often each CloudEvents id (the ``ce_id`` header) occurs among ``records``."""
    return Counter(dict(record.headers)["ce_id"].decode() for record in records)

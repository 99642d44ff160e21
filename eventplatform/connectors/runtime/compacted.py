"""A compacted Kafka topic used as a key → latest value table (offsets, statuses).

Kafka Connect keeps its source offsets and connector statuses this way
(``offset.storage.topic``, ``status.storage.topic``): every write is a record keyed by what it
describes, ``cleanup.policy=compact`` keeps at least the latest record per key, a tombstone
(null value) deletes one, and a reader rebuilds the table by reading the topic from the start
to its end offsets. :class:`CompactedTable` does exactly that, with writes acknowledged by all
in-sync replicas (``acks=all``, idempotent producer) before they count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import TopicPartition

from eventplatform.errors import (
    ConfigurationError,
    KafkaError,
    PublishError,
    PublishTimeout,
    ResourceStateError,
)
from eventplatform.producer.deadlines import all_acknowledged
from eventplatform.settings import KafkaSettings, Settings, load_settings

__all__ = ["CompactedTable"]

log = logging.getLogger("eventplatform.connectors")

_TOPIC_ALREADY_EXISTS = 36


class CompactedTable:
    """A compacted topic read fully into memory at start, then written through.

    An async context manager. :meth:`start` creates the topic when missing (compacted, the
    given partitions) and reads it to its end; :meth:`refresh` reads what others wrote since;
    :meth:`put` writes and waits for the acknowledgements before updating the table.

    Args:
        topic: the topic.
        bootstrap_servers: the cluster; default ``settings.kafka.bootstrap_servers``.
        settings: all settings; default :func:`~eventplatform.settings.load_settings`.
        partitions: partitions of a topic created here.
        replication_factor: replicas of a topic created here; default min(3, brokers).
        request_timeout: seconds a Kafka request, and reading the topic to its end, may take.

    Raises:
        ConfigurationError: no bootstrap servers are known.
    """

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str | None = None,
        settings: Settings | None = None,
        partitions: int = 1,
        replication_factor: int | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        settings = settings or load_settings()
        servers = bootstrap_servers or settings.kafka.bootstrap_servers
        if not servers:
            raise ConfigurationError(
                f"the connector topic {topic!r} needs Kafka: pass bootstrap_servers= or set "
                "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS"
            )
        if partitions < 1:
            raise ConfigurationError(f"partitions must be >= 1, not {partitions}")
        self.topic = topic
        self.bootstrap_servers = servers
        self._partitions = partitions
        self._replication_factor = replication_factor
        self._kafka = settings.kafka
        self._timeout = request_timeout
        self._options = {"bootstrap_servers": servers, **_client_options(settings.kafka)}
        self._options["request_timeout_ms"] = int(request_timeout * 1000)
        self._entries: dict[bytes, bytes] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: list[TopicPartition] = []
        self._started = False
        self._closed = False
        self._read_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"CompactedTable(topic={self.topic!r}, bootstrap_servers={self.bootstrap_servers!r})"

    @contextmanager
    def _kafka_errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (kafka_errors.KafkaTimeoutError, kafka_errors.RequestTimedOutError) as exc:
            raise PublishTimeout(f"topic {self.topic!r}: {doing} timed out: {exc!r}") from exc
        except kafka_errors.KafkaError as exc:
            raise KafkaError(f"topic {self.topic!r}: {doing} failed: {exc!r}") from exc
        except (OSError, TimeoutError) as exc:
            raise PublishTimeout(f"topic {self.topic!r}: {doing} failed: {exc!r}") from exc

    # -- lifecycle ---------------------------------------------------------------------------

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
        """Create the topic when missing, connect, and read the topic to its end.

        Raises:
            ResourceStateError: after :meth:`close`.
            ConfigurationError: the topic exists and is not compacted.
            KafkaError: Kafka cannot be reached or refused.
        """
        if self._started:
            return
        if self._closed:
            raise ResourceStateError(f"{self!r} cannot be restarted after close()")
        try:
            partitions = await self._ensure_topic()
            with self._kafka_errors("connecting"):
                self._producer = AIOKafkaProducer(
                    acks="all", enable_idempotence=True, linger_ms=0, **self._options
                )
                await self._producer.start()
                # A short fetch wait: the reader is paused between reads, and a long poll still
                # pending would delay the next end-offsets request behind it.
                self._consumer = AIOKafkaConsumer(
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    fetch_max_wait_ms=50,
                    **self._options,
                )
                await self._consumer.start()
                self._assigned = [TopicPartition(self.topic, p) for p in range(partitions)]
                # Start offsets asked before the partitions are assigned, then set with no
                # await between: ListOffsets is retried quietly here until a topic created a
                # moment ago has its leader, where the fetcher's own reset of a partition
                # without a position logs every retry at ERROR (NotLeaderForPartition).
                starts = await self._consumer.beginning_offsets(self._assigned)
                self._consumer.assign(self._assigned)
                for tp, offset in starts.items():
                    self._consumer.seek(tp, offset)
                self._consumer.pause(*self._assigned)
            self._started = True
            await self.refresh()
        except BaseException:
            self._started = False
            await self._shutdown()
            raise

    async def close(self) -> None:
        """Disconnect. Idempotent."""
        self._closed = True
        self._started = False
        await self._shutdown()

    async def _shutdown(self) -> None:
        clients: tuple[Any, ...] = (self._consumer, self._producer)
        self._consumer = self._producer = None
        for client in clients:
            if client is None:
                continue
            try:
                await client.stop()
            except (kafka_errors.KafkaError, OSError) as exc:  # closing must not mask the cause
                log.warning("topic %s: closing %s failed: %r", self.topic, type(client), exc)

    async def _ensure_topic(self) -> int:
        """Create the topic unless it exists; return its number of partitions."""
        admin = AIOKafkaAdminClient(**self._options)
        with self._kafka_errors("creating the topic"):
            try:
                await admin.start()
                brokers = len((await admin.describe_cluster())["brokers"])
                replicas, min_isr = self._kafka.topic_replication(brokers)
                if self._replication_factor is not None:
                    replicas = self._replication_factor
                    min_isr = min(min_isr, replicas)
                config = {"cleanup.policy": "compact", "min.insync.replicas": str(min_isr)}
                response = await admin.create_topics(
                    [NewTopic(self.topic, self._partitions, replicas, topic_configs=config)]
                )
                for _topic, code, message in response.topic_errors:
                    if code == _TOPIC_ALREADY_EXISTS:
                        return await self._check_existing(admin)
                    if code:
                        error = kafka_errors.for_code(code)
                        raise error(f"creating topic {self.topic!r}: {message}")
                return self._partitions
            finally:
                await admin.close()

    async def _check_existing(self, admin: AIOKafkaAdminClient) -> int:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, self.topic, {"cleanup.policy": None})]
        )
        (resource,) = response.to_object()["resources"]
        actual = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
        policy = actual.get("cleanup.policy", "compact")
        if "compact" not in policy.split(","):
            raise ConfigurationError(
                f"topic {self.topic!r} has cleanup.policy={policy}; it must be compacted "
                "(cleanup.policy=compact), or expiry would lose the latest value of a key"
            )
        (described,) = await admin.describe_topics([self.topic])
        return len(described["partitions"])

    # -- reading and writing ----------------------------------------------------------------------

    def _live(self) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
        if not self._started or self._producer is None or self._consumer is None:
            raise ResourceStateError(f"{self!r} is not started")
        return self._producer, self._consumer

    async def refresh(self) -> None:
        """Read what was written to the topic since the last read, up to its current end.

        Raises:
            ResourceStateError: not started.
            KafkaError: Kafka cannot be reached, or the end was not reached in time.
        """
        _, consumer = self._live()
        async with self._read_lock:
            with self._kafka_errors("reading"):
                ends = await consumer.end_offsets(self._assigned)
                behind = [tp for tp in self._assigned if await consumer.position(tp) < ends[tp]]
                if not behind:
                    return
                loop = asyncio.get_running_loop()
                deadline = loop.time() + self._timeout
                consumer.resume(*behind)
                try:
                    while behind:
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            raise KafkaError(
                                f"topic {self.topic!r}: reading to the end timed out after "
                                f"{self._timeout:.0f}s"
                            )
                        batches = await consumer.getmany(
                            *behind, timeout_ms=max(1, int(min(remaining, 0.5) * 1000))
                        )
                        for records in batches.values():
                            for record in records:
                                self._apply(record.key, record.value)
                        behind = [tp for tp in behind if await consumer.position(tp) < ends[tp]]
                finally:
                    consumer.pause(*self._assigned)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self._entries.pop(key, None)
        else:
            self._entries[key] = value

    @property
    def entries(self) -> Mapping[bytes, bytes]:
        """The table: key → latest value (tombstoned keys are absent)."""
        return self._entries

    async def put(self, items: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Write ``(key, value)`` pairs (None deletes) and wait until all are acknowledged.

        The table reflects them only after the acknowledgement.

        Raises:
            ResourceStateError: not started.
            PublishTimeout: not acknowledged in time (retriable).
            KafkaError: the broker refused a record.
        """
        producer, _ = self._live()
        if not items:
            return
        with self._kafka_errors("writing"):
            futures = [await producer.send(self.topic, value, key=key) for key, value in items]
            try:
                await all_acknowledged(futures, self._timeout)
            except TimeoutError as exc:
                raise PublishTimeout(
                    f"topic {self.topic!r}: a write was not acknowledged in {self._timeout:.0f}s"
                ) from exc
            except kafka_errors.KafkaError as exc:
                raise PublishError(f"topic {self.topic!r}: a write failed: {exc!r}") from exc
        for key, value in items:
            self._apply(key, value)


def _client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka keyword arguments for reaching the cluster, besides its bootstrap servers."""
    return kafka.connection_options() | {"client_id": f"{kafka.client_id}-connect"}

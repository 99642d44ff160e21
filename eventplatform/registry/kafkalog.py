"""The embedded schema registry: its state is the replay of a command log in a Kafka topic.

DESIGN.md decision 5. One topic with a single partition is the ordered log of register, config
and delete commands (:mod:`~eventplatform.registry.commands`); every client replays it from the
start on :meth:`~KafkaLogRegistry.start` into a
:class:`~eventplatform.registry.state.RegistryState` and so reaches the same state as every
other client, without a leader or any server besides the broker. A new schema's id is the
offset of the record that first registered it. Concurrent writers are ordered by the log:
a command whose decision was overtaken is void for every reader, and its writer decides again
(:mod:`~eventplatform.registry.commandlog`).

Catching up is on demand, not a background task: before a read or a decision, the client asks
the broker for the log end offset (one ListOffsets round trip) and applies records up to it.
Every answer therefore reflects every write acknowledged before the call began, in any process,
with no task to supervise and no polling while idle. Resolving an id the client already holds
needs no round trip at all, since an id's schema never changes.

The topic is created when missing: one partition, ``cleanup.policy=delete`` with
``retention.ms=-1`` and ``retention.bytes=-1`` (compaction or expiry would drop commands and
make replicas diverge), replication factor and ``min.insync.replicas`` from
:meth:`~eventplatform.settings.KafkaSettings.topic_replication` (``min(3, brokers)``, and 2 in
sync from three replicas on). An existing topic that breaks these rules is refused with
:class:`~eventplatform.errors.ConfigurationError`. Commands are produced with ``acks=all`` by
an idempotent producer (KIP-98), so an acknowledged command survives a leader change and a
retried send is not appended twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from eventplatform import access
from eventplatform.errors import ConfigurationError, RegistryError, RegistryUnavailable
from eventplatform.observability import events as observed
from eventplatform.producer._errors import KAFKA_FAILURES, translate
from eventplatform.registry.commandlog import CommandLogRegistry
from eventplatform.registry.commands import Command, Init, MalformedCommand, decode, encode
from eventplatform.registry.state import ApplyResult
from eventplatform.settings import KafkaSettings, Settings, load_settings

__all__ = ["DEFAULT_TOPIC", "KafkaLogRegistry"]

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "_eventplatform_schemas"
"""The log topic when none is given (a leading underscore marks it internal, as ``_schemas``)."""

_TOPIC_ALREADY_EXISTS = kafka_errors.TopicAlreadyExistsError.errno
_TOPIC_AUTHORIZATION_FAILED = kafka_errors.TopicAuthorizationFailedError.errno
_REQUIRED_CONFIG = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


class KafkaLogRegistry(CommandLogRegistry):
    """A schema registry that needs nothing but a Kafka cluster.

    Use it as ``async with KafkaLogRegistry(bootstrap_servers="localhost:9092") as registry:``.

    Args:
        bootstrap_servers: ``host:port[,host:port…]``; defaults to ``kafka.bootstrap_servers``
            of the settings.
        topic: the log topic, created if missing; default ``registry.topic`` of the settings
            (``_eventplatform_schemas``).
        replication_factor: for a topic it creates; defaults to ``min(3, brokers)``.
        request_timeout: seconds a Kafka request, or one catch-up, may take.
        settings: where the bootstrap servers, client id and security options come from;
            loaded from the environment and files when not given.
        writer: names this client in the commands it writes (host, pid and a random suffix).

    Raises:
        ConfigurationError: no bootstrap servers are given or configured.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str | None = None,
        topic: str | None = None,
        replication_factor: int | None = None,
        request_timeout: float = 30.0,
        settings: Settings | None = None,
        writer: str | None = None,
    ) -> None:
        super().__init__(writer=writer)
        settings = settings or load_settings()
        kafka = settings.kafka
        topic = topic or settings.registry.topic
        servers = bootstrap_servers or kafka.bootstrap_servers
        if not servers:
            raise ConfigurationError(
                "KafkaLogRegistry needs Kafka: pass bootstrap_servers= or set "
                "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS"
            )
        if replication_factor is not None and replication_factor < 1:
            raise ConfigurationError(f"replication_factor must be >= 1, not {replication_factor}")
        self._servers = servers
        self._topic = topic
        self._tp = TopicPartition(topic, 0)
        self._replication_factor = replication_factor
        self._kafka = kafka
        self._timeout = request_timeout
        self._options = {"bootstrap_servers": servers, **_client_options(kafka, request_timeout)}
        self._producer: AIOKafkaProducer | None = None
        self._producer_started = False
        self._producer_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._probe: AIOKafkaConsumer | None = None
        self._broken: str | None = None

    @property
    def topic(self) -> str:
        """The log topic."""
        return self._topic

    @property
    def bootstrap_servers(self) -> str:
        """The cluster the log lives in."""
        return self._servers

    def __repr__(self) -> str:
        return f"KafkaLogRegistry(bootstrap_servers={self._servers!r}, topic={self._topic!r})"

    def _where(self) -> str:
        return f"schema registry log {self._topic!r} on {self._servers}"

    @contextmanager
    def _kafka_errors(self, doing: str) -> Iterator[None]:
        """Translate the errors of aiokafka (and of the network under it) into ours.

        The producer's one translation decides (:mod:`eventplatform.producer._errors`): what
        it finds retriable leaves the registry unavailable, anything else refuses the request.
        """
        try:
            yield
        except KAFKA_FAILURES as exc:
            error = translate(exc, topic=self._topic, doing=doing, kafka=self._kafka)
            if error.retriable:
                raise RegistryUnavailable(f"{self._where()}: {error}") from exc
            raise RegistryError(f"{self._where()}: {doing} was refused: {error}") from exc

    # -- lifecycle -------------------------------------------------------------------------

    async def _open(self) -> None:
        try:
            await self._ensure_topic()
            with self._kafka_errors("connecting"):
                # Started on the first append: an idempotent producer asks for a producer id,
                # which a principal that may only read the log (a third-party app) is refused.
                self._producer = AIOKafkaProducer(
                    acks="all", enable_idempotence=True, linger_ms=0, **self._options
                )
                self._producer_started = False
                self._consumer = AIOKafkaConsumer(
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    **self._options,
                )
                await self._consumer.start()
                # As the connectors' compacted tables: the start offset asked before assigning
                # (its ListOffsets waits quietly for the leader of a topic created a moment
                # ago), then set with no await between, so the fetcher never resets it itself.
                starts = await self._consumer.beginning_offsets([self._tp])
                self._consumer.assign([self._tp])
                self._consumer.seek(self._tp, starts[self._tp])
                self._consumer.pause(self._tp)
                self._probe = AIOKafkaConsumer(
                    group_id=None, enable_auto_commit=False, **self._options
                )
                await self._probe.start()
            await self._catch_up()
            if self._state.position == 0:
                # A new log starts with a marker, so that offset 0 is never a schema id.
                await self._append(Init())
        except RegistryUnavailable as exc:
            await self._shutdown()
            # aiokafka says only "unable to bootstrap": ask whether the security refused us.
            refusal = await access.refused(self._kafka, self._servers)
            if refusal is not None:
                raise refusal from exc
            raise
        except BaseException:
            await self._shutdown()
            raise

    async def _shutdown(self) -> None:
        clients = (self._probe, self._consumer, self._producer)
        self._probe = self._consumer = self._producer = None
        for client in clients:
            if client is None:
                continue
            try:
                await client.stop()
            except (kafka_errors.KafkaError, OSError) as exc:  # closing must not mask the cause
                log.warning("%s: closing %s failed: %r", self._where(), type(client).__name__, exc)

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(**self._options)
        with self._kafka_errors("creating the log topic"):
            try:
                await admin.start()
                brokers = len((await admin.describe_cluster())["brokers"])
                replicas, min_isr = self._kafka.topic_replication(brokers)
                if self._replication_factor is not None:
                    replicas = self._replication_factor
                    min_isr = min(min_isr, replicas)
                config = {**_REQUIRED_CONFIG, "min.insync.replicas": str(min_isr)}
                response = await admin.create_topics(
                    [NewTopic(self._topic, 1, replicas, topic_configs=config)]
                )
                for _topic, code, message in response.topic_errors:
                    if code == _TOPIC_ALREADY_EXISTS:
                        await self._check_existing_topic(admin)
                    elif code == _TOPIC_AUTHORIZATION_FAILED and await self._readable(admin):
                        # A third-party app may read the log but not create or describe its
                        # configs (`eventplatform apps add` grants READ only): the operator's
                        # registry made the topic, and checked it.
                        continue
                    elif code:
                        error = kafka_errors.for_code(code)
                        raise error(f"creating topic {self._topic!r}: {message}")
            finally:
                await admin.close()

    async def _readable(self, admin: AIOKafkaAdminClient) -> bool:
        """Whether the log topic exists and this principal may describe it."""
        (described,) = await admin.describe_topics([self._topic])
        return not described["error_code"] and bool(described["partitions"])

    async def _check_existing_topic(self, admin: AIOKafkaAdminClient) -> None:
        (described,) = await admin.describe_topics([self._topic])
        partitions = len(described["partitions"])
        problems = []
        if partitions != 1:
            problems.append(f"it has {partitions} partitions, the log needs exactly 1")
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, self._topic, dict.fromkeys(_REQUIRED_CONFIG))]
        )
        (resource,) = response.to_object()["resources"]
        actual = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
        problems += [
            f"{name}={actual[name]} (needs {wanted})"
            for name, wanted in _REQUIRED_CONFIG.items()
            if name in actual and actual[name] != wanted
        ]
        if problems:
            raise ConfigurationError(
                f"{self._where()}: the topic cannot hold the registry log: "
                + "; ".join(problems)
                + ". Compaction or expiry would lose commands; fix the topic or pick another."
            )

    # -- the log ---------------------------------------------------------------------------

    async def _catch_up(self) -> None:
        # The end offset is asked on a connection of its own: a broker answers the requests of
        # one connection in order, so behind the reader's pending fetch (a long poll of up to
        # fetch.max.wait.ms) it would wait for that fetch to expire.
        self._live_consumer()
        if self._probe is None:
            raise RegistryUnavailable(f"{self._where()}: not connected")
        with self._kafka_errors("finding the end of the log"):
            end = (await self._probe.end_offsets([self._tp]))[self._tp]
        await self._read_until(end)

    async def _log_producer(self) -> AIOKafkaProducer:
        """The log's producer, started on first use (see ``_open``)."""
        if self._producer is None:
            raise RegistryUnavailable(f"{self._where()}: not connected")
        async with self._producer_lock:
            if not self._producer_started:
                with self._kafka_errors("starting the log's producer"):
                    await self._producer.start()
                self._producer_started = True
        return self._producer

    async def _append(self, command: Command) -> ApplyResult:
        producer = await self._log_producer()
        key, value = encode(command)
        send = {
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": self._topic,
        }
        with (
            observed.traced(f"send {self._topic}", "producer", send),
            self._kafka_errors("appending a command"),
        ):
            meta = await producer.send_and_wait(self._topic, value, key=key, partition=0)
        result = await self._read_until(meta.offset + 1, want=meta.offset)
        if result is None:
            raise RegistryUnavailable(
                f"{self._where()}: the command appended at offset {meta.offset} was not read back"
            )
        return result

    async def _read_until(self, end: int, want: int | None = None) -> ApplyResult | None:
        """Apply records until the state reaches ``end``; return the fate of offset ``want``."""
        consumer = self._live_consumer()
        if self._state.position >= end:
            return None
        # The partition is paused between reads so that an idle client sends no fetches.
        consumer.resume(self._tp)
        try:
            return await self._fetch_until(consumer, end, want)
        finally:
            consumer.pause(self._tp)

    async def _fetch_until(
        self, consumer: AIOKafkaConsumer, end: int, want: int | None
    ) -> ApplyResult | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        found: ApplyResult | None = None
        while self._state.position < end:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RegistryUnavailable(
                    f"{self._where()}: timed out reading the log up to offset {end} "
                    f"(reached {self._state.position})"
                )
            with self._kafka_errors("reading the log"):
                batches = await consumer.getmany(
                    self._tp, timeout_ms=max(1, int(min(remaining, 1.0) * 1000))
                )
                records = batches.get(self._tp, [])
                if not records:
                    # Offsets that hold no record (transaction markers) are passed over.
                    self._state.advance_to(await consumer.position(self._tp))
            for record in records:
                if record.offset < self._state.position:
                    continue
                result = self._apply_record(record)
                if record.offset == want:
                    found = result
        return found

    def _apply_record(self, record: ConsumerRecord[bytes, bytes]) -> ApplyResult:
        try:
            command = decode(record.value)
        except MalformedCommand as exc:
            # Every reader passes over the same record the same way, so replicas still agree.
            log.warning("%s: offset %d is not a command (%s)", self._where(), record.offset, exc)
            return self._state.skip(record.offset, str(exc))
        except RegistryError as exc:  # a newer format: stop rather than skip what others apply
            self._broken = str(exc)
            raise
        return self._state.apply(record.offset, command)

    def _live_consumer(self) -> AIOKafkaConsumer:
        if self._broken is not None:
            raise RegistryError(f"{self._where()}: {self._broken}")
        if self._consumer is None:
            raise RegistryUnavailable(f"{self._where()}: not connected")
        return self._consumer


def _client_options(kafka: KafkaSettings, request_timeout: float) -> dict[str, Any]:
    """aiokafka keyword arguments for reaching the cluster, besides its bootstrap servers."""
    return kafka.connection_options() | {"request_timeout_ms": int(request_timeout * 1000)}

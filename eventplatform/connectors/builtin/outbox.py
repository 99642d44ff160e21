"""PostgreSQL transactional outbox → topics, with Debezium's outbox columns and routing.

A service writes its events into an outbox table in the same transaction as its own changes;
this connector relays the rows to Kafka. An instance::

    # connectors/orders-outbox.toml
    type = "postgres-outbox"

    [settings]
    dsn = "${ORDERS_DATABASE_URL}"
    install = true                        # create the table and the NOTIFY trigger if missing
    routes = { order = "orders" }         # aggregatetype → topic (else the template)
    event_types = { OrderPlaced = "com.example.orders.OrderPlaced" }

**The table** has Debezium's outbox columns (``id`` uuid, ``aggregatetype``, ``aggregateid``,
``type``, ``payload`` jsonb), plus ``created_at`` and the relay's own ``seq`` (the order) and
``published_at``::

    CREATE TABLE outbox (
        seq           bigint GENERATED ALWAYS AS IDENTITY,
        id            uuid PRIMARY KEY,
        aggregatetype varchar(255) NOT NULL,
        aggregateid   varchar(255) NOT NULL,
        type          varchar(255) NOT NULL,
        payload       jsonb,
        created_at    timestamptz NOT NULL DEFAULT now(),
        published_at  timestamptz
    );

**Routing**, like Debezium's ``EventRouter``: the topic is ``routes[aggregatetype]``, else the
instance's ``topic``, else ``topic_template`` (default ``outbox.event.{aggregatetype}``). The
Kafka key is ``aggregateid``; ``id`` is the event id (``ce_id``) and so the idempotency key;
``created_at`` is ``ce_time`` and ``aggregateid`` is ``ce_subject``.

**Payloads.** A row whose ``type`` names an event class (``event_types``, else the instance's
``event_type`` for every row, else the full Avro name of a record in the ``schemas_dir``
catalogue) is validated into that class and published as Confluent Avro. Any other row is
published as its JSON payload with ``content-type: application/json`` and ``ce_type`` = its
``type``, unless ``require_schema`` is set. A row that does not validate (or has no class
while one is required) goes to the dead-letter topic (``<name>.dlq`` unless configured) as
its payload, with the error, and is marked like the others: a bad row never blocks the outbox.

**Relaying.** The relay takes the oldest unpublished rows (``ORDER BY seq``) with
``SELECT … FOR UPDATE SKIP LOCKED``, publishes them, and marks them (``published_at``, or
deletes them with ``after_publish = "delete"``) in the same transaction once Kafka acknowledged
every one. A crash between the acknowledgement and the commit leaves the rows unmarked: they
are published again, with the same ids, and consumers deduplicate them. Two relays on one
table never publish a row twice while both run (each skips the rows the other holds), and a
relay also leaves a row whose aggregate has an older row held by the other, so events of one
aggregate stay in order. Rows are seen in commit order: writes of one aggregate should be
serialised (as they are when the transaction also updates the aggregate's own row).

The relay wakes on ``LISTEN``/``NOTIFY`` (a statement trigger on the table calls
``pg_notify``; ``install = true`` creates it) and polls every ``poll_interval`` seconds as a
fallback.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from eventplatform.connectors.runtime.instances import EventTypeResolver
from eventplatform.connectors.sdk.connector import Source, SourceConfig
from eventplatform.connectors.sdk.deadletters import dead_letter
from eventplatform.connectors.sdk.payloads import parse_event
from eventplatform.connectors.sdk.records import SourceRecord
from eventplatform.errors import (
    ConnectorConfigError,
    ConnectorError,
    ConnectorUnavailable,
    EventPlatformError,
    InvalidPayload,
    SchemaError,
    map_exceptions,
)
from eventplatform.producer import PublishResult
from eventplatform.schema import AvroEvent

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the PostgreSQL outbox connector needs asyncpg: pip install 'eventplatform[postgres]'"
    ) from exc

__all__ = ["OutboxConfig", "OutboxSource"]

log = logging.getLogger("eventplatform.connectors.builtin.outbox")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_ERRORS: dict[type[BaseException], type[EventPlatformError]] = {
    asyncpg.exceptions.PostgresConnectionError: ConnectorUnavailable,
    asyncpg.exceptions.OperatorInterventionError: ConnectorUnavailable,
    asyncpg.exceptions.InsufficientResourcesError: ConnectorUnavailable,
    OSError: ConnectorUnavailable,
    asyncpg.PostgresError: ConnectorError,
    asyncpg.InterfaceError: ConnectorError,
}


def _translate(what: str) -> AbstractContextManager[None]:
    return map_exceptions(_ERRORS, f"outbox: {what} failed")


class OutboxConfig(SourceConfig):
    """Settings of a PostgreSQL outbox relay (the ``[settings]`` table)."""

    dsn: SecretStr = Field(description="postgresql://… of the database holding the outbox.")
    table: str = Field(default="outbox", description="The outbox table, optionally schema.table.")
    channel: str = Field(default="eventplatform_outbox", description="LISTEN/NOTIFY channel.")
    install: bool = Field(default=False, description="Create table, index and trigger if missing.")
    topic_template: str = Field(default="outbox.event.{aggregatetype}")
    routes: dict[str, str] = Field(default={}, description="aggregatetype → topic.")
    event_types: dict[str, str] = Field(
        default={}, description="type → event class (catalogue name or module:Class)."
    )
    schemas_dir: Path | None = Field(
        default=None, description="Schema catalogue for types named by full Avro name."
    )
    require_schema: bool = Field(default=False, description="Dead-letter rows without a class.")
    dead_letter_topic: str | None = Field(default=None, description="Default <name>.dlq.")
    after_publish: Literal["mark", "delete"] = "mark"
    batch_size: int = Field(default=500, gt=0, description="Rows relayed per transaction.")
    poll_interval: float = Field(default=1.0, gt=0, description="Seconds between polls.")

    @field_validator("table")
    @classmethod
    def _check_table(cls, table: str) -> str:
        parts = table.split(".")
        if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
            raise ValueError("must be a plain identifier or schema.table (letters, digits, _)")
        return table

    @field_validator("channel")
    @classmethod
    def _check_channel(cls, channel: str) -> str:
        if not _IDENTIFIER.fullmatch(channel):
            raise ValueError("must be a plain identifier (letters, digits, _)")
        return channel


class OutboxSource(Source[OutboxConfig]):
    """PostgreSQL outbox → topics (see the module docstring)."""

    requires_topic = False
    requires_event_type = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        config = self.config
        self.dead_letter_topic = config.dead_letter_topic or f"{self.name}.dlq"
        self._table = ".".join(f'"{part}"' for part in config.table.split("."))
        self._plain_table = config.table.replace(".", "_")
        self._resolver = EventTypeResolver(config.schemas_dir)
        self._classes: dict[str, type[AvroEvent] | None] = {}
        for type_name, spec in config.event_types.items():
            self._classes[type_name] = self._resolve(spec, f"settings.event_types.{type_name}")
        self._pool: Any = None
        self._listener: Any = None
        self._wake = asyncio.Event()

    def _resolve(self, spec: str, key: str) -> type[AvroEvent]:
        try:
            return self._resolver.resolve(spec)
        except (ConnectorError, SchemaError) as exc:
            raise ConnectorConfigError(f"connector {self.name!r}: {key}: {exc}", key=key) from exc

    # -- lifecycle ---------------------------------------------------------------------------

    async def on_start(self) -> None:
        dsn = self.config.dsn.get_secret_value()
        with _translate("connecting"):
            self._pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        if self.config.install:
            await self.install()
        await self._listen()

    async def on_stop(self) -> None:
        listener, self._listener = self._listener, None
        pool, self._pool = self._pool, None
        if listener is not None and not listener.is_closed():
            try:
                await listener.close(timeout=5)
            except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
                log.warning("outbox %s: closing the listener failed: %s", self.name, exc)
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
                log.warning("outbox %s: closing the pool failed: %s", self.name, exc)
                pool.terminate()

    async def install(self) -> None:
        """Create the table, its index and the NOTIFY trigger, each only when missing.

        What exists is left alone: re-creating it would take the table's exclusive lock and
        wait for (or deadlock with) a relay running on it.

        Raises:
            ConnectorUnavailable: the database cannot be reached.
            ConnectorError: it refused a statement.
        """
        table, plain, channel = self._table, self._plain_table, self.config.channel
        trigger = f"{plain}_notify"
        with _translate("installing the outbox table"):
            async with self._pool.acquire() as conn, conn.transaction():
                # Serialises concurrent installs: CREATE … IF NOT EXISTS is not safe with them.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))", f"eventplatform.outbox.{plain}"
                )
                if await conn.fetchval("SELECT to_regclass($1)", table) is None:
                    await conn.execute(
                        f"""CREATE TABLE {table} (
                            seq bigint GENERATED ALWAYS AS IDENTITY,
                            id uuid PRIMARY KEY,
                            aggregatetype varchar(255) NOT NULL,
                            aggregateid varchar(255) NOT NULL,
                            type varchar(255) NOT NULL,
                            payload jsonb,
                            created_at timestamptz NOT NULL DEFAULT now(),
                            published_at timestamptz
                        )"""
                    )
                    await conn.execute(
                        f'CREATE INDEX "{plain}_unpublished" ON {table} (seq) '
                        "WHERE published_at IS NULL"
                    )
                await conn.execute(
                    f"""CREATE OR REPLACE FUNCTION "{trigger}"() RETURNS trigger
                        LANGUAGE plpgsql AS $$
                        BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$"""
                )
                exists = await conn.fetchval(
                    "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2",
                    table,
                    trigger,
                )
                if not exists:
                    await conn.execute(
                        f'CREATE TRIGGER "{trigger}" AFTER INSERT ON {table} '
                        f'FOR EACH STATEMENT EXECUTE FUNCTION "{trigger}"()'
                    )

    async def _listen(self) -> None:
        """(Re)open the LISTEN connection; polling covers the time it is down."""
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            with _translate("listening"):
                listener = await asyncpg.connect(self.config.dsn.get_secret_value())
                await listener.add_listener(self.config.channel, self._notified)
        except ConnectorError as exc:
            log.warning("outbox %s: LISTEN failed, polling only: %s", self.name, exc)
            return
        self._listener = listener

    def _notified(self, *args: object) -> None:
        self._wake.set()

    # -- relaying ------------------------------------------------------------------------------

    def _select(self) -> str:
        table = self._table
        unpublished = "published_at IS NULL" if self.config.after_publish == "mark" else "TRUE"
        # Rows another relay holds are skipped; so are rows of an aggregate that still has an
        # older unpublished row outside this batch (held by the other relay), to keep order.
        return f"""
            WITH batch AS (
                SELECT seq, id, aggregatetype, aggregateid, type, payload::text AS payload,
                       created_at
                FROM {table} WHERE {unpublished}
                ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
            )
            SELECT * FROM batch b WHERE NOT EXISTS (
                SELECT 1 FROM {table} o
                WHERE {unpublished} AND o.aggregatetype = b.aggregatetype
                  AND o.aggregateid = b.aggregateid AND o.seq < b.seq
                  AND o.seq NOT IN (SELECT seq FROM batch)
            )
            ORDER BY seq
        """

    async def records(self) -> AsyncIterator[SourceRecord]:
        """The unpublished rows, oldest first, until stopped."""
        select = self._select()
        while not self.stopping:
            self._wake.clear()
            await self._listen()
            with _translate("reading the outbox"):
                async with self._pool.acquire() as conn, conn.transaction():
                    rows = await conn.fetch(select, self.config.batch_size)
                    if rows:
                        loop = asyncio.get_running_loop()
                        acks: list[asyncio.Future[PublishResult]] = []
                        for row in rows:
                            record = self._record(row)
                            record.ack = loop.create_future()
                            acks.append(record.ack)
                            yield record
                        # Marked only once every row is durable; a failure rolls back.
                        await asyncio.gather(*acks)
                        await self._mark(conn, [row["id"] for row in rows])
            if len(rows) < self.config.batch_size:
                await self.idle(self.config.poll_interval, wakeup=self._wake)

    async def _mark(self, conn: Any, ids: list[Any]) -> None:
        """Mark (or delete) published rows, in the relay's transaction."""
        if self.config.after_publish == "delete":
            await conn.execute(f"DELETE FROM {self._table} WHERE id = ANY($1::uuid[])", ids)
        else:
            await conn.execute(
                f"UPDATE {self._table} SET published_at = now() WHERE id = ANY($1::uuid[])", ids
            )

    def _topic(self, aggregatetype: str) -> str:
        topic = self.config.routes.get(aggregatetype) or self.topic
        if not topic:
            topic = self.config.topic_template.format(aggregatetype=aggregatetype)
        if not _TOPIC.fullmatch(topic):
            raise InvalidPayload(
                f"aggregatetype {aggregatetype!r} routes to {topic!r}, not a valid topic name",
                errors=[("aggregatetype", "no valid topic")],
            )
        return topic

    def _class_of(self, type_name: str) -> type[AvroEvent] | None:
        if type_name not in self._classes:
            found: type[AvroEvent] | None = self.event_type
            if found is None and self.config.schemas_dir is not None:
                try:
                    found = self._resolver.resolve(type_name)
                except ConnectorError:
                    found = None
            self._classes[type_name] = found
        return self._classes[type_name]

    def _record(self, row: Mapping[str, Any]) -> SourceRecord:
        """The record of one row, or its dead letter."""
        row_id = str(row["id"])
        payload: str = row["payload"] if row["payload"] is not None else "null"
        common: dict[str, Any] = {
            "key": row["aggregateid"],
            "event_id": row_id,
            "subject": row["aggregateid"],
            "time": row["created_at"],
        }
        try:
            topic = self._topic(row["aggregatetype"])
            event_type = self._class_of(row["type"])
            if event_type is not None:
                event = parse_event(event_type, payload)
                return SourceRecord(event=event, topic=topic, **common)
            if self.config.require_schema:
                raise InvalidPayload(
                    f"no event class for type {row['type']!r} (require_schema is set)",
                    errors=[("type", "no event class")],
                )
        except InvalidPayload as exc:
            self.stats.failed(f"row {row_id}: {exc}")
            self.stats.count("dead_lettered")
            log.warning(
                "outbox %s: row %s goes to %s: %s", self.name, row_id, self.dead_letter_topic, exc
            )
            return dead_letter(
                payload.encode(),
                connector=self.name,
                connector_class=f"{type(self).__module__}.{type(self).__qualname__}",
                dlq_topic=self.dead_letter_topic,
                topic=self.config.routes.get(row["aggregatetype"]) or self.topic or "",
                error=exc,
                origin={"table": self.config.table, "id": row_id, "type": row["type"]},
                key=row["aggregateid"],
            )
        return SourceRecord(
            value=payload.encode(),
            event_type=row["type"],
            content_type="application/json",
            topic=topic,
            **common,
        )

"""``eventplatform topics …``: list, create, describe and delete topics of the configured cluster.

The Kafka Admin API through aiokafka's admin client (CreateTopics, DeleteTopics, Metadata and
DescribeConfigs requests). Per-topic error codes in the responses become
:class:`~eventplatform.errors.KafkaError` messages that name the topic and Kafka's error
(``TopicAlreadyExistsError``, ``InvalidConfigurationError`` …); a cluster that cannot be
reached is reported with its bootstrap servers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from rich.markup import escape
from rich.table import Column, Table

from eventplatform.cli import _clients
from eventplatform.cli._clients import bootstrap_servers, kafka_errors_translated, kafka_options
from eventplatform.cli._common import console, err_console, fail_on_errors
from eventplatform.cli._tables import fit
from eventplatform.errors import KafkaError
from eventplatform.settings import Settings, load_settings

__all__ = ["app", "parse_configs"]

app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown")

# DescribeConfigs ``config_source`` values (KIP-226), for `describe --all-configs`.
_CONFIG_SOURCES = {
    1: "topic",
    2: "broker",
    3: "cluster default",
    4: "broker config file",
    5: "default",
    6: "broker logger",
}
_TOPIC_OVERRIDE = 1


@app.callback()
def _group() -> None:
    """List, create, describe and delete topics of the configured Kafka cluster."""


def parse_configs(pairs: Sequence[str]) -> dict[str, str]:
    """``["retention.ms=1000", …]`` → ``{"retention.ms": "1000", …}``.

    Raises:
        typer.BadParameter: an entry is not ``key=value``.
    """
    configs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--config")
        configs[key.strip()] = value.strip()
    return configs


def _raise_for_code(code: int, message: str | None, topic: str, doing: str) -> None:
    if not code:
        return
    error = kafka_errors.for_code(code)
    detail = f": {message}" if message else ""
    raise KafkaError(f"{doing} topic {topic!r} failed: {error.__name__}{detail}")


@asynccontextmanager
async def _admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**kafka_options(settings))
    try:
        with kafka_errors_translated("connecting to Kafka", bootstrap_servers(settings)):
            await client.start()
        yield client
    finally:
        await client.close()


async def _topics(admin: AIOKafkaAdminClient, servers: str) -> list[str]:
    # A Metadata request for *all* topics: naming a topic in it could auto-create the topic on
    # brokers with auto.create.topics.enable, which a read-only command must never do.
    with kafka_errors_translated("listing topics", servers):
        return sorted(await admin.list_topics())


async def _require_topic(admin: AIOKafkaAdminClient, servers: str, topic: str) -> None:
    if topic not in await _topics(admin, servers):
        raise KafkaError(f"topic {topic!r} does not exist on {servers}")


# -- list ------------------------------------------------------------------------------------


async def _list(settings: Settings, *, internal: bool) -> list[dict[str, Any]]:
    async with _admin(settings) as admin:
        servers = bootstrap_servers(settings)
        names = await _topics(admin, servers)
        if not names:
            return []
        with kafka_errors_translated("describing topics", servers):
            described = await admin.describe_topics(names)
    return sorted(
        (t for t in described if internal or not t["is_internal"]), key=lambda t: t["topic"]
    )


@app.command("list")
def list_topics(
    internal: Annotated[
        bool, typer.Option("--internal", help="Include internal topics (__consumer_offsets …).")
    ] = False,
) -> None:
    """List the cluster's topics with their partition count and replication factor."""
    with fail_on_errors():
        topics = _clients.run(_list(load_settings(), internal=internal))
    # Names are shown whole (folded, never cut with an ellipsis): they are what users copy.
    table = Table(Column("topic", overflow="fold"), "partitions", "replication")
    for topic in topics:
        partitions = topic["partitions"]
        replication = max((len(p["replicas"]) for p in partitions), default=0)
        table.add_row(escape(topic["topic"]), str(len(partitions)), str(replication))
    table.caption = f"{len(topics)} topic{'' if len(topics) == 1 else 's'}"
    console.print(fit(table, console, identifiers=("topic",)))


# -- create ----------------------------------------------------------------------------------


async def _create(
    settings: Settings,
    topic: str,
    *,
    partitions: int,
    replication_factor: int | None,
    configs: dict[str, str],
    if_not_exists: bool,
) -> tuple[int, bool]:
    async with _admin(settings) as admin:
        servers = bootstrap_servers(settings)
        with kafka_errors_translated(f"creating topic {topic!r}", servers):
            brokers = len((await admin.describe_cluster())["brokers"])
            # As the Kafka-log registry does: three copies where the cluster has them, two of
            # them in sync (kafka.replication_factor and kafka.min_insync_replicas decide).
            replicas, min_isr = settings.kafka.topic_replication(brokers)
            if replication_factor is None:
                replication_factor = replicas
            configs = {"min.insync.replicas": str(min(min_isr, replication_factor)), **configs}
            response = await admin.create_topics(
                [NewTopic(topic, partitions, replication_factor, topic_configs=configs)]
            )
        for _name, code, message in response.topic_errors:
            if code == kafka_errors.TopicAlreadyExistsError.errno and if_not_exists:
                return replication_factor, False
            _raise_for_code(code, message, topic, "creating")
    return replication_factor, True


@app.command("create")
def create(
    topic: Annotated[str, typer.Argument(metavar="TOPIC", help="The topic name.")],
    partitions: Annotated[
        int, typer.Option("--partitions", "-p", min=1, help="Number of partitions.")
    ] = 1,
    replication_factor: Annotated[
        int | None,
        typer.Option(
            "--replication-factor",
            "-r",
            min=1,
            help="Copies of each partition (default: 3, or the number of brokers if fewer).",
        ),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config", "-c", metavar="KEY=VALUE", help="A topic config; repeat for more."
        ),
    ] = None,
    if_not_exists: Annotated[
        bool, typer.Option("--if-not-exists", help="Succeed when the topic already exists.")
    ] = False,
) -> None:
    """Create a topic (CreateTopics); fails if it exists unless --if-not-exists."""
    configs = parse_configs(config or [])
    with fail_on_errors():
        replicas, created = _clients.run(
            _create(
                load_settings(),
                topic,
                partitions=partitions,
                replication_factor=replication_factor,
                configs=configs,
                if_not_exists=if_not_exists,
            )
        )
    if created:
        console.print(
            f"created topic [bold]{escape(topic)}[/] ({partitions} partitions, "
            f"replication factor {replicas})"
        )
    else:
        console.print(f"topic [bold]{escape(topic)}[/] already exists")


# -- describe --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Description:
    partitions: list[dict[str, Any]]
    configs: list[dict[str, Any]]


async def _describe(settings: Settings, topic: str) -> _Description:
    async with _admin(settings) as admin:
        servers = bootstrap_servers(settings)
        await _require_topic(admin, servers, topic)
        with kafka_errors_translated(f"describing topic {topic!r}", servers):
            (described,) = await admin.describe_topics([topic])
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)]
            )
        _raise_for_code(described["error_code"], None, topic, "describing")
        configs: list[dict[str, Any]] = []
        for response in responses:
            for resource in response.to_object()["resources"]:
                _raise_for_code(
                    resource["error_code"], resource["error_message"], topic, "describing"
                )
                configs += resource["config_entries"]
    return _Description(
        sorted(described["partitions"], key=lambda p: p["partition"]),
        sorted(configs, key=lambda c: c["config_names"]),
    )


@app.command("describe")
def describe(
    topic: Annotated[str, typer.Argument(metavar="TOPIC", help="The topic name.")],
    all_configs: Annotated[
        bool,
        typer.Option("--all-configs", help="Show every config, not only the topic's overrides."),
    ] = False,
) -> None:
    """Show a topic's partitions (leader, replicas, in-sync replicas) and configs."""
    with fail_on_errors():
        found = _clients.run(_describe(load_settings(), topic))
    partitions = Table("partition", "leader", "replicas", "in sync", title=topic)
    for p in found.partitions:
        partitions.add_row(
            str(p["partition"]),
            str(p["leader"]),
            ",".join(map(str, p["replicas"])),
            ",".join(map(str, p["isr"])),
        )
    console.print(partitions)
    configs = Table("config", Column("value", overflow="fold"), "source")
    for entry in found.configs:
        source = entry.get("config_source", _TOPIC_OVERRIDE)
        if not all_configs and source != _TOPIC_OVERRIDE:
            continue
        value = "(sensitive)" if entry.get("is_sensitive") else str(entry["config_value"])
        configs.add_row(
            escape(entry["config_names"]), escape(value), _CONFIG_SOURCES.get(source, str(source))
        )
    if configs.row_count:
        console.print(configs)
    else:
        console.print("[dim]no config overrides (--all-configs shows the defaults)[/]")


# -- delete ----------------------------------------------------------------------------------


async def _delete(settings: Settings, topic: str, *, if_exists: bool) -> bool:
    async with _admin(settings) as admin:
        servers = bootstrap_servers(settings)
        if topic not in await _topics(admin, servers):
            if if_exists:
                return False
            raise KafkaError(f"topic {topic!r} does not exist on {servers}")
        with kafka_errors_translated(f"deleting topic {topic!r}", servers):
            response = await admin.delete_topics([topic])
        for _name, code in response.topic_error_codes:
            _raise_for_code(code, None, topic, "deleting")
    return True


@app.command("delete")
def delete(
    topic: Annotated[str, typer.Argument(metavar="TOPIC", help="The topic name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    if_exists: Annotated[
        bool, typer.Option("--if-exists", help="Succeed when the topic does not exist.")
    ] = False,
) -> None:
    """Delete a topic and all its records (DeleteTopics). Asks first unless --yes."""
    if not yes:
        typer.confirm(f"Delete topic {topic!r} and all its records?", abort=True, err=True)
    with fail_on_errors():
        deleted = _clients.run(_delete(load_settings(), topic, if_exists=if_exists))
    if deleted:
        console.print(f"deleted topic [bold]{escape(topic)}[/]")
    else:
        err_console.print(f"topic {escape(topic)} does not exist; nothing to delete")

"""Who leads a partition and who coordinates a group or a transaction, asked of a cluster.

Small questions a failover test asks (:class:`~eventplatform.devkafka.local.LocalCluster`):
Metadata for partition leaders and in-sync replicas, FindCoordinator (key type 0: group, 1:
transaction) for coordinators, each through aiokafka's client with the cluster's connection
options. A node that was just killed may still be listed, so every question is retried on
another node until it answers or ``within`` passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaClient
from aiokafka import errors as kafka_errors
from aiokafka.structs import TopicPartition

from eventplatform.errors import KafkaError

__all__ = ["coordinator", "isr", "leader"]

T = TypeVar("T")


async def leader(options: dict[str, Any], topic: str, partition: int, within: float) -> int | None:
    """The leader of ``topic``/``partition``, None when it has none (or is unknown).

    Raises:
        KafkaError: no node answered within ``within``.
    """

    async def ask(client: AIOKafkaClient) -> int | None:
        cluster = await client.fetch_all_metadata()
        found = cluster.leader_for_partition(TopicPartition(topic, partition))
        return None if found is None or found < 0 else int(found)

    return await _asking(options, ask, f"the leader of {topic}[{partition}]", within)


async def isr(options: dict[str, Any], topic: str, partition: int, within: float) -> list[int]:
    """The in-sync replicas of ``topic``/``partition`` (empty when unknown).

    Raises:
        KafkaError: no node answered within ``within``.
    """

    async def ask(client: AIOKafkaClient) -> list[int]:
        cluster = await client.fetch_all_metadata()
        # ClusterMetadata keeps the whole PartitionMetadata per partition, ISR included.
        known = cluster._partitions.get(topic, {}).get(partition)
        return sorted(known.isr) if known is not None else []

    return await _asking(options, ask, f"the in-sync replicas of {topic}[{partition}]", within)


async def coordinator(options: dict[str, Any], key_type: int, key: str, within: float) -> int:
    """The coordinator of a group (``key_type`` 0) or a transactional id (1).

    Raises:
        KafkaError: no node answered within ``within``.
    """

    async def ask(client: AIOKafkaClient) -> int:
        return int(await client.coordinator_lookup(key_type, key))

    what = ("the group coordinator of ", "the transaction coordinator of ")[key_type] + repr(key)
    return await _asking(options, ask, what, within)


async def _asking(
    options: dict[str, Any],
    ask: Callable[[AIOKafkaClient], Awaitable[T]],
    what: str,
    within: float,
) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: BaseException | None = None
    while loop.time() < deadline:
        client = AIOKafkaClient(request_timeout_ms=5000, **options)
        try:
            await client.bootstrap()
            return await ask(client)
        except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
            last = exc  # a dead node picked, a coordinator still loading: ask again
        finally:
            await client.close()
        await asyncio.sleep(0.2)
    raise KafkaError(f"could not find {what} within {within:.0f}s: {last!r}")

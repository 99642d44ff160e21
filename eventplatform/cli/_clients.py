"""What CLI commands connect to: the schema registry and the Kafka cluster, from settings.

When no bootstrap servers are configured, a command run in a deployment folder where
``eventplatform up`` is running uses that one's broker (and so its Kafka-log registry), as
``var/up.json`` names it (:mod:`eventplatform.upstate`).

:data:`registry_factory` is the seam between the commands and the registry backend. Commands
read it at call time (``_clients.registry_factory(settings)``), so a test replaces it with a
factory of :class:`~eventplatform.registry.memory.MemoryRegistry` and runs the real commands
without a broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import errors as kafka_errors

from eventplatform import access
from eventplatform.errors import (
    AuthenticationFailed,
    AuthorizationFailed,
    ConfigurationError,
    KafkaError,
)
from eventplatform.registry.base import SchemaRegistry
from eventplatform.registry.factory import open_registry
from eventplatform.settings import Settings, load_settings
from eventplatform.upstate import read_state

__all__ = [
    "RegistryFactory",
    "bootstrap_servers",
    "kafka_errors_translated",
    "kafka_options",
    "open_configured_registry",
    "registry_factory",
    "run",
    "with_running_up",
]

T = TypeVar("T")


def with_running_up(settings: Settings, directory: Path | None = None) -> Settings:
    """``settings``, with the servers of the ``up`` running in ``directory`` (default: the
    working directory) when none are configured; configured servers always win."""
    if settings.kafka.bootstrap_servers:
        return settings
    state = read_state(directory or Path.cwd())
    if state is None:
        return settings
    # The servers, and on a secured cluster how to reach it: protocol, CA, user, and the
    # password by reference (the file up keeps it in), never the password itself.
    kafka = settings.kafka.model_copy(update=state.kafka_update())
    return settings.model_copy(update={"kafka": kafka})


RegistryFactory = Callable[[Settings], AbstractAsyncContextManager[SchemaRegistry]]
"""Builds the registry a command uses; entering it starts it, leaving it closes it."""


def open_configured_registry(settings: Settings) -> AbstractAsyncContextManager[SchemaRegistry]:
    """The registry the settings name, not yet started (see :func:`open_registry`).

    Raises:
        ConfigurationError: neither a registry URL nor Kafka bootstrap servers are set.
    """
    settings = with_running_up(settings)
    if not settings.registry.url and not settings.kafka.bootstrap_servers:
        # A broker provisioned for one command would take the schemas with it when it stops,
        # so the CLI only talks to registries that outlive it.
        raise ConfigurationError(
            "no schema registry configured: set EVENTPLATFORM_REGISTRY__URL (a "
            "Confluent-compatible registry) or EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS (the "
            "Kafka-log registry in that cluster, topic EVENTPLATFORM_REGISTRY__TOPIC)"
        )
    return open_registry(settings)


registry_factory: RegistryFactory = open_configured_registry


def bootstrap_servers(settings: Settings) -> str:
    """The configured cluster, else the one of the ``up`` running here.

    Raises:
        ConfigurationError: no bootstrap servers are set.
    """
    servers = with_running_up(settings).kafka.bootstrap_servers
    if not servers:
        raise ConfigurationError(
            "no Kafka cluster configured: set EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS, or run "
            "this in a folder where `eventplatform up` is running (for development, start a "
            "broker with `eventplatform up` or `eventplatform kafka start`)"
        )
    return servers


def kafka_options(settings: Settings, *, request_timeout: float = 30.0) -> dict[str, Any]:
    """aiokafka client keyword arguments: servers, client id and security settings.

    Raises:
        ConfigurationError: no bootstrap servers are set.
    """
    kafka = with_running_up(settings).kafka
    return kafka.connection_options() | {
        "bootstrap_servers": bootstrap_servers(settings),
        "request_timeout_ms": int(request_timeout * 1000),
    }


@contextmanager
def kafka_errors_translated(doing: str, servers: str) -> Iterator[None]:
    """Re-raise aiokafka's (and the network's) errors as :class:`KafkaError` naming the cluster.

    Raises:
        KafkaError: chained to the original.
    """
    try:
        yield
    except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
        raise KafkaError(f"{doing} on {servers} failed: {type(exc).__name__}: {exc}") from exc


def run(work: Coroutine[Any, Any, T], settings: Settings | None = None) -> T:
    """``asyncio.run(work)``, with a failure the cluster's security caused explained.

    aiokafka says "Unable to bootstrap" whether a server is down or refused the credentials;
    where the settings (default: loaded as the command loaded them) use security, a failure
    is checked against it and re-raised as :class:`AuthenticationFailed` or
    :class:`AuthorizationFailed` naming the principal (and the resource), never the password.

    Raises:
        AuthenticationFailed, AuthorizationFailed: the cluster refused the principal.
        EventPlatformError: whatever ``work`` raised otherwise.
    """
    return asyncio.run(_explained(work, settings))


async def _explained(work: Coroutine[Any, Any, T], settings: Settings | None) -> T:
    try:
        return await work
    except (AuthenticationFailed, AuthorizationFailed):
        raise
    except (kafka_errors.KafkaError, KafkaError, OSError, TimeoutError) as exc:
        kafka = with_running_up(settings or load_settings()).kafka
        if kafka.security_protocol == "PLAINTEXT" or not kafka.bootstrap_servers:
            raise
        found = _denied_in(exc, kafka) or await access.refused(kafka, kafka.bootstrap_servers)
        if found is None:
            raise
        raise found from exc


def _denied_in(exc: BaseException, kafka: Any) -> AuthorizationFailed | AuthenticationFailed | None:
    """An ACL refusal in ``exc`` or what it was raised from (a translated aiokafka error)."""
    seen: BaseException | None = exc
    while seen is not None:
        found = access.denied(seen, kafka)
        if found is not None:
            return found
        seen = seen.__cause__
    return None

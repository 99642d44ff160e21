"""Build the configured schema registry from settings."""

from __future__ import annotations

from eventplatform.registry.base import SchemaRegistry
from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.registry.rest_client import RestRegistry
from eventplatform.registry.tls import client_context
from eventplatform.settings import Settings

__all__ = ["open_registry"]


def open_registry(settings: Settings, *, bootstrap_servers: str | None = None) -> SchemaRegistry:
    """The registry ``settings.registry`` names, not yet started.

    ``registry.url`` set → a Confluent REST client (Confluent SR, Karapace, Apicurio, Redpanda,
    or ``eventplatform registry serve``); unset → the embedded Kafka-log registry on
    ``bootstrap_servers`` (default ``settings.kafka.bootstrap_servers``).

    Raises:
        ConfigurationError: neither a registry URL nor bootstrap servers are known, or a TLS
            file of the registry cannot be read.
    """
    config = settings.registry
    if config.url:
        return RestRegistry(
            config.url,
            username=config.username,
            password=config.password_value(),
            timeout=config.timeout,
            ssl_context=client_context(config),
        )
    return KafkaLogRegistry(
        bootstrap_servers=bootstrap_servers or settings.kafka.bootstrap_servers,
        topic=config.topic,
        settings=settings,
    )

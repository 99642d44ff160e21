"""Schema registries: one protocol (:mod:`~eventplatform.registry.base`), several backends.

- :class:`KafkaLogRegistry`: the embedded default, a command log in a Kafka topic.
- :class:`MemoryRegistry`: process-local, for tests and tools.
- :class:`RestRegistry`: Confluent-compatible registries over REST.
- :func:`open_registry`: the one the settings name.

The backends are imported on first use, so that importing the protocol (as the serde does)
does not load aiokafka and Apache Avro.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from eventplatform.registry.base import (
    CompatibilityLevel,
    CompatibilityResult,
    Mode,
    RegisteredSchema,
    Schema,
    SchemaReference,
    SchemaRegistry,
    VersionSpec,
)

if TYPE_CHECKING:
    from eventplatform.registry.factory import open_registry
    from eventplatform.registry.kafkalog import KafkaLogRegistry
    from eventplatform.registry.memory import MemoryRegistry
    from eventplatform.registry.rest_client import RestRegistry

__all__ = [
    "CompatibilityLevel",
    "CompatibilityResult",
    "KafkaLogRegistry",
    "MemoryRegistry",
    "Mode",
    "RegisteredSchema",
    "RestRegistry",
    "Schema",
    "SchemaReference",
    "SchemaRegistry",
    "VersionSpec",
    "open_registry",
]

_LAZY = {
    "KafkaLogRegistry": "eventplatform.registry.kafkalog",
    "MemoryRegistry": "eventplatform.registry.memory",
    "RestRegistry": "eventplatform.registry.rest_client",
    "open_registry": "eventplatform.registry.factory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])

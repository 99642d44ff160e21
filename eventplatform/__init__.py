"""eventplatform: typed, exactly-once-style event streaming on Apache Kafka.

What users touch is exported here; everything else is importable from its module but not
promised. ``tests/unit/test_public_api.py`` keeps ``__all__`` honest.
"""

from eventplatform.__about__ import __version__
from eventplatform.app import Context, EventApp, IdempotencyKey, RetryLater, SkipEvent
from eventplatform.cloudevents import EventMetadata
from eventplatform.errors import EventPlatformError
from eventplatform.producer import EventProducer, Outgoing, PublishResult
from eventplatform.queue import EventQueue, QueueItem
from eventplatform.registry import open_registry
from eventplatform.schema import (
    AvroDecimal,
    AvroEnum,
    AvroEvent,
    Fixed,
    Float32,
    Int32,
    Micros,
    Millis,
    load_catalogue,
    load_event_class,
)
from eventplatform.settings import Settings, load_settings

__all__ = [
    "AvroDecimal",
    "AvroEnum",
    "AvroEvent",
    "Context",
    "EventApp",
    "EventMetadata",
    "EventPlatformError",
    "EventProducer",
    "EventQueue",
    "Fixed",
    "Float32",
    "IdempotencyKey",
    "Int32",
    "Micros",
    "Millis",
    "Outgoing",
    "PublishResult",
    "QueueItem",
    "RetryLater",
    "Settings",
    "SkipEvent",
    "__version__",
    "load_catalogue",
    "load_event_class",
    "load_settings",
    "open_registry",
]

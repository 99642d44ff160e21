"""Dead-letter tools: list, inspect and replay the records a consumer gave up on.

- :class:`~eventplatform.dlq.letters.DeadLetterRecord` reads the error headers of both dialects
  (Kafka Connect's ``__connect.errors.*``, which this project writes, and Kafka 4.4 share-group
  ``__dlq.errors.*``); :class:`~eventplatform.dlq.letters.Selection` picks some by offset range,
  error class, key and time;
- :class:`~eventplatform.dlq.reading.DeadLetterReader` reads a dead-letter topic;
- :func:`~eventplatform.dlq.describe.describe` shows one, decoded through the registry;
- :func:`~eventplatform.dlq.replay.replay` writes letters back, keeping each event's id and
  idempotency key so that an event already handled is not handled twice.

``eventplatform dlq list|show|replay`` is the command line over these.
"""

from eventplatform.dlq.describe import describe
from eventplatform.dlq.letters import DeadLetterRecord, Dialect, Selection, parse_offset_range
from eventplatform.dlq.reading import DeadLetterReader
from eventplatform.dlq.replay import ReplayReport, Skipped, replay

__all__ = [
    "DeadLetterReader",
    "DeadLetterRecord",
    "Dialect",
    "ReplayReport",
    "Selection",
    "Skipped",
    "describe",
    "parse_offset_range",
    "replay",
]

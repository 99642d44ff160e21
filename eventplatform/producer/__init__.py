"""Every way records reach Kafka: the producer, its batches, deadlines and coalescer.

- :mod:`~eventplatform.producer.producer`: :class:`EventProducer` (``publish``,
  ``publish_batch``, raw records, transactions) and its result types;
- :mod:`~eventplatform.producer.batching`: the records of one call laid out in aiokafka
  batches per partition;
- :mod:`~eventplatform.producer.coalescer`: concurrent publishes gathered into batches, and
  :func:`~eventplatform.producer.coalescer.publish_each`, the one way a batch isolates a bad
  event;
- :mod:`~eventplatform.producer.deadlines`: the one way a publish call's time is bounded;
- ``_errors`` (private): the one translation of Kafka failures into eventplatform errors.
"""

from eventplatform.producer.producer import (
    EventProducer,
    Key,
    Outgoing,
    PublishResult,
    RawRecord,
)

__all__ = ["EventProducer", "Key", "Outgoing", "PublishResult", "RawRecord"]

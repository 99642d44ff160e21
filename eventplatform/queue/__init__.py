"""Work queues on Kafka share groups (KIP-932): :class:`EventQueue` and the raw member below it.

- :class:`EventQueue`: typed ``put`` / ``get`` / ``task_done`` with the stream API's framing,
  registry, CloudEvents metadata and dead letters.
- :class:`ShareConsumer`: a share-group member on aiokafka's connections (heartbeat, share
  sessions, fetch, acknowledge, renew) that works on bytes and offsets.
- :mod:`eventplatform.queue.protocol`: the share-group RPCs as aiokafka request structs.
"""

from eventplatform.queue.consumer import AcknowledgeType, ShareConsumer, ShareRecord
from eventplatform.queue.queue import EventQueue, QueueItem

__all__ = ["AcknowledgeType", "EventQueue", "QueueItem", "ShareConsumer", "ShareRecord"]

"""The one translation of Kafka failures into eventplatform errors.

Every path that writes to Kafka -- :meth:`EventProducer.publish`, ``publish_batch``,
``send_raw``, ``send_raw_batch``, transactions, the app's poll transactions, the coalescer,
the source pump, the embedded registry's log -- translates what aiokafka (or the network
under it) raised through :func:`translate`, so the same failure is the same error on every
path (issue 12).

The decision follows aiokafka's own ``retriable`` flag (the Java client's
``RetriableException``), with the cases a caller acts on given their own class:

========================================================  ===============================
aiokafka                                                   eventplatform
========================================================  ===============================
``ProducerFenced``, ``InvalidProducerEpoch``,              :class:`ProducerFenced` (KIP-98:
``TransactionalIdAuthorizationFailed``                     this instance must stop)
``TopicAuthorizationFailedError`` and the other            :class:`AuthorizationFailed`
authorisation and authentication failures                  (names the topic)
``UnknownTopicOrPartitionError``                           :class:`UnknownTopic` (retriable)
``RecordTooLargeError``, ``MessageSizeTooLargeError``      :class:`RecordTooLarge`
``KafkaTimeoutError``, ``RequestTimedOutError``,           :class:`PublishTimeout`: the
``TimeoutError``                                           outcome is unknown
any other error whose ``retriable`` is true               :class:`PublishUnavailable`
(``NotEnoughReplicas``, ``NotLeaderForPartition``,         (the record was not taken;
``KafkaConnectionError``, ``NoBrokersAvailable``), and     retrying later may succeed)
``OSError``
any other aiokafka error                                   :class:`PublishError`
========================================================  ===============================

Private to the producer package: other layers (the registry's log, the app) import it from
here rather than keeping tables of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import errors as kafka_errors

from eventplatform import access
from eventplatform.errors import (
    EventPlatformError,
    KafkaError,
    ProducerFenced,
    PublishError,
    PublishTimeout,
    PublishUnavailable,
    RecordTooLarge,
    UnknownTopic,
)
from eventplatform.settings import KafkaSettings

__all__ = ["KAFKA_FAILURES", "is_fenced", "translate"]

#: What the boundary catches: aiokafka's errors and those of the network under it.
KAFKA_FAILURES: tuple[type[BaseException], ...] = (kafka_errors.KafkaError, OSError, TimeoutError)

_FENCED: tuple[type[BaseException], ...] = (
    kafka_errors.ProducerFenced,
    kafka_errors.InvalidProducerEpoch,
    kafka_errors.TransactionalIdAuthorizationFailed,
)
_TOO_LARGE: tuple[type[BaseException], ...] = (
    kafka_errors.RecordTooLargeError,
    kafka_errors.MessageSizeTooLargeError,
)
_TIMED_OUT: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.RequestTimedOutError,
    TimeoutError,
)


def is_fenced(exc: BaseException) -> bool:
    """Whether ``exc`` says another instance owns this producer's transactional id."""
    return isinstance(exc, _FENCED | ProducerFenced)


def translate(
    exc: BaseException,
    *,
    topic: str | None = None,
    doing: str = "publishing",
    transactional_id: str | None = None,
    event_ids: Sequence[str] = (),
    idempotency_keys: Sequence[str] = (),
    kafka: KafkaSettings | None = None,
) -> EventPlatformError:
    """The eventplatform error for a Kafka (or network) failure; see the module docstring.

    An :class:`~eventplatform.errors.EventPlatformError` is returned as it is. The caller
    raises the result ``from exc``.

    Args:
        exc: what aiokafka (or the network) raised.
        topic: the topic concerned, named in the message and on topic errors.
        doing: what failed, for the message ("publishing", "committing a transaction").
        transactional_id: the producer's, named when it was fenced.
        event_ids, idempotency_keys: the events concerned, carried by a
            :class:`~eventplatform.errors.PublishTimeout` so that a caller can retry them
            with the same ids.
        kafka: the connection settings, whose principal a security refusal names.
    """
    if isinstance(exc, EventPlatformError):
        return exc
    name = type(exc).__name__
    where = f" to topic {topic!r}" if topic else ""
    text = f"{doing}{where} failed: {name}: {exc}" if str(exc) else f"{doing}{where} failed: {name}"
    if isinstance(exc, _FENCED):
        return ProducerFenced(
            f"transactional id {transactional_id!r} is fenced ({name}): another instance took "
            "it over, or this principal may not use it; this producer cannot go on"
        )
    refusal = access.denied(exc, kafka or KafkaSettings(), resource=topic)
    if refusal is not None:  # names the principal and the resource
        return refusal
    if isinstance(exc, kafka_errors.UnknownTopicOrPartitionError):
        return UnknownTopic(
            f"{doing}{where} failed: the topic does not exist or is not available "
            "(create it: eventplatform topics create)",
            topic=topic,
        )
    if isinstance(exc, _TOO_LARGE):
        return RecordTooLarge(f"{text}; raise EVENTPLATFORM_PRODUCER__MAX_REQUEST_SIZE")
    if isinstance(exc, _TIMED_OUT):
        return PublishTimeout(text, event_ids=event_ids, idempotency_keys=idempotency_keys)
    if isinstance(exc, OSError) or getattr(exc, "retriable", False):
        return PublishUnavailable(text)
    if isinstance(exc, kafka_errors.KafkaError):
        return PublishError(text)
    return KafkaError(text)

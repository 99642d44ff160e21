"""The one translation of Kafka failures (eventplatform.producer._errors)."""

from __future__ import annotations

import pytest
from aiokafka import errors as kafka_errors

from eventplatform.errors import (
    AuthorizationFailed,
    EventPlatformError,
    KafkaError,
    ProducerFenced,
    PublishError,
    PublishTimeout,
    PublishUnavailable,
    RecordTooLarge,
    SerializationError,
    UnknownTopic,
)
from eventplatform.producer._errors import translate


@pytest.mark.parametrize(
    ("raised", "expected", "retriable"),
    [
        (kafka_errors.ProducerFenced(), ProducerFenced, False),
        (kafka_errors.InvalidProducerEpoch(), ProducerFenced, False),
        (kafka_errors.TransactionalIdAuthorizationFailed(), ProducerFenced, False),
        (kafka_errors.TopicAuthorizationFailedError(), AuthorizationFailed, False),
        (kafka_errors.UnknownTopicOrPartitionError(), UnknownTopic, True),
        (kafka_errors.MessageSizeTooLargeError(), RecordTooLarge, False),
        (kafka_errors.RecordTooLargeError(), RecordTooLarge, False),
        (kafka_errors.KafkaTimeoutError(), PublishTimeout, True),
        (kafka_errors.RequestTimedOutError(), PublishTimeout, True),
        (TimeoutError(), PublishTimeout, True),
        (kafka_errors.NotEnoughReplicasError(), PublishUnavailable, True),
        (kafka_errors.NotLeaderForPartitionError(), PublishUnavailable, True),
        (kafka_errors.KafkaConnectionError("refused"), PublishUnavailable, True),
        (ConnectionResetError("reset"), PublishUnavailable, True),
        (kafka_errors.CorruptRecordException(), PublishError, False),
        (kafka_errors.IllegalStateError("no"), PublishError, False),
    ],
)
def test_each_kafka_failure_has_one_eventplatform_error(
    raised: BaseException, expected: type[EventPlatformError], retriable: bool
) -> None:
    error = translate(raised, topic="orders", transactional_id="orders-tx")
    assert type(error) is expected
    assert error.retriable is retriable
    assert isinstance(error, KafkaError)


def test_topic_errors_name_their_topic() -> None:
    unknown = translate(kafka_errors.UnknownTopicOrPartitionError(), topic="orders")
    refused = translate(kafka_errors.TopicAuthorizationFailedError(), topic="orders")
    assert isinstance(unknown, UnknownTopic)
    assert isinstance(refused, AuthorizationFailed)
    assert (unknown.topic, refused.resource) == ("orders", "topic:orders")
    assert "'orders'" in str(unknown)
    assert "'orders'" in str(refused)


def test_a_fenced_producer_is_named_by_its_transactional_id() -> None:
    error = translate(kafka_errors.ProducerFenced(), transactional_id="orders-tx")
    assert "'orders-tx'" in str(error)


def test_a_timeout_carries_the_ids_to_retry_with() -> None:
    error = translate(
        kafka_errors.KafkaTimeoutError(), topic="t", event_ids=["a"], idempotency_keys=["k"]
    )
    assert isinstance(error, PublishTimeout)
    assert (error.event_ids, error.idempotency_keys) == (("a",), ("k",))


def test_own_errors_pass_through_unchanged() -> None:
    own = SerializationError("bad")
    assert translate(own) is own

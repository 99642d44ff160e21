"""Webhook egress configuration, endpoint matching and committable offsets (no broker)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from eventplatform.connectors.builtin.egress.connector import (
    WebhookEgress,
    WebhookEgressConfig,
)
from eventplatform.connectors.builtin.egress.endpoints import WebhookEndpoint
from eventplatform.connectors.builtin.egress.watermarks import OffsetTracker
from eventplatform.connectors.builtin.files.sink import FileSink
from eventplatform.connectors.runtime import plugins
from eventplatform.demo.receiver import DemoReceiver
from eventplatform.errors import ConnectorConfigError
from eventplatform.settings import load_settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def endpoint(**changes: object) -> WebhookEndpoint:
    values: dict[str, object] = {"name": "shop", "url": "https://shop.example.com/hooks"}
    values["secret"] = SECRET
    values.update(changes)
    return WebhookEndpoint.model_validate(values)


def test_event_type_patterns() -> None:
    exact = endpoint(event_types=["com.example.orders.OrderPlaced"])
    assert exact.matches("com.example.orders.OrderPlaced")
    assert not exact.matches("com.example.orders.OrderPaid")
    prefix = endpoint(event_types=["com.example.orders.*"])
    assert prefix.matches("com.example.orders.OrderPaid")
    assert not prefix.matches("com.example.ordersarchive.X")
    assert not prefix.matches("com.example.customers.CustomerRegistered")
    assert endpoint().matches("anything.At.All")  # the default is "*"


def test_endpoints_are_validated() -> None:
    with pytest.raises(ValidationError, match="whsec_"):
        endpoint(secret="whsec_%%%")
    with pytest.raises(ValidationError, match="http"):
        endpoint(url="mailto:ops@example.com")
    with pytest.raises(ValidationError, match="letters, digits"):
        endpoint(name="a b")
    with pytest.raises(ValidationError, match="at least 1"):
        endpoint(event_types=[])
    rotating = endpoint(previous_secrets=["whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24="])
    assert rotating.secrets()[0] == SECRET
    assert "whsec_" not in repr(rotating)  # secrets never show


def test_the_connector_config_refuses_duplicates_and_negative_waits() -> None:
    shop = {"name": "shop", "url": "https://shop.example.com/", "secret": SECRET}
    with pytest.raises(ValidationError, match="two are named 'shop'"):
        WebhookEgressConfig.model_validate({"endpoints": [shop, shop]})
    with pytest.raises(ValidationError, match="retry_schedule"):
        WebhookEgressConfig.model_validate({"endpoints": [shop], "retry_schedule": [1, -1]})
    with pytest.raises(ValidationError, match="at least 1"):
        WebhookEgressConfig.model_validate({"endpoints": []})


def test_an_egress_derives_its_topics_and_group_from_its_name() -> None:
    settings = load_settings(kafka={"bootstrap_servers": "127.0.0.1:9"})
    shop = {"name": "shop", "url": "https://shop.example.com/", "secret": SECRET}
    egress = WebhookEgress(
        name="orders-out", topic="orders", config={"endpoints": [shop]}, settings=settings
    )
    assert egress.role == "sink"
    assert (egress.group_id, egress.dlq_topic, egress.deliveries_topic) == (
        "connect-orders-out",
        "orders.dlq",
        "orders-out.deliveries",
    )
    assert egress.schedule.attempts == 8
    with pytest.raises(ConnectorConfigError, match="needs a topic"):
        WebhookEgress(name="no-topic", config={"endpoints": [shop]}, settings=settings)


def test_the_sinks_and_the_demo_receiver_are_built_in() -> None:
    assert plugins.load_connector_class("webhook-egress") is WebhookEgress
    assert plugins.load_connector_class("file-sink") is FileSink
    assert plugins.load_connector_class("demo-receiver") is DemoReceiver


def test_the_committable_offset_stops_at_the_first_unsettled_event() -> None:
    settled = []
    tracker = OffsetTracker(lambda: settled.append(1))
    assert tracker.committable is None
    tracker.track(10, 2)  # two endpoints
    tracker.track(11, 1)
    tracker.track(12, 0)  # no endpoint subscribed: settled at once
    assert tracker.committable == 10
    tracker.settle(11)
    assert (tracker.committable, tracker.unsettled) == (10, 1)
    tracker.settle(10)
    assert tracker.committable == 10  # one of its two deliveries is still open
    tracker.settle(10)
    assert (tracker.committable, tracker.unsettled) == (13, 0)
    assert len(settled) == 2
    tracker.settle(10)  # already settled: ignored
    assert tracker.committable == 13
    with pytest.raises(ValueError, match="offset 5 tracked after 12"):
        tracker.track(5, 1)

"""What the catalogue says about the demo deployment: topics, who publishes and consumes what,
fields, examples, routes and registry versions."""

from __future__ import annotations

import json

from eventplatform.catalogue import EventCatalogue, add_registry_versions
from eventplatform.connectors.sdk.payloads import parse_event
from eventplatform.demo import events as demo_events
from eventplatform.registry.base import CompatibilityLevel
from eventplatform.registry.memory import MemoryRegistry

PLACED = "com.example.orders.OrderPlaced"
PAID = "com.example.orders.OrderPaid"


def test_topics_carry_the_types_their_connectors_and_handlers_name(demo: EventCatalogue) -> None:
    assert dict(demo.topics) == {"orders": (PLACED,), "payments": (PAID,)}
    assert [e.full_name for e in demo.events] == [
        "com.example.customers.CustomerRegistered",
        PAID,
        PLACED,
        "com.example.orders.OrderShipped",
    ]
    assert demo.event("com.example.orders.OrderShipped").topics == ()
    assert demo.event(PAID).source == "schemas/com/example/orders/OrderPaid.avsc"


def test_publishers_and_consumers_of_an_event(demo: EventCatalogue) -> None:
    placed = demo.event(PLACED)
    assert {(p.name, p.kind) for p in placed.publishers} == {
        ("orders", "webhook-ingress"),
        ("orders-signed", "webhook-ingress"),
    }
    consumers = {(p.name, p.kind, p.group_id) for p in placed.consumers}
    assert consumers == {
        ("orders-file", "file-sink", "connect-orders-file"),
        ("orders-out", "webhook-egress", "connect-orders-out"),
        ("billing", "app", "billing-service"),
    }
    handler = next(p for p in placed.consumers if p.kind == "app")
    assert handler.handler == "tests.unit.catalogue.billing_app.bill"
    paid = demo.event(PAID)
    assert paid.publishers == ()
    assert [(p.name, p.topic) for p in paid.consumers] == [("billing", "payments")]


def test_fields_include_the_records_inside_an_event(demo: EventCatalogue) -> None:
    fields = {(f.record, f.name): f for f in demo.event(PLACED).fields}
    assert list(fields)[:7] == [(PLACED, n) for n in (
        "order_id", "customer_id", "items", "total", "currency", "placed_at", "note"
    )]  # fmt: skip
    assert fields[PLACED, "items"].type == "array<LineItem>"
    assert fields[PLACED, "order_id"].logical_type == "uuid"
    assert fields[PLACED, "total"].logical_type == "decimal(10, 2)"
    assert fields[PLACED, "currency"].type == "enum Currency"
    assert fields[PLACED, "currency"].symbols == ("EUR", "USD", "GBP")
    assert fields[PLACED, "note"].type == "null | string"
    assert fields[PLACED, "note"].default == "null"
    assert fields[PLACED, "customer_id"].default is None
    line_item = fields["com.example.orders.LineItem", "unit_price"]
    assert line_item.doc == "Price of one unit, in the order's currency."


def test_every_example_is_accepted_by_the_ingress_parser(demo: EventCatalogue) -> None:
    for event in demo.events:
        event_class = getattr(demo_events, event.name)
        parsed = parse_event(event_class, json.dumps(event.example))
        assert parsed.model_dump(mode="json").keys() == event.example.keys()


def test_routes_name_the_variables_that_hold_their_secrets(demo: EventCatalogue) -> None:
    routes = {r.connector: r for r in demo.event(PLACED).routes}
    assert set(routes) == {"orders", "orders-signed"}
    keyed, signed = routes["orders"], routes["orders-signed"]
    assert (keyed.url, keyed.api_key, keyed.signed) == (
        "http://127.0.0.1:8080/hooks/orders",
        True,
        False,
    )
    assert keyed.api_key_variable == "ORDERS_API_KEY"
    assert keyed.source == "connectors/orders-in.toml"
    assert (signed.signed, signed.secret_variable) == (True, "ORDERS_WEBHOOK_SECRET")


async def test_versions_and_levels_come_from_the_registry(demo: EventCatalogue) -> None:
    registry = MemoryRegistry()
    await registry.start()
    placed = demo.event(PLACED)
    first = json.dumps(placed.schema)
    await registry.register("orders-value", first)
    await registry.set_compatibility(CompatibilityLevel.FULL, "orders-value")
    await registry.register(PLACED, first)
    changed = dict(placed.schema, fields=[*placed.schema["fields"]])
    changed["fields"].append({"name": "coupon", "type": ["null", "string"], "default": None})
    await registry.register(PLACED, json.dumps(changed))

    with_versions = await add_registry_versions(demo, registry, url="http://registry.test")

    assert with_versions.registry.consulted
    subjects = {s.subject: s for s in with_versions.event(PLACED).subjects}
    assert set(subjects) == {"orders-value", PLACED}
    assert subjects["orders-value"].versions == (1,)
    assert subjects["orders-value"].compatibility == "FULL"
    assert subjects["orders-value"].file_version == 1
    assert subjects[PLACED].versions == (1, 2)
    assert subjects[PLACED].compatibility == "BACKWARD"
    assert subjects[PLACED].file_version == 1  # the file is version 1; 2 is not in schemas/
    assert subjects[PLACED].latest_id != subjects["orders-value"].latest_id  # v2's schema
    assert with_versions.event(PAID).subjects == ()
    await registry.close()

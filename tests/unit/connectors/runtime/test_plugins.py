"""Connector types by name: entry points and built-ins through one loader."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from types import SimpleNamespace

import pytest

from eventplatform.connectors.builtin.files.source import FileSource
from eventplatform.connectors.builtin.ingress.connector import WebhookIngress
from eventplatform.connectors.builtin.outbox import OutboxSource
from eventplatform.connectors.runtime import plugins
from eventplatform.errors import ConnectorError, ConnectorNotFound


def test_builtins_load_by_name() -> None:
    assert plugins.load_connector_class("webhook-ingress") is WebhookIngress
    assert plugins.load_connector_class("postgres-outbox") is OutboxSource
    assert plugins.load_connector_class("file-source") is FileSource


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConnectorNotFound, match=r"known types: .*file-source.*webhook-ingress"):
        plugins.load_connector_class("kinesis")


def _entry_points(*points: EntryPoint) -> object:
    def fake(*, group: str) -> list[EntryPoint]:
        assert group == plugins.ENTRY_POINT_GROUP
        return list(points)

    return fake


def test_a_third_party_entry_point_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(
        "counting", "tests.integration.connectors.helpers:CountingSource", plugins.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(plugins, "entry_points", _entry_points(point))
    from tests.integration.connectors.helpers import CountingSource

    assert plugins.load_connector_class("counting") is CountingSource
    assert "counting" in plugins.available()


def test_the_same_registration_twice_is_fine_but_a_conflict_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    same = EntryPoint("file-source", plugins.BUILTINS["file-source"], plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", _entry_points(same))
    assert plugins.load_connector_class("file-source") is FileSource
    other = EntryPoint("file-source", "acme.files:Better", plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", _entry_points(other))
    with pytest.raises(ConnectorError, match=r"registered twice: acme\.files:Better"):
        plugins.available()


def test_a_target_that_is_not_a_connector_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint("odd", "json:dumps", plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", _entry_points(point))
    with pytest.raises(ConnectorError, match="not a Connector subclass"):
        plugins.load_connector_class("odd")
    missing = EntryPoint("gone", "no_such_module_xyz:Thing", plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", _entry_points(missing))
    with pytest.raises(ConnectorNotFound, match="cannot be imported"):
        plugins.load_connector_class("gone")


def test_eventplatform_s_own_entry_points_give_way_to_the_builtins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An editable install records the module paths of its install time; after a move they
    # name modules that no longer exist, and BUILTINS is what this checkout means.
    stale = EntryPoint(
        "file-source", "eventplatform.connectors.files:FileSource", plugins.ENTRY_POINT_GROUP
    )._for(SimpleNamespace(name="eventplatform"))
    monkeypatch.setattr(plugins, "entry_points", _entry_points(stale))
    assert plugins.available()["file-source"].target == plugins.BUILTINS["file-source"]
    assert plugins.load_connector_class("file-source") is FileSource

"""The connector seams without a broker: configs, records, states, counters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from eventplatform.connectors import (
    ConnectorState,
    ConnectorStats,
    ConnectorStatus,
    Source,
    SourceConfig,
    SourceRecord,
)
from eventplatform.connectors.runtime.supervisor import Backoff
from eventplatform.errors import ConnectorConfigError, ConnectorError, ResourceStateError
from eventplatform.settings import Settings
from tests.integration.connectors.helpers import Tick

SETTINGS = Settings(kafka={"bootstrap_servers": "127.0.0.1:9"})


class EveryConfig(SourceConfig):
    """Settings of :class:`Every`."""

    seconds: float = 1.0


class Every(Source[EveryConfig]):
    """Takes its Config from its type argument."""

    async def records(self) -> AsyncIterator[SourceRecord]:
        yield SourceRecord(event=Tick(n=1))


def make(**overrides: object) -> Every:
    arguments: dict[str, object] = {
        "name": "every",
        "topic": "ticks",
        "event_type": Tick,
        "settings": SETTINGS,
    }
    arguments.update(overrides)
    return Every(**arguments)  # type: ignore[arg-type]


def test_the_config_model_comes_from_the_type_argument() -> None:
    assert Every.Config is EveryConfig
    connector = make(config={"seconds": 2.5})
    assert connector.config == EveryConfig(seconds=2.5)
    assert connector.event_source == "/connectors/every"
    assert connector.state is ConnectorState.NEW


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        ({"config": {"seconds": "soon"}}, "settings.seconds", "valid number"),
        ({"config": {"minutes": 1}}, "settings.minutes", "Extra inputs"),
        ({"name": "no spaces"}, "name", "must start with a letter"),
        ({"topic": None}, "topic", "needs a topic"),
        ({"event_type": None}, "event_type", "needs an event_type"),
        ({"event_type": dict}, "event_type", "not an AvroEvent class"),
    ],
)
def test_a_bad_instance_is_refused_naming_the_key(
    overrides: dict[str, object], key: str, message: str
) -> None:
    with pytest.raises(ConnectorConfigError, match=message) as caught:
        make(**overrides)
    assert caught.value.key == key


def test_resources_are_not_there_before_start() -> None:
    connector = make()
    with pytest.raises(ResourceStateError, match="after start"):
        _ = connector.producer
    with pytest.raises(ResourceStateError, match="after start"):
        connector.committed({"p": 1})


async def test_a_closed_connector_cannot_run() -> None:
    connector = make()
    await connector.close()
    with pytest.raises(ResourceStateError, match="is closed"):
        await connector.run()


def test_a_record_carries_an_event_or_a_value() -> None:
    with pytest.raises(ConnectorError, match="exactly one"):
        SourceRecord()
    with pytest.raises(ConnectorError, match="exactly one"):
        SourceRecord(event=Tick(n=1), value=b"{}")
    assert not SourceRecord(value=b"{}").answered


def test_counters_add_up_over_restarts() -> None:
    first = ConnectorStats(records=3, errors=1, last_activity=10.0, last_error="boom")
    first.count("bad_lines", 2)
    second = ConnectorStats(records=4, last_activity=20.0)
    second.count("bad_lines")
    total = first.merged(second)
    assert (total.records, total.errors, total.last_activity) == (7, 1, 20.0)
    assert total.last_error == "boom"
    assert total.counters == {"bad_lines": 3}


def test_a_status_round_trips_through_json() -> None:
    status = ConnectorStatus(
        name="x",
        type="file-source",
        role="source",
        state=ConnectorState.FAILED,
        records=5,
        counters={"bad_lines": 1},
        restarts=2,
        next_restart_at=12.5,
    )
    assert ConnectorStatus.from_dict(status.as_dict()) == status
    with pytest.raises(ConnectorError):
        ConnectorStatus.from_dict({"name": "x", "state": "dancing"})


def test_backoff_grows_to_its_maximum() -> None:
    backoff = Backoff(initial=1, maximum=5, multiplier=2, jitter=0)
    assert [backoff.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    jittered = Backoff(initial=10, jitter=0.2)
    assert all(8 <= jittered.delay(1) <= 10 for _ in range(50))

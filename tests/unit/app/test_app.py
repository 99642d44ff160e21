"""EventApp without a broker: configuration, registration and state errors, typing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

from eventplatform.app import Context, EventApp
from eventplatform.errors import ConfigurationError, ResourceStateError
from eventplatform.settings import load_settings
from tests.unit.app.records import Placed

ROOT = Path(__file__).resolve().parents[3]


def test_names_resolve_argument_then_settings_then_default() -> None:
    settings = load_settings(consumer={"group_id": "from-settings"})
    assert EventApp("billing", settings=load_settings()).group_id == "billing"
    assert EventApp("billing", settings=settings).group_id == "from-settings"
    app = EventApp("billing", group_id="explicit", settings=settings, instance_id="pod-0")
    assert app.group_id == "explicit"
    assert app.transactional_id == "explicit.pod-0"
    custom = load_settings(producer={"transactional_id": "fixed"})
    assert EventApp("billing", settings=custom).transactional_id == "fixed"
    with pytest.raises(ConfigurationError):
        EventApp("")


def test_handle_registers_and_returns_the_handler() -> None:
    app = EventApp("billing", settings=load_settings())

    @app.handle(Placed, timeout=2.5)
    async def bill(event: Placed, ctx: Context) -> None:
        pass

    [route] = app.routes
    assert (route.event_type, route.handler, route.topic, route.timeout) == (
        Placed,
        bill,
        "orders",
        2.5,
    )
    assert app.topics == ["orders"]
    assert repr(app) == "<EventApp 'billing' group='billing' new>"


async def test_start_refuses_an_app_without_handlers_or_servers() -> None:
    with pytest.raises(ConfigurationError, match="no handlers"):
        await EventApp("empty", settings=load_settings()).start()
    app = EventApp("nowhere", settings=load_settings(), bootstrap_servers=None)
    app.bootstrap_servers = None

    @app.handle(Placed)
    async def bill(event: Placed, ctx: Context) -> None:
        pass

    with pytest.raises(ConfigurationError, match="bootstrap servers"):
        await app.start()


async def test_a_closed_app_cannot_run_or_take_handlers() -> None:
    app = EventApp("closed", settings=load_settings())
    await app.close()
    await app.close()  # idempotent
    with pytest.raises(ResourceStateError):
        await app.run()
    with pytest.raises(ResourceStateError):
        await app.start()
    with pytest.raises(ResourceStateError):
        app.add_handler(Placed, _noop)


async def _noop(event: Placed, ctx: Context) -> None:
    pass


def test_mypy_knows_the_event_type_a_handler_receives(tmp_path: Path) -> None:
    source = tmp_path / "typed_app.py"
    source.write_text(
        textwrap.dedent(
            """
            from eventplatform.app import Context, EventApp
            from tests.unit.app.records import Placed, Shipped

            app = EventApp("typed")

            @app.handle(Placed)
            async def good(event: Placed, ctx: Context) -> None:
                reveal_type(event.order_id)

            @app.handle(Placed, topic="orders")
            async def wrong(event: Shipped, ctx: Context) -> None:
                pass
            """
        )
    )
    out, _, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(ROOT / ".mypy_cache"), str(source)]
    )
    assert status == 1
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if ": " in line]
    assert any(
        line.startswith('note: Revealed type is "') and line.endswith('str"') for line in lines
    )
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1
    assert "Shipped" in errors[0]
    assert "Placed" in errors[0]

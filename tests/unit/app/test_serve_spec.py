"""``eventplatform serve MODULE:APP``: finding the app, and refusing what is not one."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from eventplatform.cli.serve import AppSpecError, app, load_app
from tests.unit.app import sample_apps


def test_a_spec_names_a_module_attribute_path_or_factory() -> None:
    assert load_app("tests.unit.app.sample_apps:app") is sample_apps.app
    assert load_app("tests.unit.app.sample_apps:Holder.app") is sample_apps.app
    assert load_app("tests.unit.app.sample_apps:make", factory=True).name == "made"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.unit.app.sample_apps", "not MODULE:APP"),
        (":app", "not MODULE:APP"),
        ("tests.unit.app.no_such_module:app", "cannot be imported"),
        ("tests.unit.app.sample_apps:missing", "no attribute"),
        ("tests.unit.app.sample_apps:not_an_app", "not an EventApp"),
        ("tests.unit.app.sample_apps:make", "use --factory"),
    ],
)
def test_a_bad_spec_is_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(AppSpecError, match=message):
        load_app(spec)


def test_the_command_exits_2_on_a_bad_spec() -> None:
    result = CliRunner().invoke(app, ["tests.unit.app.sample_apps:not_an_app"])
    assert result.exit_code == 2
    assert "not an EventApp" in result.output
    result = CliRunner().invoke(app, ["tests.unit.app.sample_apps:app", "--log-level", "LOUD"])
    assert result.exit_code == 2
    assert "unknown log level" in result.output

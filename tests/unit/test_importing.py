"""``import_object``: the one ``module:attribute`` loader, and its one style of error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from eventplatform import errors
from eventplatform._importing import import_object
from eventplatform.errors import ImportSpecError


def test_a_spec_names_an_attribute_path_or_a_module() -> None:
    assert import_object("eventplatform.errors:ImportSpecError", what="class") is ImportSpecError
    assert import_object("eventplatform:errors.GitError", what="class") is errors.GitError
    assert import_object("eventplatform.errors", what="module", module_only=True) is errors


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("eventplatform.errors", r"^thing 'eventplatform.errors' is not MODULE:ATTRIBUTE$"),
        (":GitError", r"^thing ':GitError' is not MODULE:ATTRIBUTE$"),
        ("eventplatform.errors:", r"is not MODULE:ATTRIBUTE"),
        (
            "no_such_module_xyz:thing",
            r"^thing 'no_such_module_xyz:thing' cannot be imported: "
            r"No module named 'no_such_module_xyz'$",
        ),
        (
            "eventplatform.errors:Nope.deeper",
            r"^thing 'eventplatform.errors:Nope.deeper' cannot be imported: module "
            r"'eventplatform.errors' has no attribute 'Nope.deeper'$",
        ),
    ],
)
def test_a_bad_spec_names_itself_and_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ImportSpecError, match=message):
        import_object(spec, what="thing")


def test_an_import_failing_inside_the_module_is_named_and_chained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_target_mod.py").write_text("import not_installed_dependency_xyz\nx = 1\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(
        ImportSpecError, match="No module named 'not_installed_dependency_xyz'"
    ) as e:
        import_object("broken_target_mod:x", what="app", search_path=str(tmp_path))
    assert isinstance(e.value.__cause__, ModuleNotFoundError)
    assert sys.path[0] == str(tmp_path.resolve())
    sys.modules.pop("broken_target_mod", None)

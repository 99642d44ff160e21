"""The connectors tree keeps its layers: the SDK loads without the runtime or the built-ins."""

from __future__ import annotations

import subprocess
import sys

import pytest

from eventplatform import connectors


def _loaded_after(statement: str) -> set[str]:
    code = (
        f"{statement}\nimport sys\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('eventplatform.connectors')))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(found.stdout.split())


def test_the_sdk_imports_neither_the_runtime_nor_the_builtins() -> None:
    loaded = _loaded_after("from eventplatform.connectors import Responder, Sink, Source")
    assert "eventplatform.connectors.sdk.connector" in loaded
    assert not {
        m
        for m in loaded
        if m.startswith(("eventplatform.connectors.runtime", "eventplatform.connectors.builtin"))
    }


@pytest.mark.parametrize("name", sorted(set(connectors.__all__)))
def test_every_public_name_still_imports_from_eventplatform_connectors(name: str) -> None:
    assert getattr(connectors, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = connectors.Nope  # type: ignore[attr-defined]

"""The dollar-quoted literals of PostgreSQL key units cannot be ended by the value."""

from __future__ import annotations

import pytest

from eventplatform.idempotency.postgres_units import literal


@pytest.mark.parametrize("value", ["", "plain", "$k$", "a$k", "$k1$$k$", "x$", "$$", "'; --"])
def test_the_tag_never_occurs_in_the_value(value: str) -> None:
    quoted = literal(value)
    tag = quoted[: quoted.index("$", 1) + 1]
    assert quoted == f"{tag}{value}{tag}"
    assert tag[:-1] not in value  # "$tag" absent: no closing delimiter inside the body

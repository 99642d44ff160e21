"""The public façade: ``__all__`` is sorted, complete and every name resolves."""

from __future__ import annotations

import eventplatform
from eventplatform import errors


def test_all_is_sorted_and_resolves() -> None:
    names = eventplatform.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(eventplatform, name) is not None


def test_every_public_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.EventPlatformError), name


def test_error_tree_docstring_names_every_error() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        if isinstance(getattr(errors, name), type):
            assert name in doc, f"{name} missing from the tree in errors.py's docstring"

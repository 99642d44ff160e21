"""Importing what a ``module:attribute`` spec names, with one style of error for every caller.

The spec is uvicorn's and the entry points' (``billing.service:app``, ``acme.hooks:Ping``,
``service:apps.billing``): the module is imported, then the dotted attribute path is followed
in it. ``eventplatform serve`` (an app), a connector instance's ``event_type`` (an event class),
a connector type's entry point (a Connector class) and ``schemas check --classes`` (a module)
all load through :func:`import_object`, so a bad spec reads the same wherever it is written::

    app 'billing.service:app' cannot be imported: No module named 'billing'
    event type 'acme.hooks:Pong' cannot be imported: module 'acme.hooks' has no attribute 'Pong'

What the object must be (an EventApp, an AvroEvent class) is the caller's check.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from eventplatform.errors import ImportSpecError

__all__ = ["import_object"]


def import_object(
    spec: str,
    *,
    what: str,
    form: str = "MODULE:ATTRIBUTE",
    module_only: bool = False,
    search_path: str | None = None,
) -> Any:
    """The object ``spec`` names: ``module:attribute.path``, or a module when ``module_only``.

    Args:
        spec: what to import.
        what: what the spec is for, as errors name it (``app``, ``event type``).
        form: how the spec is written, as the error for a malformed one shows it.
        module_only: ``spec`` is a module name and the module is the object.
        search_path: a directory put first on ``sys.path`` (a project's own modules import
            without being installed).

    Raises:
        ImportSpecError: the spec is malformed, its module cannot be imported (a missing
            module, or an ``ImportError`` raised while importing it: the message says which),
            or the attribute path does not exist.
    """
    module_name, sep, attribute = (spec, "", "") if module_only else spec.partition(":")
    if not module_name or (not module_only and (not sep or not attribute)):
        raise ImportSpecError(f"{what} {spec!r} is not {form}")
    if search_path is not None:
        directory = os.path.abspath(search_path)
        if directory not in sys.path:
            sys.path.insert(0, directory)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        # Chained, so that an import failing inside the module keeps its traceback.
        raise ImportSpecError(f"{what} {spec!r} cannot be imported: {exc}") from exc
    for part in attribute.split(".") if attribute else ():
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ImportSpecError(
                f"{what} {spec!r} cannot be imported: module {module_name!r} has no attribute "
                f"{attribute!r}"
            ) from exc
    return target

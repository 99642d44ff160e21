"""Garbage-collector settings for the long-running processes the CLI starts.

CPython 3.11's cyclic collector runs a young collection every 700 container allocations and
a full one when enough survive, walking every tracked object the process holds: modules,
classes, pydantic's schemas, the clients. Measured on the webhook ingress at ~7,000
requests/s (``python -m benchmarks ingress``), collections took ~20 µs of each request's
~150 µs of CPU, full collections ~45 ms each. :func:`settle` moves everything alive after
start-up into the permanent generation (``gc.freeze()``, as servers that preload do), so full
collections walk only what requests created, and raises the young threshold so that a burst
of short-lived request objects is collected in one pass instead of dozens. Cycles are still
collected; only their timing changes.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle"]

#: Container allocations between young collections (CPython's default is 700).
YOUNG_THRESHOLD = 10_000


def settle(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Freeze the objects alive now and set the young-generation threshold.

    Call once start-up is done, in a process eventplatform owns (``eventplatform up``,
    ``serve``, ``connectors run``); a library embedding eventplatform keeps its own settings.
    """
    gc.collect()  # what start-up left as garbage is not worth freezing
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)

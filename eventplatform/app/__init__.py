"""The service API: :class:`EventApp`, its handlers' :class:`Context`, and the consumption loop.

::

    from eventplatform.app import Context, EventApp, IdempotencyKey, RetryLater, SkipEvent

    app = EventApp("billing")

    @app.handle(OrderPlaced)
    async def bill(event: OrderPlaced, ctx: Context) -> None:
        ...

Modules: :mod:`~eventplatform.app.app` (the app), :mod:`~eventplatform.app.context`,
:mod:`~eventplatform.app.routing` (dispatch by type), :mod:`~eventplatform.app.loop` (poll,
claim, commit), :mod:`~eventplatform.app.dispatch` (order, concurrency, retries),
:mod:`~eventplatform.app.keys` (idempotency keys of records without CloudEvents headers),
:mod:`~eventplatform.app.retry`, :mod:`~eventplatform.app.dlq`,
:mod:`~eventplatform.app.transaction` (Kafka transactions), :mod:`~eventplatform.app.signals`.
"""

from eventplatform.app.app import EventApp
from eventplatform.app.context import Context, derived_event_id
from eventplatform.app.dlq import DeadLetter, Stage
from eventplatform.app.keys import IdempotencyKey
from eventplatform.app.retry import RetryPolicy, is_retriable
from eventplatform.app.routing import Route
from eventplatform.app.signals import HandlerSignal, RetryLater, SkipEvent
from eventplatform.app.stats import AppStats

__all__ = [
    "AppStats",
    "Context",
    "DeadLetter",
    "EventApp",
    "HandlerSignal",
    "IdempotencyKey",
    "RetryLater",
    "RetryPolicy",
    "Route",
    "SkipEvent",
    "Stage",
    "derived_event_id",
    "is_retriable",
]

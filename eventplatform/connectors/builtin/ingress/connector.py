"""Webhook ingress: JSON events posted over HTTP, validated, published, then answered.

An instance::

    # connectors/orders-in.toml
    type = "webhook-ingress"
    topic = "orders"
    event_type = "com.example.orders.OrderPlaced"

    [settings]
    port = 8080                                  # shared by every ingress on this port
    signing_secrets = ["${ORDERS_WEBHOOK_SECRET}"]   # Standard Webhooks, whsec_…
    api_keys = ["${ORDERS_API_KEY}"]             # and/or Authorization: Bearer / X-API-Key
    key_field = "order_id"                       # the Kafka key

``POST /hooks/<name>`` takes one JSON event. The answer ``202 {"id": "<event id>"}`` is sent
only once Kafka acknowledged the record, so an accepted event is durable (DESIGN.md,
"Guarantees"). Everything else is an RFC 9457 problem document, checked in this order:

=====  ==============================================================================
404    no such route (the server answers it)
413    the body is longer than ``max_body_bytes`` (by ``Content-Length`` or as read)
401    a missing or wrong API key; a missing, malformed, stale or non-matching signature
415    not ``application/json`` (or ``application/*+json``), or a charset other than UTF-8
400    malformed JSON, or a malformed ``Idempotency-Key``
422    the event does not fit the JSON Schema of the route's OpenAPI document, or a value
       does not fit its Avro type when encoded: ``errors`` lists ``{"path", "reason"}``;
       or an idempotency key reused for a different body
429    ``max_pending`` requests are already waiting for Kafka (``Retry-After``)
503    Kafka is unavailable or did not acknowledge within ``publish_timeout``; after such a
       failure new requests are refused at once for ``retry_after`` seconds (``Retry-After``)
=====  ==============================================================================

**Idempotency.** A request carrying a ``webhook-id`` (signed routes) or an
``Idempotency-Key`` header gets a deterministic event id, ``uuid5(connector, key)``: a retry
after an accepted answer is answered the same ``202`` and publishes nothing
(:mod:`~.answers`); a retry while the first is still in flight shares
its outcome. With ``idempotency_store`` (``sqlite:///…``, ``postgresql://…``) accepted keys
also survive a restart; without it a retry after a restart is published again, with the same
event id, and consumers deduplicate it.

**The document is the contract.** ``GET /openapi.json`` describes each route
(:mod:`~.openapi`), and a body is checked against the very JSON Schema
published there (:func:`~.jsonschema.body_validator`) before the event
is built, so what the document allows is accepted and what it refuses is answered 422; the
test suite runs Schemathesis against the document to hold both directions.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import MutableMapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import Field, SecretStr, field_validator, model_validator

from eventplatform.cloudevents import new_event_id
from eventplatform.connectors.builtin.ingress.answers import (
    Answer,
    AnswerCache,
    body_digest,
)
from eventplatform.connectors.builtin.ingress.jsonschema import body_validator
from eventplatform.connectors.builtin.ingress.openapi import (
    SECURITY_SCHEMES,
    TRACEPARENT,
    route_operation,
)
from eventplatform.connectors.builtin.webhooks import (
    MESSAGE_ID,
    MESSAGE_ID_RULE,
    SignatureVerifier,
    decode_secret,
)
from eventplatform.connectors.runtime.http import problem
from eventplatform.connectors.sdk.payloads import parse_event
from eventplatform.connectors.sdk.responder import Responder, ResponderConfig
from eventplatform.errors import (
    ConfigurationError,
    ConnectorConfigError,
    EventPlatformError,
    InvalidPayload,
    InvalidSignature,
    MalformedPayload,
    PublishError,
    SerializationError,
)
from eventplatform.idempotency import IdempotencyStore, new_owner_id, open_store
from eventplatform.observability import events as observed
from eventplatform.producer import Outgoing, PublishResult
from eventplatform.producer.coalescer import Coalescer
from eventplatform.producer.deadlines import Deadlines, time_out
from eventplatform.schema import AvroEvent

__all__ = ["WebhookIngress", "WebhookIngressConfig"]

log = logging.getLogger("eventplatform.connectors.ingress")

# Event ids of keyed requests: uuid5 in a namespace of their own (RFC 9562 §5.5).
_ID_NAMESPACE = uuid.UUID("0c6f4a8e-1b7d-5c2e-9f3a-8d4b6e2a1c57")
_RESERVED_PATHS = ("/health", "/openapi.json")
T = TypeVar("T")


class WebhookIngressConfig(ResponderConfig):
    """Settings of a webhook ingress (the ``[settings]`` table)."""

    path: str | None = Field(default=None, description="Route; default /hooks/<name>.")
    signing_secrets: list[SecretStr] = Field(
        default=[], description="Standard Webhooks secrets (whsec_…); any one may sign."
    )
    api_keys: list[SecretStr] = Field(
        default=[], description="Accepted keys (Authorization: Bearer, or X-API-Key)."
    )
    allow_anonymous: bool = Field(
        default=False, description="Accept requests without a key or signature."
    )
    timestamp_tolerance: float = Field(
        default=300.0, ge=0, description="Seconds webhook-timestamp may be off."
    )
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    max_pending: int = Field(default=1000, gt=0, description="Requests waiting for Kafka.")
    publish_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for Kafka.")
    retry_after: int = Field(default=5, ge=1, description="Retry-After of 503 answers.")
    key_field: str | None = Field(default=None, description="Event field used as Kafka key.")
    idempotency_ttl: float = Field(default=86_400.0, gt=0)
    idempotency_entries: int = Field(default=100_000, gt=0)
    idempotency_store: SecretStr | None = Field(
        default=None, description="Store URL that keeps accepted keys across restarts."
    )

    @field_validator("signing_secrets")
    @classmethod
    def _check_secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for secret in secrets:
            try:
                decode_secret(secret.get_secret_value())
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
        return secrets

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str | None) -> str | None:
        if path is not None and (not path.startswith("/") or path in _RESERVED_PATHS):
            raise ValueError("must start with '/' and not be /health or /openapi.json")
        return path

    @model_validator(mode="after")
    def _check_auth(self) -> WebhookIngressConfig:
        if not (self.signing_secrets or self.api_keys or self.allow_anonymous):
            raise ValueError(
                "set signing_secrets and/or api_keys (or allow_anonymous = true to accept "
                "unauthenticated requests)"
            )
        return self


class WebhookIngress(Responder[WebhookIngressConfig]):
    """HTTP → topic (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        assert self.event_type is not None  # requires_event_type
        self._event_type: type[AvroEvent] = self.event_type
        self._type_name = self.event_type.__avro_name__
        self._check_body = body_validator(self.event_type)
        key_field = self.config.key_field
        if key_field is not None and key_field not in self.event_type.model_fields:
            raise ConnectorConfigError(
                f"connector {self.name!r}: key_field {key_field!r} is not a field of "
                f"{self.event_type.__avro_name__}",
                key="settings.key_field",
            )
        self.path = self.config.path or f"/hooks/{self.name}"
        self._verifier = (
            SignatureVerifier(
                [s.get_secret_value() for s in self.config.signing_secrets],
                tolerance=self.config.timestamp_tolerance,
            )
            if self.config.signing_secrets
            else None
        )
        self._api_keys = [k.get_secret_value().encode() for k in self.config.api_keys]
        self._answers = AnswerCache(
            max_entries=self.config.idempotency_entries, ttl=self.config.idempotency_ttl
        )
        self._coalescer: Coalescer | None = None
        # One watcher for every request's publish timeout, instead of a timer per request.
        self._deadlines = Deadlines(self.config.publish_timeout, expire=time_out)
        self._pending = 0
        self._unavailable_until = 0.0
        self._store: IdempotencyStore | None = None
        self._owner = new_owner_id()

    # -- lifecycle ---------------------------------------------------------------------------

    async def on_start(self) -> None:
        if self.config.idempotency_store is not None:
            store = open_store(self.config.idempotency_store.get_secret_value())
            await store.start()
            self._store = store
        # Responder._open opened (or took) the producer; `self.producer` answers after start().
        assert self._producer is not None
        self._coalescer = Coalescer(
            self._producer,
            max_batch=self.config.max_batch,
            on_published=self.stats.published,
        )
        # The route is attached once this returns (Responder), and detached before on_stop.

    async def on_stop(self) -> None:
        # The requests still waiting get their answers (what was submitted is published).
        coalescer, self._coalescer = self._coalescer, None
        if coalescer is not None:
            await coalescer.aclose()
        await self._deadlines.aclose()
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    # -- requests ----------------------------------------------------------------------------

    def _reject(
        self, status: int, detail: str, headers: MutableMapping[str, str] | None = None, **more: Any
    ) -> web.Response:
        self.stats.count("rejected")
        self.stats.count(f"http_{status}")
        return problem(status, detail, headers=headers, **more)

    def _unavailable(self, detail: str, *, retry_after: int | None = None) -> web.Response:
        self.stats.count("http_503")
        wait = retry_after or self.config.retry_after
        return problem(503, detail, headers={"Retry-After": str(wait)})

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one ``POST`` (see the module docstring for the answers); traced, inside a
        SERVER span that is the parent of the event's ``send`` span."""
        telemetry = observed.SWITCHES.telemetry
        if telemetry is None:
            return await self._answer(request)
        url = request.url
        server = {"server.address": url.host or "", "server.port": url.port or 80}
        span = telemetry.request(
            request.method, self.path, request.path, request.headers.get("traceparent"), server
        )
        scope = telemetry.attach(span)
        status = 500
        try:
            response = await self._answer(request)
            status = response.status
            return response
        except BaseException as exc:
            telemetry.fail(span, exc)
            raise
        finally:
            telemetry.detach(scope)
            telemetry.answered(span, status)

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        config = self.config
        if self.stopping or not self.running:
            return self._unavailable(f"the ingress {self.name!r} is not running")
        length = request.content_length
        if length is not None and length > config.max_body_bytes:
            return self._reject(413, f"the body exceeds {config.max_body_bytes} bytes")
        if self._api_keys and not self._key_matches(request):
            return self._reject(
                401,
                "a valid API key is required (Authorization: Bearer <key>, or X-API-Key)",
                {"WWW-Authenticate": 'Bearer realm="eventplatform"'},
            )
        body = await self._read_body(request)
        if body is None:
            return self._reject(413, f"the body exceeds {config.max_body_bytes} bytes")
        key: str | None = None
        if self._verifier is not None:
            try:
                key = self._verifier.verify(request.headers, body).id
            except InvalidSignature as exc:
                return self._reject(401, f"signature check failed: {exc}")
        if not _is_json(request):
            return self._reject(415, "send the event as application/json (UTF-8)")
        if key is None and "Idempotency-Key" in request.headers:
            # Taken as sent (the documented pattern): a quoted key, as the IETF draft writes
            # it, is a key with its quotes, the same on every retry.
            key = request.headers["Idempotency-Key"]
            if MESSAGE_ID.fullmatch(key) is None:
                return self._reject(400, f"Idempotency-Key must be {MESSAGE_ID_RULE}")
        # The digest only serves to recognise a key reused for another body.
        digest = b""
        if key is not None:
            digest = body_digest(body)
            replay = await self._replay(key, digest)
            if replay is not None:
                return replay
        try:
            event = parse_event(self._event_type, body)
        except MalformedPayload as exc:
            return self._reject(400, str(exc))
        except InvalidPayload as exc:
            errors = [{"path": path, "reason": reason} for path, reason in exc.errors]
            return self._reject(422, "the event does not fit its schema", errors=errors)
        # Then the document's own JSON Schema, which is stricter where pydantic's parsing is
        # lenient (forms of dates, decimals as numbers): what is published is what is served.
        # pydantic answers first because its reasons name missing fields and limits better.
        try:
            data = json.loads(body, parse_constant=_not_json)
        except (ValueError, RecursionError) as exc:
            return self._reject(400, f"malformed JSON: {exc}")
        violations = self._check_body(data)
        if violations:
            errors = [{"path": path, "reason": reason} for path, reason in violations]
            return self._reject(422, "the event does not fit its schema", errors=errors)
        if self._pending >= config.max_pending:
            return self._reject(
                429, "too many requests are waiting for Kafka", {"Retry-After": "1"}
            )
        if time.monotonic() < self._unavailable_until:
            return self._unavailable("Kafka is unavailable")
        return await self._publish(request, event, key, digest)

    def _key_matches(self, request: web.BaseRequest) -> bool:
        given = request.headers.get("X-API-Key", "")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            given = token.strip()
        if not given:
            return False
        candidate = given.encode()
        # Every key is compared, so the time taken does not reveal which one nearly matched.
        matched = False
        for known in self._api_keys:
            matched |= hmac.compare_digest(known, candidate)
        return matched

    async def _read_body(self, request: web.BaseRequest) -> bytes | None:
        # Streamed in every case: the low-level server's read() has a limit of its own.
        limit = self.config.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _replay(self, key: str, digest: bytes) -> web.StreamResponse | None:
        """The answer to a repeated key, or None for a key not seen before."""
        answer = self._answers.get(key)
        if answer is None:
            flight = self._answers.in_flight(key)
            if flight is not None:
                if flight[0] != digest:
                    return self._reject(422, "the idempotency key is in use for another body")
                try:
                    answer = await _within(flight[1], self.config.publish_timeout)
                except TimeoutError:
                    return self._unavailable("Kafka did not acknowledge the event in time")
                except EventPlatformError as exc:
                    return self._publish_failed(exc)
        if answer is None and self._store is not None:
            try:
                found = await self._store.lookup(self._group, [key])
            except EventPlatformError as exc:
                log.warning("ingress %s: idempotency store lookup failed: %s", self.name, exc)
            else:
                if key in found and found[key].done:
                    answer = Answer(self._event_id(key))
                    self._answers.put(key, answer)
        if answer is None:
            return None
        if answer.digest and answer.digest != digest:
            return self._reject(422, "the idempotency key was used for another body")
        self.stats.count("duplicates")
        return web.json_response(
            {"id": answer.event_id}, status=202, headers={"Idempotent-Replayed": "true"}
        )

    @property
    def _group(self) -> str:
        return f"ingress:{self.name}"

    def _event_id(self, key: str | None) -> str:
        if key is None:
            return new_event_id()
        return str(uuid.uuid5(_ID_NAMESPACE, f"{self.name}\x00{key}"))

    async def _publish(
        self, request: web.BaseRequest, event: AvroEvent, key: str | None, digest: bytes
    ) -> web.StreamResponse:
        coalescer = self._coalescer
        if coalescer is None:
            return self._unavailable(f"the ingress {self.name!r} is not running")
        event_id = self._event_id(key)
        key_field = self.config.key_field
        # This connector's CloudEvents source, not the producer's: a producer shared by
        # several connectors has a source of its own.
        ack = coalescer.submit(
            Outgoing(
                event,
                key=str(getattr(event, key_field)) if key_field else None,
                topic=self.topic,
                event_id=event_id,
                source=self.event_source,
                traceparent=_traceparent(request),
            )
        )
        outcome = self._answers.begin(key, digest) if key is not None else None
        self._pending += 1
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ack.add_done_callback(lambda done: self._settled(done, outcome, answered, event_id, digest))
        self._deadlines.track(answered)
        try:
            await answered
        except TimeoutError:
            # The event may still be published; later requests with its key share the outcome.
            self._unavailable_until = time.monotonic() + self.config.retry_after
            return self._unavailable("Kafka did not acknowledge the event in time")
        except EventPlatformError as exc:
            return self._publish_failed(exc)
        if key is not None and self._store is not None:
            await self._remember(key)
        return _accepted(event_id)

    def _settled(
        self,
        ack: asyncio.Future[PublishResult],
        outcome: asyncio.Future[Answer] | None,
        answered: asyncio.Future[None],
        event_id: str,
        digest: bytes,
    ) -> None:
        self._pending -= 1
        if ack.cancelled():
            error: BaseException | None = PublishError("publishing was cancelled")
        else:
            error = ack.exception()
        if not answered.done():  # else its deadline passed: the request was answered 503
            if error is not None:
                answered.set_exception(error)
            else:
                answered.set_result(None)
        if outcome is not None and not outcome.done():
            if error is not None:
                outcome.set_exception(error)
                outcome.exception()  # waiters re-raise it; no "never retrieved" warning
            else:
                outcome.set_result(Answer(event_id, digest))

    def _publish_failed(self, exc: EventPlatformError) -> web.StreamResponse:
        if isinstance(exc, SerializationError):
            # A value the schema check let through but Avro cannot carry (or a reader could
            # not read back).
            return self._reject(422, "the event cannot be encoded", errors=encode_errors(exc))
        self.stats.failed(exc)
        log.warning("ingress %s: publishing failed: %s", self.name, exc)
        if exc.retriable:
            # Kafka is down: refuse at once for a while instead of queueing doomed requests.
            self._unavailable_until = time.monotonic() + self.config.retry_after
        return self._unavailable(f"the event could not be published: {type(exc).__name__}")

    async def _remember(self, key: str) -> None:
        assert self._store is not None
        try:
            async with self._store.batch(
                self._group, owner=self._owner, transactional=False
            ) as batch:
                claim = await batch.claim([key])
                if key in claim.fresh:
                    batch.complete(key)
        except EventPlatformError as exc:
            log.warning("ingress %s: recording key in the store failed: %s", self.name, exc)

    # -- description ---------------------------------------------------------------------------

    def openapi_operation(self, components: MutableMapping[str, Any]) -> dict[str, Any]:
        """The OpenAPI operation of this route (its schemas and schemes added to ``components``)."""
        components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        return route_operation(
            name=self.name,
            topic=self.topic or "",
            event_type=self._event_type,
            signed=self._verifier is not None,
            keyed=bool(self._api_keys),
            max_body_bytes=self.config.max_body_bytes,
            components=components.setdefault("schemas", {}),
        )


async def _within(future: asyncio.Future[T], seconds: float) -> T:
    """The result of ``future`` within ``seconds``; a timeout leaves it running.

    Raises:
        TimeoutError: not done in time (``future`` is not cancelled: the record may still be
            published, and later requests with its key share its outcome).
        BaseException: what ``future`` raised.
    """
    done, _ = await asyncio.wait((future,), timeout=seconds)
    if not done:
        raise TimeoutError
    return future.result()


def _accepted(event_id: str) -> web.Response:
    """``202 {"id": …}``; an event id is a UUID, nothing in it needs JSON escaping."""
    return web.Response(
        body=b'{"id": "' + event_id.encode() + b'"}',
        status=202,
        content_type="application/json",
    )


def encode_errors(exc: SerializationError) -> list[dict[str, str]]:
    """The ``errors`` member of a 422 for an event the serializer refused.

    The path is the JSONPath of the serializer's ``field`` (``lines[0].price`` →
    ``$.lines[0].price``) when it names one, else ``$``.
    """
    field = getattr(exc, "field", None)
    if isinstance(field, str) and field:
        path = "$" + ("" if field.startswith("[") else ".") + field
    else:
        path = "$"
    return [{"path": path, "reason": str(exc)}]


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no such number)")


def _traceparent(request: web.BaseRequest) -> str | None:
    """The request's W3C ``traceparent``, when well-formed.

    W3C Trace Context §3.2: a receiver that cannot parse it must not continue it, so a
    malformed one is dropped rather than refused (the request is still served).
    """
    value = request.headers.get("traceparent")
    if value is None or TRACEPARENT.fullmatch(value) is None:
        return None
    return value


def _is_json(request: web.BaseRequest) -> bool:
    content_type = request.content_type.lower()
    if not (content_type == "application/json" or content_type.endswith("+json")):
        return False
    charset = request.charset
    return charset is None or charset.lower() in ("utf-8", "utf8")

"""A client for Confluent-compatible schema registries over their REST API.

:class:`RestRegistry` implements :class:`~eventplatform.registry.base.SchemaRegistry` with the
endpoints of Confluent Schema Registry's API
(https://docs.confluent.io/platform/current/schema-registry/develop/api.html) that Confluent,
Karapace, Apicurio Registry (its ``/apis/ccompat/v7`` prefix, given in the URL) and Redpanda
all serve. It sends nothing server-specific: no ``schemaType`` for Avro (the default
everywhere), no metadata or rule sets, and it falls back where an endpoint is younger than the
servers it talks to.

Failures map onto :mod:`eventplatform.errors` by Confluent's error codes
(:func:`error_from_response`): 40401 → ``SubjectNotFound``, 40402 → ``VersionNotFound``,
40403 → ``SchemaNotFound``, 409 → ``IncompatibleSchema``, 42201 → ``InvalidSchema``, 40408 and
40409 → ``SettingNotFound``, 42205 → ``OperationNotPermitted``, 5xx and network failures →
``RegistryUnavailable`` (retriable, naming the URL). Retriable failures are retried with capped
exponential backoff and full jitter, a bounded number of times. The client keeps no cache, so a
failure is never remembered: the serde above caches schemas by id.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import random
import re
import ssl
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import aiohttp
import yarl

from eventplatform.errors import (
    IncompatibleSchema,
    InvalidSchema,
    OperationNotPermitted,
    ReferenceExists,
    RegistryError,
    RegistryUnavailable,
    ResourceStateError,
    SchemaNotFound,
    SettingNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from eventplatform.observability import events as observed
from eventplatform.registry.base import (
    CompatibilityLevel,
    CompatibilityResult,
    Mode,
    RegisteredSchema,
    Schema,
    SchemaReference,
    VersionSpec,
)

__all__ = ["CONTENT_TYPE", "RestRegistry", "error_from_response"]

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
"""The media type of every request and response body of the API (v1)."""

# Confluent's own client asks for these three, in this order of preference.
_ACCEPT = f"{CONTENT_TYPE}, application/vnd.schemaregistry+json; q=0.9, application/json; q=0.5"

# Confluent error codes: the HTTP status followed by two digits that say what went wrong.
_NOT_FOUND_CODES: dict[int, type[SchemaNotFound]] = {
    40401: SubjectNotFound,  # subject not found
    40402: VersionNotFound,  # version not found
    40403: SchemaNotFound,  # schema not found (by id, or not under the subject)
    40404: SubjectNotFound,  # subject soft-deleted: hidden until permanently deleted
    40406: VersionNotFound,  # version soft-deleted: hidden until permanently deleted
}
_INVALID_SCHEMA_CODES = {42201, 422}  # 422 alone: the request body lacks a usable "schema"
_INVALID_VERSION = 42202  # not a positive integer, -1 or "latest": no such version can exist
_REFERENCE_EXISTS = 42206  # other schemas reference the version being deleted
_NO_SUBJECT_CONFIG = 40408  # the subject has no level of its own (falls back to global)
_NO_SUBJECT_MODE = 40409  # the subject has no mode of its own (falls back to global)
_NOT_PERMITTED = 42205  # the mode refuses the operation (READONLY, IMPORT)
_DETAILS = re.compile(r"details: (\[.*\])\s*$", re.DOTALL)


def error_from_response(status: int, body: object, *, request: str) -> RegistryError:
    """Turn an unsuccessful registry response into the most specific eventplatform error.

    Args:
        status: the HTTP status code.
        body: the decoded JSON body (Confluent's ``{"error_code": …, "message": …}``), or the
            raw text when the body was not JSON.
        request: ``"METHOD URL"`` of the request, quoted in the message.

    Returns:
        The error to raise; its ``error_code`` is Confluent's code, or the HTTP status when
        the server sent none.
    """
    code, message = _error_fields(status, body)
    text = f"{message} ({request}: HTTP {status}, error code {code})"
    if status >= 500 or status == 429:
        # 50001 backend store, 50002 timeout, 50003 forwarding to the leader failed; 429 is a
        # rate limit. All say "not now" rather than "never", so the caller may try again.
        return RegistryUnavailable(f"schema registry unavailable: {text}", error_code=code)
    if status == 409:
        return IncompatibleSchema(text, messages=_incompatibilities(message), error_code=code)
    if code in _NOT_FOUND_CODES:
        return _NOT_FOUND_CODES[code](text, error_code=code)
    if code == _INVALID_VERSION:
        return VersionNotFound(text, error_code=code)
    if code == _REFERENCE_EXISTS:
        return ReferenceExists(text, error_code=code)
    if code in (_NO_SUBJECT_CONFIG, _NO_SUBJECT_MODE):
        return SettingNotFound(text, error_code=code)
    if code == _NOT_PERMITTED:
        return OperationNotPermitted(text, error_code=code)
    if status == 422 and code in _INVALID_SCHEMA_CODES:
        return InvalidSchema(text, error_code=code)
    if status == 401:
        return RegistryError(f"schema registry wants valid credentials: {text}", error_code=code)
    if status == 403:
        return RegistryError(f"schema registry denied these credentials: {text}", error_code=code)
    if status == 404 and code == 404:
        # A 404 without a Confluent code comes from the router, not the registry: the path is
        # unknown, which almost always means a wrong URL prefix (Apicurio needs /apis/ccompat/v7).
        return RegistryError(f"no such endpoint, check the registry URL: {text}", error_code=code)
    return RegistryError(text, error_code=code)


def _error_fields(status: int, body: object) -> tuple[int, str]:
    if isinstance(body, dict):
        raw_code = body.get("error_code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else status
        message = body.get("message")
        return code, str(message) if message else f"HTTP {status}"
    snippet = str(body).strip()[:200] if body else ""
    return status, snippet or f"HTTP {status}"


def _incompatibilities(message: str) -> list[str]:
    # eventplatform's REST server lists one incompatibility per entry as a JSON array after
    # "details: "; Confluent's own details are not JSON, so its whole message is the one entry.
    match = _DETAILS.search(message)
    if match:
        try:
            details = json.loads(match.group(1))
        except ValueError:
            details = None
        if isinstance(details, list) and details and all(isinstance(d, str) for d in details):
            return details
    return [message]


class _State(enum.Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


class RestRegistry:
    """A schema registry reached over Confluent's REST API.

    Usage::

        async with RestRegistry("http://localhost:8081") as registry:
            registered = await registry.register("orders-value", schema_text)

    Args:
        url: the API's base URL, including any path prefix (Apicurio:
            ``http://host:8080/apis/ccompat/v7``). Credentials in the URL
            (``http://user:secret@host``) are used for basic auth and never shown in messages.
        username: HTTP basic auth user; overrides one in the URL.
        password: HTTP basic auth password.
        timeout: seconds one HTTP request may take, connection included.
        retries: how many times a retriable failure is retried before it is raised.
        backoff: seconds before the first retry; each retry at most doubles it (capped at
            ``max_backoff``) with full jitter, so that clients do not retry in lockstep.
        max_backoff: longest wait between two attempts, in seconds.
        session: an aiohttp session to use instead of one of the registry's own; the caller
            keeps ownership and closes it.
        ssl_context: how an ``https`` URL is verified (a CA file to trust, a client
            certificate for mutual TLS; :func:`eventplatform.registry.tls.client_context`);
            None: the system's trust store. Certificates are always verified.

    Raises:
        ValueError: ``url`` is not an absolute http(s) URL, a password comes without a
            username, the username holds ":", or a number is out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        session: aiohttp.ClientSession | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parsed = yarl.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"registry url must be an absolute http(s) URL, got {url!r}")
        username = username if username is not None else parsed.user
        password = password if password is not None else parsed.password
        if password is not None and username is None:
            raise ValueError("a registry password needs a username")
        if timeout <= 0 or retries < 0 or backoff < 0 or max_backoff < backoff:
            raise ValueError("timeout must be > 0, retries >= 0 and 0 <= backoff <= max_backoff")
        # Keep the path as the user percent-encoded it and append ours to it verbatim, so a
        # prefix like Apicurio's /apis/ccompat/v7 survives and subjects are encoded once.
        self._base = str(parsed.with_user(None).with_query(None).with_fragment(None)).rstrip("/")
        self.url = self._base
        if username is not None and ":" in username:
            raise ValueError("a basic auth username cannot contain ':' (RFC 7617)")
        self._headers = {"Accept": _ACCEPT}
        if username is not None:
            # RFC 7617: base64 of "user:password"; UTF-8 is the charset servers agree on.
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._session = session
        self._owns_session = session is None
        # aiohttp: True verifies against the system's trust store; a context, against its own.
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._state = _State.NEW

    def __repr__(self) -> str:
        return f"RestRegistry(url={self.url!r}, state={self._state.value})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session. The registry itself is first contacted by the first call.

        Raises:
            ResourceStateError: the registry was closed.
        """
        if self._state is _State.CLOSED:
            raise ResourceStateError(f"{self!r} is closed and cannot be restarted")
        if self._state is _State.STARTED:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._state = _State.STARTED

    async def close(self) -> None:
        """Close the session if the registry opened it. Idempotent."""
        if self._state is not _State.CLOSED and self._owns_session and self._session is not None:
            await self._session.close()
        self._state = _State.CLOSED

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- schemas -----------------------------------------------------------------------------

    async def register(
        self,
        subject: str,
        schema: str,
        *,
        references: tuple[SchemaReference, ...] = (),
        normalize: bool = True,
        schema_id: int | None = None,
        version: int | None = None,
    ) -> RegisteredSchema:
        """Register ``schema`` under ``subject``, or return the version that already holds it.

        ``POST /subjects/{subject}/versions``. Many servers answer with the id alone; the
        version then comes from a lookup of the same schema. ``schema_id`` and ``version``
        are sent as the body's ``id`` and ``version`` (IMPORT mode).

        Raises:
            InvalidSchema: the server rejected the text (42201).
            IncompatibleSchema: it breaks the subject's compatibility level (409); ``messages``
                holds what the server said.
            OperationNotPermitted: the subject's mode refuses the registration (42205).
            RegistryUnavailable: the registry could not be reached after the retries.
            ResourceStateError: the registry is not started.
        """
        body = _schema_body(schema, references)
        if schema_id is not None:
            body["id"] = schema_id
        if version is not None:
            body["version"] = version
        payload = await self._request(
            "POST",
            f"/subjects/{_segment(subject)}/versions",
            query=_flags(normalize=normalize),
            body=body,
        )
        if isinstance(payload, dict) and {"version", "schema"} <= payload.keys():
            return _registered(payload, subject=subject)
        return await self.lookup(subject, schema, references=references, normalize=normalize)

    async def lookup(
        self,
        subject: str,
        schema: str,
        *,
        references: tuple[SchemaReference, ...] = (),
        normalize: bool = True,
        deleted: bool = False,
    ) -> RegisteredSchema:
        """The version of ``subject`` that holds ``schema`` (``POST /subjects/{subject}``).

        Raises:
            SubjectNotFound: no such subject (40401).
            SchemaNotFound: the subject does not hold that schema (40403).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        payload = await self._request(
            "POST",
            f"/subjects/{_segment(subject)}",
            query=_flags(normalize=normalize, deleted=deleted),
            body=_schema_body(schema, references),
        )
        return _registered(payload, subject=subject)

    async def get_by_id(self, schema_id: int) -> Schema:
        """The schema with global id ``schema_id`` (``GET /schemas/ids/{id}``).

        Raises:
            SchemaNotFound: no schema has that id (40403).
            RegistryError: the schema is not Avro.
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        payload = _expect(await self._request("GET", f"/schemas/ids/{int(schema_id)}"), dict)
        _check_avro(payload, f"schema id {schema_id}")
        return Schema(schema=_text(payload, "schema"), references=_references(payload))

    async def get_version(
        self, subject: str, version: VersionSpec = "latest", *, deleted: bool = False
    ) -> RegisteredSchema:
        """One version of a subject (``GET /subjects/{subject}/versions/{version}``).

        Raises:
            SubjectNotFound: no such subject (40401).
            VersionNotFound: no such version (40402), or not a valid version number (42202).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        payload = await self._request(
            "GET",
            f"/subjects/{_segment(subject)}/versions/{_segment(str(version))}",
            query=_flags(deleted=deleted),
        )
        return _registered(payload, subject=subject)

    async def list_subjects(self, *, deleted: bool = False) -> list[str]:
        """Every subject, sorted (``GET /subjects``).

        Raises:
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        payload = _expect(
            await self._request("GET", "/subjects", query=_flags(deleted=deleted)), list
        )
        return sorted(str(subject) for subject in payload)

    async def list_versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        """A subject's versions, ascending (``GET /subjects/{subject}/versions``).

        Raises:
            SubjectNotFound: no such subject (40401).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        payload = await self._request(
            "GET", f"/subjects/{_segment(subject)}/versions", query=_flags(deleted=deleted)
        )
        return sorted(_int(v, "version") for v in _expect(payload, list))

    # -- compatibility -----------------------------------------------------------------------

    async def check_compatibility(
        self,
        subject: str,
        schema: str,
        *,
        version: VersionSpec | None = None,
        references: tuple[SchemaReference, ...] = (),
    ) -> CompatibilityResult:
        """Test ``schema`` against one version, or (``None``) against what the level demands.

        ``POST /compatibility/subjects/{subject}/versions[/{version}]?verbose=true``. Servers
        without the version-less endpoint (added in Confluent 7) are asked about ``latest``.

        Raises:
            InvalidSchema: the server rejected the text (42201).
            VersionNotFound: ``version`` does not exist (40402) or is not valid (42202).
            SubjectNotFound: ``version`` was given and the subject does not exist (40401).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        body = _schema_body(schema, references)
        query = {"verbose": "true"}
        path = f"/compatibility/subjects/{_segment(subject)}/versions"
        if version is None:
            try:
                payload = await self._request("POST", path, query=query, body=body)
            except SchemaNotFound:
                # Nothing registered yet: a first schema is compatible with anything.
                return CompatibilityResult(is_compatible=True)
            except RegistryError as exc:
                if exc.error_code not in (404, 405):  # the router's, not the registry's
                    raise
                try:
                    payload = await self._request("POST", f"{path}/latest", query=query, body=body)
                except SchemaNotFound:
                    return CompatibilityResult(is_compatible=True)
        else:
            path = f"{path}/{_segment(str(version))}"
            try:
                payload = await self._request("POST", path, query=query, body=body)
            except SubjectNotFound:
                if version not in ("latest", -1):
                    raise
                # Servers before Confluent 7 answer 40401 where later ones say compatible.
                return CompatibilityResult(is_compatible=True)
        result = _expect(payload, dict)
        verdict = result.get("is_compatible")
        if not isinstance(verdict, bool):
            raise RegistryError(f"registry at {self.url} answered {path} without is_compatible")
        messages = [str(m) for m in result.get("messages") or []]
        return CompatibilityResult(is_compatible=verdict, messages=messages)

    async def get_compatibility(
        self, subject: str | None = None, *, default_to_global: bool = True
    ) -> CompatibilityLevel:
        """The effective level of ``subject`` (falling back to global), or the global level.

        ``GET /config/{subject}?defaultToGlobal=true``; a server that ignores
        ``defaultToGlobal`` answers 40408 (or 40401 before Confluent 7) for a subject without
        a level of its own, and the global ``GET /config`` answers instead.

        Raises:
            SettingNotFound: ``default_to_global=False`` and the subject has no level of its
                own (40408).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        if subject is not None and not default_to_global:
            return _level(await self._request("GET", f"/config/{_segment(subject)}"))
        if subject is not None:
            try:
                payload = await self._request(
                    "GET", f"/config/{_segment(subject)}", query={"defaultToGlobal": "true"}
                )
            except RegistryError as exc:
                if exc.error_code not in (_NO_SUBJECT_CONFIG, 40401):
                    raise
            else:
                return _level(payload)
        return _level(await self._request("GET", "/config"))

    async def set_compatibility(
        self, level: CompatibilityLevel, subject: str | None = None
    ) -> CompatibilityLevel:
        """Set the level of ``subject``, or the global level (``PUT /config[/{subject}]``).

        Raises:
            RegistryError: the server refused the level (42203).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        path = "/config" if subject is None else f"/config/{_segment(subject)}"
        body = {"compatibility": CompatibilityLevel(level).value}
        return _level(await self._request("PUT", path, body=body))

    async def delete_compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """Remove the level of ``subject``, or reset the global one (``DELETE /config[/…]``).

        Returns the level removed.

        Raises:
            SettingNotFound: the subject has no level of its own (40408).
            OperationNotPermitted: the subject or registry is READONLY (42205).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        path = "/config" if subject is None else f"/config/{_segment(subject)}"
        return _level(await self._request("DELETE", path))

    # -- modes -------------------------------------------------------------------------------

    async def get_mode(self, subject: str | None = None, *, default_to_global: bool = True) -> Mode:
        """The effective mode of ``subject``, or the global mode (``GET /mode[/{subject}]``).

        As for :meth:`get_compatibility`, a server that ignores ``defaultToGlobal`` answers
        40409 (or 40401) for a subject without a mode of its own, and ``GET /mode`` answers.

        Raises:
            SettingNotFound: ``default_to_global=False`` and the subject has no mode of its
                own (40409).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        if subject is not None:
            path = f"/mode/{_segment(subject)}"
            if not default_to_global:
                return _mode(await self._request("GET", path))
            try:
                return _mode(await self._request("GET", path, query={"defaultToGlobal": "true"}))
            except RegistryError as exc:
                if exc.error_code not in (_NO_SUBJECT_MODE, 40401):
                    raise
        return _mode(await self._request("GET", "/mode"))

    async def set_mode(
        self, mode: Mode, subject: str | None = None, *, force: bool = False
    ) -> Mode:
        """Set the mode of ``subject``, or the global mode (``PUT /mode[/{subject}]``).

        Raises:
            RegistryError: the server refused the mode (42204).
            OperationNotPermitted: IMPORT where schemas exist, without ``force`` (42205).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        path = "/mode" if subject is None else f"/mode/{_segment(subject)}"
        body = {"mode": str(mode).upper()}
        return _mode(await self._request("PUT", path, query=_flags(force=force), body=body))

    async def delete_mode(self, subject: str | None = None) -> Mode:
        """Remove the mode of ``subject`` (``DELETE /mode/{subject}``), or reset the global one.

        Confluent's API has no ``DELETE /mode``: the global mode is read, then set to
        READWRITE. Returns the mode removed.

        Raises:
            SettingNotFound: the subject has no mode of its own (40409).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        if subject is not None:
            return _mode(await self._request("DELETE", f"/mode/{_segment(subject)}"))
        previous = await self.get_mode()
        await self.set_mode(Mode.READWRITE)
        return previous

    # -- deletes -----------------------------------------------------------------------------

    async def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete a subject, or remove a soft-deleted one (``DELETE /subjects/{subject}``).

        Returns the versions deleted.

        Raises:
            SubjectNotFound: no such subject (40401), or already soft-deleted (40404).
            RegistryError: a permanent delete before a soft one (40405).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        payload = await self._request(
            "DELETE", f"/subjects/{_segment(subject)}", query=_flags(permanent=permanent)
        )
        return sorted(_int(v, "version") for v in _expect(payload, list))

    async def delete_version(
        self, subject: str, version: VersionSpec, *, permanent: bool = False
    ) -> int:
        """Soft-delete or remove one version (``DELETE /subjects/{subject}/versions/{version}``).

        Returns its number.

        Raises:
            SubjectNotFound: no such subject (40401).
            VersionNotFound: no such version (40402), already soft-deleted (40406), or not a
                valid version number (42202).
            RegistryError: a permanent delete before a soft one (40407).
            RegistryUnavailable, ResourceStateError: as for :meth:`register`.
        """
        payload = await self._request(
            "DELETE",
            f"/subjects/{_segment(subject)}/versions/{_segment(str(version))}",
            query=_flags(permanent=permanent),
        )
        return _int(payload, "version")

    # -- transport ---------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """:meth:`_call`, in a CLIENT span while traced (HTTP client conventions)."""
        if observed.SWITCHES.telemetry is None:
            return await self._call(method, path, query=query, body=body)
        url = yarl.URL(self._base + path, encoded=True)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.full": str(url.with_user(None)),
            "server.address": url.host or "",
        }
        if url.port is not None:
            attributes["server.port"] = url.port
        with observed.traced(method, "client", attributes):
            return await self._call(method, path, query=query, body=body)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """Send one API request, retrying retriable failures; return the decoded JSON body."""
        if self._state is not _State.STARTED or self._session is None:
            state = "closed" if self._state is _State.CLOSED else "not started"
            raise ResourceStateError(f"{self!r} is {state}; use `async with RestRegistry(...)`")
        url = yarl.URL(self._base + path, encoded=True)
        if query:
            url = url.update_query(query)
        shown = f"{method} {url}"
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = CONTENT_TYPE
        attempt = 0
        while True:
            cause: BaseException | None = None
            try:
                async with self._session.request(
                    method, url, data=data, headers=headers, timeout=self._timeout, ssl=self._ssl
                ) as response:
                    raw = await response.read()
                    status = response.status
            except aiohttp.ClientSSLError as exc:
                # A certificate that does not verify will not verify on the next attempt either.
                raise _tls_failed(exc, url=self.url, shown=shown) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                cause = exc
                reason = str(exc) or type(exc).__name__
                error: RegistryError = RegistryUnavailable(
                    f"schema registry at {self.url} unreachable ({shown}): {reason}"
                )
                # A request that never connected cannot have changed anything; one that did
                # may have, and a repeated DELETE would then fail on its own first success.
                applied = not isinstance(exc, aiohttp.ClientConnectorError)
            else:
                payload = _decode(raw)
                if status < 300:
                    if isinstance(payload, _NotJson):
                        raise RegistryError(f"{shown} answered HTTP {status} with a non-JSON body")
                    return payload
                body_seen = payload.text if isinstance(payload, _NotJson) else payload
                error = error_from_response(status, body_seen, request=shown)
                applied = status != 503
            if not error.retriable or attempt >= self._retries or (applied and method == "DELETE"):
                if attempt and error.retriable:
                    raise RegistryUnavailable(
                        f"{error} (gave up after {attempt + 1} attempts)",
                        error_code=error.error_code,
                    ) from (cause or error)
                raise error from cause
            attempt += 1
            ceiling = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
            await asyncio.sleep(random.uniform(0, ceiling))  # jitter, not cryptography


def _tls_failed(exc: aiohttp.ClientSSLError, *, url: str, shown: str) -> RegistryError:
    """A TLS failure, said without aiohttp's connection-key repr."""
    cause = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None) or exc
    reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or cause
    hint = ""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        hint = (
            "; set registry.ssl_cafile (EVENTPLATFORM_REGISTRY__SSL_CAFILE) to the CA that "
            "signed the registry's certificate"
        )
    return RegistryError(f"TLS to the schema registry at {url} failed ({shown}): {reason}{hint}")


class _NotJson:
    """A response body that did not decode as JSON (an HTML error page from a proxy, say)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return _NotJson(raw.decode("utf-8", "replace"))


def _segment(value: str) -> str:
    # Subjects may hold any character, "/" included (Confluent's contexts use ":.ctx:subject");
    # each must reach the server as one path segment.
    return quote(value, safe="")


def _flags(**flags: bool) -> dict[str, str]:
    # Only true flags are sent: false is every server's default, and older servers reject
    # query parameters they do not know less often when there are fewer of them.
    return {name: "true" for name, on in flags.items() if on}


def _schema_body(schema: str, references: tuple[SchemaReference, ...]) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": schema}
    if references:
        body["references"] = [
            {"name": ref.name, "subject": ref.subject, "version": ref.version} for ref in references
        ]
    return body


_T = TypeVar("_T")


def _expect(payload: Any, kind: type[_T]) -> _T:
    if not isinstance(payload, kind):
        raise RegistryError(f"unexpected registry response {payload!r}: expected a {kind.__name__}")
    return payload


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RegistryError(f"unexpected registry response: {what} {value!r} is not an integer")
    return value


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str):
        raise RegistryError(f"unexpected registry response {payload!r}: no {key!r} string")
    return value


def _check_avro(payload: dict[str, Any], what: str) -> None:
    kind = payload.get("schemaType", "AVRO")
    if kind != "AVRO":
        raise RegistryError(f"{what} is a {kind} schema; eventplatform reads Avro schemas only")


def _references(payload: dict[str, Any]) -> tuple[SchemaReference, ...]:
    refs = payload.get("references") or []
    try:
        return tuple(
            SchemaReference(
                name=str(r["name"]), subject=str(r["subject"]), version=int(r["version"])
            )
            for r in refs
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(f"unexpected registry response: malformed references {refs!r}") from exc


def _registered(payload: Any, *, subject: str) -> RegisteredSchema:
    record = _expect(payload, dict)
    _check_avro(record, f"subject {subject!r}")
    return RegisteredSchema(
        subject=str(record.get("subject", subject)),
        version=_int(record.get("version"), "version"),
        id=_int(record.get("id"), "id"),
        schema=_text(record, "schema"),
        references=_references(record),
    )


def _mode(payload: Any) -> Mode:
    raw = _expect(payload, dict).get("mode")
    try:
        return Mode(str(raw).upper())
    except ValueError as exc:
        raise RegistryError(f"unexpected registry response: unknown mode {raw!r}") from exc


def _level(payload: Any) -> CompatibilityLevel:
    # GET answers {"compatibilityLevel": …}, PUT echoes {"compatibility": …}.
    record = _expect(payload, dict)
    raw = record.get("compatibilityLevel", record.get("compatibility"))
    try:
        return CompatibilityLevel(str(raw).upper())
    except ValueError as exc:
        raise RegistryError(f"unexpected registry response: unknown level {raw!r}") from exc

"""A Confluent-compatible schema registry REST server over any registry backend.

:func:`create_app` builds an aiohttp application that serves Confluent Schema Registry's REST
API (https://docs.confluent.io/platform/current/schema-registry/develop/api.html) from any
:class:`~eventplatform.registry.base.SchemaRegistry` — in production the Kafka-log backend, so
that Java, Go or .NET serializers, Kafka UI and Connect's ``AvroConverter`` share the schemas
eventplatform registers. :func:`serve` runs it on a host and port.

Errors carry Confluent's body, ``{"error_code": 40401, "message": "…"}``, and status: 404 with
40401 (subject), 40402 (version), 40403 (schema), 40408 (no subject-level compatibility) or
40409 (no subject-level mode); 409 for an incompatible schema, its message ending in
``details: [...]``, a JSON array of the incompatibilities found; 422 with 42201 (invalid
schema), 42202 (invalid version), 42203 (invalid compatibility level or config), 42204
(invalid mode), 42205 (the mode does not permit it), 42207 (id or version does not match) or
42208 (a subject in a context other than the default); 500 with 50001 when the backend cannot
be reached.

What is not served, answered as a Confluent registry without the feature answers:

- Only Avro: ``GET /schemas/types`` is ``["AVRO"]``; JSON Schema and Protobuf registrations
  are 422/42201 saying so.
- Contexts: ``GET /contexts`` is ``[":.:"]``, the default context; a subject qualified with
  ``:.:`` is the plain subject, one in any other context is 422/42208.
- Schema metadata and rule sets (data contracts): a registration or config carrying them is
  refused (422, 42201 or 42203) rather than stored without them; ``GET
  /subjects/{subject}/metadata`` finds no version for any key (404/40403), and the latest
  version for none.
- Routes a registry without the feature has no router entry for (``/schemas/guids``,
  ``/associations``, ``/exporters``, ``/dek-registry``): 404 with error code 404.

The server does not own the backend: start it before :func:`serve` and close it after the
runner's ``cleanup()``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import ssl
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from eventplatform.errors import (
    ConfigurationError,
    EventPlatformError,
    IncompatibleSchema,
    InvalidSchema,
    OperationNotPermitted,
    RegistryError,
    RegistryUnavailable,
    SchemaError,
    SchemaNotFound,
    SettingNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from eventplatform.registry.base import (
    CompatibilityLevel,
    Mode,
    RegisteredSchema,
    SchemaReference,
    SchemaRegistry,
    VersionSpec,
)
from eventplatform.registry.rest_client import CONTENT_TYPE

__all__ = ["confluent_error", "create_app", "serve", "server_url"]

logger = logging.getLogger(__name__)

_MAX_VERSION = 2**31 - 1  # versions are Java ints in Confluent's API
_DEFAULT_CONTEXT = ":.:"  # Confluent's qualified-subject prefix of the default context
# Data-contract fields this registry cannot hold; a request carrying one is refused, not
# stored without it (which would silently stop the rules being enforced).
_SCHEMA_EXTRAS = ("metadata", "ruleSet")
_CONFIG_EXTRAS = (
    "compatibilityGroup",
    "defaultMetadata",
    "overrideMetadata",
    "defaultRuleSet",
    "overrideRuleSet",
)
_INCOMPATIBLE_PREFIX = "Schema being registered is incompatible with an earlier schema"


class _ApiError(Exception):
    """A request the API refuses before it reaches the backend (bad version, bad body)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def confluent_error(
    exc: EventPlatformError, *, subject: str | None = None
) -> tuple[int, dict[str, Any]]:
    """The HTTP status and Confluent error body that report ``exc``.

    A five-digit ``error_code`` the backend chose (40405, 42202, …) is kept, its status being
    its first three digits; otherwise the class decides: ``SubjectNotFound`` → 404/40401,
    ``VersionNotFound`` → 404/40402, ``SchemaNotFound`` → 404/40403, ``IncompatibleSchema`` →
    409/409, ``InvalidSchema`` and other schema errors → 422/42201, ``OperationNotPermitted`` →
    422/42205, ``SettingNotFound`` → 404/40408, ``RegistryUnavailable`` and
    errors of the layers below → 500/50001 (Confluent's "error in the backend data store",
    which clients retry), any other refusal → 422/422.

    Args:
        exc: the error a backend raised.
        subject: the subject of the request, named in an incompatibility message.

    Returns:
        ``(status, {"error_code": …, "message": …})``.
    """
    status, code = _status_and_code(exc)
    message = str(exc)
    if isinstance(exc, IncompatibleSchema) and exc.messages:
        # Confluent's wording, so tools that match on it still do; the details are JSON so
        # that eventplatform's client recovers one message per incompatibility.
        where = f' for subject "{subject}"' if subject is not None else ""
        message = f"{_INCOMPATIBLE_PREFIX}{where}, details: {json.dumps(exc.messages)}"
    return status, {"error_code": code, "message": message}


def _status_and_code(exc: EventPlatformError) -> tuple[int, int]:
    code = getattr(exc, "error_code", None)
    if isinstance(code, int) and 10000 <= code < 60000:
        return code // 100, code
    if isinstance(exc, IncompatibleSchema):
        return 409, 409
    if isinstance(exc, SubjectNotFound):
        return 404, 40401
    if isinstance(exc, VersionNotFound):
        return 404, 40402
    if isinstance(exc, SchemaNotFound):
        return 404, 40403
    if isinstance(exc, InvalidSchema | SchemaError):
        return 422, 42201
    if isinstance(exc, OperationNotPermitted):
        return 422, 42205
    if isinstance(exc, SettingNotFound):
        return 404, 40408
    if isinstance(exc, RegistryUnavailable) or not isinstance(exc, RegistryError):
        return 500, 50001
    if isinstance(code, int) and 400 <= code < 600:
        return code, code
    return 422, 422


def _error_response(status: int, code: int, message: str) -> web.Response:
    return _json({"error_code": code, "message": message}, status=status)


def _json(data: Any, *, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, content_type=CONTENT_TYPE)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except _ApiError as exc:
        return _error_response(exc.status, exc.code, exc.message)
    except EventPlatformError as exc:
        status, body = confluent_error(exc, subject=request.match_info.get("subject"))
        if status >= 500:
            logger.warning("%s %s failed: %s", request.method, request.path, exc)
        return _json(body, status=status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # The router's 404 and 405 in Confluent's shape, code = status as Confluent does.
        return _error_response(exc.status, exc.status, f"HTTP {exc.status} {exc.reason}")
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return _error_response(500, 50001, "Internal server error")


def _basic_auth(username: str, password: str) -> Middleware:
    expected = f"{username}:{password}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            given = b""
        # compare_digest: the time taken must not tell how much of the secret was right.
        if scheme.lower() != "basic" or not hmac.compare_digest(given, expected):
            response = _error_response(401, 401, "Unauthorized")
            response.headers["WWW-Authenticate"] = 'Basic realm="schema-registry"'
            return response
        return await handler(request)

    return check


# -- request parsing -------------------------------------------------------------------------


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() == "true"


def _version(raw: str) -> VersionSpec:
    # Confluent accepts "latest", its alias -1, and 1 … 2^31-1; anything else is 42202.
    if raw in {"latest", "-1"}:
        return "latest"
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 1 <= number <= _MAX_VERSION:
        raise _ApiError(
            422,
            42202,
            f"The specified version '{raw}' is not a valid version id. Allowed values are "
            f'between [1, 2^31-1] and the string "latest"',
        )
    return number


def _schema_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise _ApiError(404, 40403, f"Schema {raw} not found") from None


def _subject(request: web.Request) -> str:
    return _plain_subject(request.match_info["subject"])


def _optional_subject(request: web.Request) -> str | None:
    raw = request.match_info.get("subject")
    return None if raw is None else _plain_subject(raw)


def _plain_subject(subject: str) -> str:
    # Confluent qualifies a subject with its context as ":.context:subject"; only the
    # default context (":.:") is served, and a subject in it is the plain subject.
    if subject.startswith(_DEFAULT_CONTEXT):
        return subject[len(_DEFAULT_CONTEXT) :]
    if subject.startswith(":."):
        raise _ApiError(
            422,
            42208,
            f"Invalid subject {subject!r}: this registry serves the default context "
            f"({_DEFAULT_CONTEXT!r}) only",
        )
    return subject


def _page(request: web.Request, items: list[Any]) -> list[Any]:
    """``items`` cut by the ``offset`` and ``limit`` query parameters (limit < 0: all)."""
    try:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "-1"))
    except ValueError:
        raise _ApiError(422, 422, "offset and limit must be integers") from None
    items = items[max(offset, 0) :]
    return items if limit < 0 else items[:limit]


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        raise _ApiError(400, 400, f"Request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _ApiError(422, 422, "Request body must be a JSON object")
    return body


async def _schema_request(request: web.Request) -> tuple[str, tuple[SchemaReference, ...]]:
    return _schema_fields(await _body(request))


def _schema_fields(body: dict[str, Any]) -> tuple[str, tuple[SchemaReference, ...]]:
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema.strip():
        raise _ApiError(422, 42201, 'Invalid schema: the request has no "schema" string')
    kind = body.get("schemaType") or "AVRO"
    if str(kind).upper() != "AVRO":
        raise _ApiError(
            422,
            42201,
            f"Invalid schema type {kind}: only AVRO schemas are served by this registry "
            "(JSON Schema and Protobuf are not)",
        )
    for extra in _SCHEMA_EXTRAS:
        if body.get(extra):
            raise _ApiError(
                422,
                42201,
                f"Invalid schema: {extra!r} is not supported; this registry holds Avro schemas "
                "without metadata or rule sets",
            )
    raw_refs = body.get("references") or []
    try:
        references = tuple(
            SchemaReference(
                name=str(r["name"]), subject=str(r["subject"]), version=int(r["version"])
            )
            for r in raw_refs
        )
    except (KeyError, TypeError, ValueError):
        raise _ApiError(
            422, 42201, 'Invalid schema: each reference needs "name", "subject" and "version"'
        ) from None
    return schema, references


def _import_number(body: dict[str, Any], key: str, *, lowest: int) -> int | None:
    # Confluent's RegisterSchemaRequest: an id below 0 or a version below 1 means "none".
    raw = body.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _ApiError(422, 42207, f'"{key}" must be an integer, not {raw!r}')
    return raw if raw >= lowest else None


async def _level(request: web.Request) -> CompatibilityLevel:
    body = await _body(request)
    for extra in _CONFIG_EXTRAS:
        if body.get(extra) is not None:
            raise _ApiError(
                422,
                42203,
                f"Invalid config: {extra!r} is not supported; this registry's config is the "
                "compatibility level only",
            )
    raw = body.get("compatibility", body.get("compatibilityLevel"))
    try:
        return CompatibilityLevel(str(raw).upper())
    except ValueError:
        levels = ", ".join(level.value for level in CompatibilityLevel)
        raise _ApiError(
            422, 42203, f"Invalid compatibility level {raw!r}; valid levels: {levels}"
        ) from None


async def _mode(request: web.Request) -> Mode:
    raw = (await _body(request)).get("mode")
    try:
        return Mode(str(raw).upper())
    except ValueError:
        modes = ", ".join(mode.value for mode in Mode)
        raise _ApiError(422, 42204, f"Invalid mode {raw!r}; valid modes: {modes}") from None


def _record(registered: RegisteredSchema) -> dict[str, Any]:
    record: dict[str, Any] = {
        "subject": registered.subject,
        "version": registered.version,
        "id": registered.id,
        "schema": registered.schema,
    }
    # Confluent omits schemaType for Avro and references when there are none.
    if registered.references:
        record["references"] = [_reference(ref) for ref in registered.references]
    return record


def _reference(ref: SchemaReference) -> dict[str, Any]:
    return {"name": ref.name, "subject": ref.subject, "version": ref.version}


# -- the API ---------------------------------------------------------------------------------


class _Api:
    """The request handlers, bound to one backend."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.root),
            web.get("/schemas", self.schemas),
            web.get("/schemas/types", self.schema_types),
            web.get("/schemas/ids/{id}", self.schema_by_id),
            web.get("/schemas/ids/{id}/schema", self.schema_text_by_id),
            web.get("/schemas/ids/{id}/subjects", self.subjects_of_id),
            web.get("/schemas/ids/{id}/versions", self.versions_of_id),
            web.get("/subjects", self.subjects),
            web.post("/subjects/{subject}", self.lookup),
            web.delete("/subjects/{subject}", self.delete_subject),
            web.get("/subjects/{subject}/versions", self.versions),
            web.post("/subjects/{subject}/versions", self.register),
            web.get("/subjects/{subject}/versions/{version}", self.version),
            web.delete("/subjects/{subject}/versions/{version}", self.delete_version),
            web.get("/subjects/{subject}/versions/{version}/schema", self.version_schema),
            web.get("/subjects/{subject}/versions/{version}/referencedby", self.referenced_by),
            web.get("/subjects/{subject}/metadata", self.latest_with_metadata),
            web.post("/compatibility/subjects/{subject}/versions", self.compatibility),
            web.post("/compatibility/subjects/{subject}/versions/{version}", self.compatibility),
            web.get("/config", self.get_config),
            web.put("/config", self.put_config),
            web.delete("/config", self.delete_config),
            web.get("/config/{subject}", self.get_config),
            web.put("/config/{subject}", self.put_config),
            web.delete("/config/{subject}", self.delete_config),
            web.get("/mode", self.get_mode),
            web.put("/mode", self.put_mode),
            web.delete("/mode", self.delete_mode),
            web.get("/mode/{subject}", self.get_mode),
            web.put("/mode/{subject}", self.put_mode),
            web.delete("/mode/{subject}", self.delete_mode),
            web.get("/contexts", self.contexts),
        ]

    async def root(self, request: web.Request) -> web.Response:
        return _json({})

    async def schema_types(self, request: web.Request) -> web.Response:
        return _json(["AVRO"])

    async def schemas(self, request: web.Request) -> web.Response:
        prefix = request.query.get("subjectPrefix", "")
        found = [
            registered
            for registered in await self._all_versions(deleted=_flag(request, "deleted"))
            if registered.subject.startswith(prefix)
        ]
        if _flag(request, "latestOnly"):
            latest = {registered.subject: registered for registered in found}
            found = list(latest.values())
        return _json([_record(registered) for registered in found])

    async def schema_by_id(self, request: web.Request) -> web.Response:
        schema = await self.registry.get_by_id(_schema_id(request.match_info["id"]))
        body: dict[str, Any] = {"schema": schema.schema}
        if schema.references:
            body["references"] = [_reference(ref) for ref in schema.references]
        return _json(body)

    async def schema_text_by_id(self, request: web.Request) -> web.Response:
        schema = await self.registry.get_by_id(_schema_id(request.match_info["id"]))
        return web.Response(text=schema.schema, content_type=CONTENT_TYPE)

    async def subjects_of_id(self, request: web.Request) -> web.Response:
        usages = await self._usages(request)
        return _json(_page(request, sorted({subject for subject, _ in usages})))

    async def versions_of_id(self, request: web.Request) -> web.Response:
        usages = await self._usages(request)
        pairs = [{"subject": subject, "version": version} for subject, version in usages]
        return _json(_page(request, pairs))

    async def subjects(self, request: web.Request) -> web.Response:
        prefix = _plain_subject(request.query.get("subjectPrefix", ""))
        if _flag(request, "deleted_only"):
            live = set(await self.registry.list_subjects())
            every = await self.registry.list_subjects(deleted=True)
            subjects = [s for s in every if s not in live]
        else:
            subjects = await self.registry.list_subjects(deleted=_flag(request, "deleted"))
        return _json(_page(request, [s for s in subjects if s.startswith(prefix)]))

    async def contexts(self, request: web.Request) -> web.Response:
        return _json(_page(request, [_DEFAULT_CONTEXT]))

    async def lookup(self, request: web.Request) -> web.Response:
        schema, references = await _schema_request(request)
        found = await self.registry.lookup(
            _subject(request),
            schema,
            references=references,
            normalize=_flag(request, "normalize"),
            deleted=_flag(request, "deleted"),
        )
        return _json(_record(found))

    async def delete_subject(self, request: web.Request) -> web.Response:
        versions = await self.registry.delete_subject(
            _subject(request), permanent=_flag(request, "permanent")
        )
        return _json(versions)

    async def versions(self, request: web.Request) -> web.Response:
        subject = _subject(request)
        if _flag(request, "deleted_only"):
            every = await self.registry.list_versions(subject, deleted=True)
            try:
                live = set(await self.registry.list_versions(subject))
            except SubjectNotFound:
                live = set()  # every version is soft-deleted
            versions = [v for v in every if v not in live]
        else:
            versions = await self.registry.list_versions(subject, deleted=_flag(request, "deleted"))
        return _json(_page(request, versions))

    async def register(self, request: web.Request) -> web.Response:
        body = await _body(request)
        schema, references = _schema_fields(body)
        registered = await self.registry.register(
            _subject(request),
            schema,
            references=references,
            normalize=_flag(request, "normalize"),
            schema_id=_import_number(body, "id", lowest=0),
            version=_import_number(body, "version", lowest=1),
        )
        # The API promises {"id": …}; recent Confluent releases add version and schema, as we
        # do, which spares a client the lookup that would tell it the version.
        return _json(_record(registered))

    async def version(self, request: web.Request) -> web.Response:
        registered = await self._get_version(request)
        return _json(_record(registered))

    async def version_schema(self, request: web.Request) -> web.Response:
        registered = await self._get_version(request)
        return web.Response(text=registered.schema, content_type=CONTENT_TYPE)

    async def delete_version(self, request: web.Request) -> web.Response:
        version = await self.registry.delete_version(
            _subject(request),
            _version(request.match_info["version"]),
            permanent=_flag(request, "permanent"),
        )
        return _json(version)

    async def referenced_by(self, request: web.Request) -> web.Response:
        target = await self._get_version(request)
        ids: set[int] = set()
        for registered in await self._all_versions(deleted=False):
            if any(
                ref.subject == target.subject and ref.version == target.version
                for ref in registered.references
            ):
                ids.add(registered.id)
        return _json(_page(request, sorted(ids)))

    async def latest_with_metadata(self, request: web.Request) -> web.Response:
        # No version carries metadata here: asking for none is asking for the latest version;
        # asking for any key finds nothing, as on a registry where no version has that key.
        subject = _subject(request)
        latest = await self.registry.get_version(
            subject, "latest", deleted=_flag(request, "deleted")
        )
        keys = request.query.getall("key", [])
        if keys:
            raise _ApiError(
                404,
                40403,
                f"Schema not found: no version of subject {subject!r} has metadata "
                f"{', '.join(keys)} (this registry stores no schema metadata)",
            )
        return _json(_record(latest))

    async def compatibility(self, request: web.Request) -> web.Response:
        raw_version = request.match_info.get("version")
        version = None if raw_version is None else _version(raw_version)
        schema, references = await _schema_request(request)
        result = await self.registry.check_compatibility(
            _subject(request), schema, version=version, references=references
        )
        body: dict[str, Any] = {"is_compatible": result.is_compatible}
        if _flag(request, "verbose"):
            body["messages"] = list(result.messages)
        return _json(body)

    async def get_config(self, request: web.Request) -> web.Response:
        # A subject without a level of its own is 40408 unless defaultToGlobal=true asks for
        # the level in force (Confluent 7+).
        level = await self.registry.get_compatibility(
            _optional_subject(request), default_to_global=_flag(request, "defaultToGlobal")
        )
        return _json({"compatibilityLevel": level.value})

    async def put_config(self, request: web.Request) -> web.Response:
        level = await self.registry.set_compatibility(
            await _level(request), _optional_subject(request)
        )
        return _json({"compatibility": level.value})

    async def delete_config(self, request: web.Request) -> web.Response:
        # Confluent answers with the level removed; the global one reverts to BACKWARD.
        previous = await self.registry.delete_compatibility(_optional_subject(request))
        return _json({"compatibilityLevel": previous.value})

    async def get_mode(self, request: web.Request) -> web.Response:
        mode = await self.registry.get_mode(
            _optional_subject(request), default_to_global=_flag(request, "defaultToGlobal")
        )
        return _json({"mode": mode.value})

    async def put_mode(self, request: web.Request) -> web.Response:
        mode = await self.registry.set_mode(
            await _mode(request), _optional_subject(request), force=_flag(request, "force")
        )
        return _json({"mode": mode.value})

    async def delete_mode(self, request: web.Request) -> web.Response:
        # DELETE /mode (global) is ours: Confluent has none; it reverts to READWRITE.
        previous = await self.registry.delete_mode(_optional_subject(request))
        return _json({"mode": previous.value})

    # -- helpers ---------------------------------------------------------------------------

    async def _get_version(self, request: web.Request) -> RegisteredSchema:
        return await self.registry.get_version(
            _subject(request),
            _version(request.match_info["version"]),
            deleted=_flag(request, "deleted"),
        )

    async def _usages(self, request: web.Request) -> list[tuple[str, int]]:
        # The protocol has no reverse index from ids to subjects, so walk every version.
        # Fine for the hundreds of subjects a platform has; an unknown id is still 40403.
        schema_id = _schema_id(request.match_info["id"])
        only = request.query.get("subject")
        await self.registry.get_by_id(schema_id)
        return [
            (registered.subject, registered.version)
            for registered in await self._all_versions(deleted=_flag(request, "deleted"))
            if registered.id == schema_id
            and (only is None or registered.subject == _plain_subject(only))
        ]

    async def _all_versions(self, *, deleted: bool) -> list[RegisteredSchema]:
        found: list[RegisteredSchema] = []
        for subject in await self.registry.list_subjects(deleted=deleted):
            try:
                versions = await self.registry.list_versions(subject, deleted=deleted)
            except SchemaNotFound:
                continue  # deleted while we walked: it is no longer there to report
            for version in versions:
                try:
                    found.append(await self.registry.get_version(subject, version, deleted=deleted))
                except SchemaNotFound:
                    continue
        return found


def create_app(
    registry: SchemaRegistry,
    *,
    username: str | None = None,
    password: str | None = None,
    extra_routes: Sequence[web.RouteDef] = (),
) -> web.Application:
    """An aiohttp application serving Confluent's schema registry API from ``registry``.

    Args:
        registry: a started backend; the application neither starts nor closes it.
        username: require HTTP basic auth with this user (and ``password``) on every request.
        password: the basic auth password.
        extra_routes: more routes on the same server (``up`` adds its event catalogue).

    Raises:
        ConfigurationError: only one of ``username`` and ``password`` is given.
    """
    if (username is None) != (password is None):
        raise ConfigurationError("basic auth for the registry server needs both user and password")
    middlewares: list[Middleware] = [_errors]
    if username is not None and password is not None:
        middlewares.append(_basic_auth(username, password))
    app = web.Application(middlewares=middlewares)
    app.add_routes(_Api(registry).routes())
    app.add_routes(extra_routes)
    return app


async def serve(
    registry: SchemaRegistry,
    host: str = "127.0.0.1",
    port: int = 8081,
    *,
    username: str | None = None,
    password: str | None = None,
    extra_routes: Sequence[web.RouteDef] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> web.AppRunner:
    """Serve ``registry`` over Confluent's REST API on ``host:port`` until the runner stops.

    ``port=0`` picks a free port; :func:`server_url` tells which. Stop with
    ``await runner.cleanup()``, then close the backend. With ``ssl_context``
    (:func:`eventplatform.registry.tls.server_context`) it serves HTTPS.

    Returns:
        The started runner.

    Raises:
        ConfigurationError: the address cannot be bound (in use, not local), or basic auth is
            half configured.
    """
    app = create_app(registry, username=username, password=password, extra_routes=extra_routes)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigurationError(f"cannot serve the registry on {host}:{port}: {exc}") from exc
    return runner


def server_url(runner: web.AppRunner) -> str:
    """The ``http(s)://host:port`` a runner from :func:`serve` listens on (its first address).

    Raises:
        ConfigurationError: the runner listens nowhere (not started, or cleaned up).
    """
    if not runner.addresses:
        raise ConfigurationError("the registry server is not listening")
    host, port = runner.addresses[0][:2]
    # A site's name is its configured URL (port 0 unresolved) but tells the scheme.
    scheme = "https" if any(s.name.startswith("https:") for s in runner.sites) else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

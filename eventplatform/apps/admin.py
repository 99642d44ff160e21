"""Add, list and revoke third-party apps on a cluster: SCRAM users and their ACLs.

The calls go through aiokafka's admin client, as the configured admin principal
(:meth:`~eventplatform.settings.KafkaSettings.connection_options`), to any broker: in KRaft a
broker forwards ``CreateAcls``, ``DeleteAcls`` and ``AlterUserScramCredentials`` to the active
controller and answers the describe calls from its metadata cache. Each broker applies new
metadata on its own, so :func:`add_app` and :func:`revoke_app` return only once *every*
broker describes the new state: after ``add`` the credential works on any broker, after
``revoke`` every broker refuses the app's next request.

``add`` is all or nothing: it refuses a name that already has a credential or ACLs, and when
the ACLs cannot be created after the user was, it deletes the user (and any ACL it made).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from eventplatform import access
from eventplatform.apps.grants import (
    Acl,
    AppGrants,
    AppSummary,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    filters_for,
    summarise,
)
from eventplatform.apps.protocol import (
    AlterUserScramCredentialsRequest,
    CreateAclsRequest,
    DeleteAclsRequest,
    DescribeAclsRequest,
    DescribeUserScramCredentialsRequest,
)
from eventplatform.apps.scram import (
    DEFAULT_ITERATIONS,
    MECHANISM_CODES,
    ScramCredential,
    generate_password,
)
from eventplatform.errors import (
    AppError,
    AppExists,
    AppNotFound,
    AuthorizationFailed,
    ConfigurationError,
    EventPlatformError,
    KafkaError,
)
from eventplatform.settings import KafkaSettings

__all__ = ["AppCredentials", "add_app", "list_apps", "revoke_app"]

log = logging.getLogger(__name__)

# Kafka protocol error codes these RPCs answer (org.apache.kafka.common.protocol.Errors).
_CLUSTER_AUTHORIZATION_FAILED = 31
_UNSUPPORTED_SASL_MECHANISM = 33
_SECURITY_DISABLED = 54
_RESOURCE_NOT_FOUND = 91
_DUPLICATE_RESOURCE = 92
_UNACCEPTABLE_CREDENTIAL = 93
_NAMES = {
    _RESOURCE_NOT_FOUND: "RESOURCE_NOT_FOUND",
    _DUPLICATE_RESOURCE: "DUPLICATE_RESOURCE",
    _UNACCEPTABLE_CREDENTIAL: "UNACCEPTABLE_CREDENTIAL",
}
_CODE_NAMES = {code: name for name, code in MECHANISM_CODES.items()}

#: How long add/revoke wait for every broker to describe the new state.
_PROPAGATION_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class AppCredentials:
    """What ``add`` hands back once: the app's user, mechanism and password (a SecretStr)."""

    grants: AppGrants
    mechanism: str
    password: SecretStr


def _error_name(code: int) -> str:
    if code in _NAMES:
        return _NAMES[code]
    return str(kafka_errors.for_code(code).__name__)


def _raise_for(
    code: int, message: str | None, kafka: KafkaSettings, *, doing: str, app: str | None
) -> None:
    """Turn an RPC's error code into the eventplatform error that says what to do."""
    if not code:
        return
    servers = kafka.bootstrap_servers or "?"
    if code == _SECURITY_DISABLED:
        raise AppError(
            f"{doing} failed: the cluster at {servers} has no authoriser "
            "(SECURITY_DISABLED): apps need brokers with authorizer.class.name set (e.g. "
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer) and a SASL listener with "
            "SCRAM",
            app=app,
        )
    if code == _CLUSTER_AUTHORIZATION_FAILED:
        principal = access.principal_of(kafka)
        raise AuthorizationFailed(
            f"{doing} failed: Kafka refused principal {principal} access to the cluster "
            "(CLUSTER_AUTHORIZATION_FAILED): managing ACLs and SCRAM credentials needs ALTER "
            "(and DESCRIBE) on the cluster; run it as a super user or an operator with those "
            "ACLs (kafka.sasl_username)",
            principal=principal,
            resource="cluster",
        )
    if code == _UNSUPPORTED_SASL_MECHANISM:
        raise AppError(
            f"{doing} failed: the cluster at {servers} does not support that SCRAM mechanism "
            f"(UNSUPPORTED_SASL_MECHANISM){': ' + message if message else ''}; "
            "choose --mechanism SCRAM-SHA-512 or SCRAM-SHA-256",
            app=app,
        )
    detail = f": {message}" if message else ""
    raise AppError(f"{doing} failed: {_error_name(code)}{detail}", app=app)


@asynccontextmanager
async def _admin(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    servers = kafka.bootstrap_servers
    if not servers:
        raise ConfigurationError(
            "no Kafka cluster configured: set EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS (and the "
            "admin's credentials) to manage apps"
        )
    client = AIOKafkaAdminClient(
        bootstrap_servers=servers, request_timeout_ms=30_000, **kafka.connection_options()
    )
    try:
        try:
            await client.start()
        except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
            raise await access.start_failure(kafka, servers, exc, what="the admin client") from exc
        yield client
    finally:
        await client.close()


async def _send(
    admin: AIOKafkaAdminClient,
    request: Any,
    kafka: KafkaSettings,
    *,
    doing: str,
    node: int | None = None,
) -> Any:
    try:
        return await admin._send_request(request, node)
    except kafka_errors.IncompatibleBrokerVersion as exc:
        raise AppError(
            f"{doing} failed: the cluster at {kafka.bootstrap_servers} does not support the "
            f"request (Kafka 2.7 or later has every one apps need): {exc}"
        ) from exc
    except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
        found = access.denied(exc, kafka)
        if found is not None:
            raise found from exc
        raise KafkaError(
            f"{doing} on {kafka.bootstrap_servers} failed: {type(exc).__name__}: {exc}"
        ) from exc


# -- describing -------------------------------------------------------------------------------


async def _credentials(
    admin: AIOKafkaAdminClient,
    kafka: KafkaSettings,
    users: Sequence[str] | None,
    *,
    node: int | None = None,
) -> dict[str, dict[str, int]]:
    """user → mechanism → iterations (users without a credential left out)."""
    doing = "describing SCRAM credentials"
    response = await _send(
        admin, DescribeUserScramCredentialsRequest(users), kafka, doing=doing, node=node
    )
    if response.error_code != _RESOURCE_NOT_FOUND:
        _raise_for(response.error_code, response.error_message, kafka, doing=doing, app=None)
    found: dict[str, dict[str, int]] = {}
    for user, code, message, infos, _tags in response.results:
        if code == _RESOURCE_NOT_FOUND:
            continue  # asked for by name and absent
        _raise_for(code, message, kafka, doing=doing, app=user)
        found[user] = {
            _CODE_NAMES.get(mechanism, f"mechanism {mechanism}"): iterations
            for mechanism, iterations, _t in infos
        }
    return found


async def _acls(
    admin: AIOKafkaAdminClient,
    kafka: KafkaSettings,
    principal: str | None,
    *,
    node: int | None = None,
) -> list[tuple[str, Acl]]:
    """Every (principal, ACL), of one principal or of all."""
    doing = "describing ACLs"
    acl_filter = (
        ResourceType.ANY,
        None,
        PatternType.ANY,
        principal,
        None,
        Operation.ANY,
        Permission.ANY,
    )
    response = await _send(admin, DescribeAclsRequest(acl_filter), kafka, doing=doing, node=node)
    _raise_for(response.error_code, response.error_message, kafka, doing=doing, app=None)
    found: list[tuple[str, Acl]] = []
    for resource_type, name, pattern, acls, _tags in response.resources:
        for who, host, operation, permission, _t in acls:
            try:
                acl = Acl(
                    ResourceType(resource_type),
                    name,
                    PatternType(pattern),
                    Operation(operation),
                    Permission(permission),
                    host,
                )
            except ValueError:  # a resource type or operation apps never grant (tokens, …)
                log.debug("skipping an ACL of a kind apps do not use on %r", name)
                continue
            found.append((who, acl))
    return found


async def list_apps(kafka: KafkaSettings) -> list[AppSummary]:
    """Every app on the cluster: each SCRAM user that holds at least one ACL as ``User:NAME``.

    Raises:
        AuthorizationFailed: the configured principal may not describe ACLs or credentials.
        AppError: the cluster has no authoriser.
        AuthenticationFailed, KafkaError: the cluster refused or could not be reached.
    """
    async with _admin(kafka) as admin:
        # DescribeAcls first: it answers a principal without DESCRIBE on the cluster (or a
        # cluster without an authoriser) with a clear error code.
        acls = await _acls(admin, kafka, None)
        credentials = await _credentials(admin, kafka, None)
    return summarise(credentials, acls)


# -- adding -----------------------------------------------------------------------------------


async def add_app(
    grants: AppGrants,
    kafka: KafkaSettings,
    *,
    mechanism: str = "SCRAM-SHA-512",
    password: SecretStr | None = None,
    iterations: int = DEFAULT_ITERATIONS,
) -> AppCredentials:
    """Create the app's SCRAM user and its ACLs; return its credentials (once).

    Args:
        grants: the app's name and what it may do.
        kafka: how to reach the cluster, as a principal that may alter the cluster's ACLs and
            SCRAM credentials (a super user).
        mechanism: ``SCRAM-SHA-512`` or ``SCRAM-SHA-256``.
        password: the app's password; None draws a random one (256 bits).
        iterations: PBKDF2 iterations (Kafka accepts 4096-16384).

    Raises:
        AppExists: the name has a credential or ACLs already; nothing was written.
        AppError: no authoriser, an unsupported mechanism, or the broker refused the credential
            (whatever was written is removed again).
        AuthorizationFailed: the configured principal may not manage ACLs or credentials.
        ValueError: an unknown mechanism or iterations out of range.
    """
    secret = password if password is not None else SecretStr(generate_password())
    credential = ScramCredential.create(mechanism, secret.get_secret_value(), iterations=iterations)
    name = grants.name
    async with _admin(kafka) as admin:
        # DescribeAcls first: a cluster without an authoriser answers SECURITY_DISABLED here,
        # before anything is written.
        existing_acls = await _acls(admin, kafka, grants.principal)
        existing = await _credentials(admin, kafka, [name])
        if existing or existing_acls:
            held = []
            if existing:
                held.append(f"a SCRAM credential ({', '.join(sorted(existing[name]))})")
            if existing_acls:
                held.append(f"{len(existing_acls)} ACL{'s' if len(existing_acls) != 1 else ''}")
            raise AppExists(
                f"app {name!r} already exists on {kafka.bootstrap_servers}: {grants.principal} "
                f"has {' and '.join(held)}; nothing was changed (revoke it first with "
                f"`eventplatform apps revoke {name}`)",
                app=name,
            )
        doing = f"creating the SCRAM user of app {name!r}"
        request = AlterUserScramCredentialsRequest(
            upsertions=[
                (
                    name,
                    credential.mechanism_code,
                    credential.iterations,
                    credential.salt,
                    credential.salted_password,
                )
            ]
        )
        response = await _send(admin, request, kafka, doing=doing)
        for _user, code, message, _tags in response.results:
            _raise_for(code, message, kafka, doing=doing, app=name)
        try:
            await _create_acls(admin, kafka, grants)
            await _until_every_broker(
                admin, kafka, name, want_acls=len(grants.acls()), want_user=True
            )
        except BaseException:
            await _remove(admin, kafka, name, quiet=True)
            raise
    return AppCredentials(grants=grants, mechanism=mechanism, password=secret)


async def _create_acls(admin: AIOKafkaAdminClient, kafka: KafkaSettings, grants: AppGrants) -> None:
    doing = f"creating the ACLs of app {grants.name!r}"
    creations = [
        (
            acl.resource_type,
            acl.name,
            acl.pattern,
            grants.principal,
            acl.host,
            acl.operation,
            acl.permission,
        )
        for acl in grants.acls()
    ]
    response = await _send(admin, CreateAclsRequest(creations), kafka, doing=doing)
    for acl, (code, message, _tags) in zip(grants.acls(), response.results, strict=True):
        _raise_for(code, message, kafka, doing=f"{doing} ({acl.describe()})", app=grants.name)


async def _until_every_broker(
    admin: AIOKafkaAdminClient, kafka: KafkaSettings, name: str, *, want_acls: int, want_user: bool
) -> None:
    """Wait until each broker describes the app's credential and ACL count as wanted."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _PROPAGATION_TIMEOUT
    nodes = [broker.nodeId for broker in admin._client.cluster.brokers()]
    pending = set(nodes)
    while pending:
        for node in sorted(pending):
            try:
                users = await _credentials(admin, kafka, [name], node=node)
                acls = await _acls(admin, kafka, f"User:{name}", node=node)
            except KafkaError:
                if loop.time() > deadline:
                    raise
                continue  # a broker restarting: ask again
            if (name in users) == want_user and len(acls) == want_acls:
                pending.discard(node)
        if not pending:
            return
        if loop.time() > deadline:
            log.warning(
                "app %r: brokers %s did not apply the change within %.0fs; they will",
                name,
                sorted(pending),
                _PROPAGATION_TIMEOUT,
            )
            return
        await asyncio.sleep(0.1)


# -- revoking ---------------------------------------------------------------------------------


async def revoke_app(name: str, kafka: KafkaSettings) -> AppSummary:
    """Delete the app's ACLs and SCRAM credential; return what it held.

    Once it returns every broker refuses the app: a connected client's next request fails
    the authoriser (no ACL is left), and a new connection fails authentication.

    Raises:
        AppNotFound: the name has neither a credential nor ACLs.
        AuthorizationFailed: the configured principal may not manage ACLs or credentials.
        AppError: no authoriser, or the broker refused.
    """
    async with _admin(kafka) as admin:
        principal = f"User:{name}"
        acls = await _acls(admin, kafka, principal)
        credentials = await _credentials(admin, kafka, [name])
        if not credentials and not acls:
            raise AppNotFound(
                f"app {name!r} does not exist on {kafka.bootstrap_servers}: {principal} has "
                "neither a SCRAM credential nor ACLs (see `eventplatform apps list`)",
                app=name,
            )
        await _remove(admin, kafka, name, quiet=False, mechanisms=credentials.get(name, {}))
        await _until_every_broker(admin, kafka, name, want_acls=0, want_user=False)
    return AppSummary(name, credentials.get(name, {}), tuple(sorted(acl for _p, acl in acls)))


async def _remove(
    admin: AIOKafkaAdminClient,
    kafka: KafkaSettings,
    name: str,
    *,
    quiet: bool,
    mechanisms: dict[str, int] | None = None,
) -> None:
    """Delete ACLs first (a connected client loses access at once), then the credentials.

    ``quiet``: undoing a failed add, where the first error is the one to report.
    """
    try:
        doing = f"deleting the ACLs of app {name!r}"
        response = await _send(
            admin, DeleteAclsRequest(filters_for(f"User:{name}")), kafka, doing=doing
        )
        for code, message, _matching, _tags in response.filter_results:
            _raise_for(code, message, kafka, doing=doing, app=name)
        doing = f"deleting the SCRAM credential of app {name!r}"
        names = list(mechanisms) if mechanisms is not None else list(MECHANISM_CODES)
        deletions = [(name, MECHANISM_CODES[m]) for m in names if m in MECHANISM_CODES]
        if not deletions:
            return
        # One request per mechanism: a deletion of a mechanism the user lacks fails the whole
        # user's result (RESOURCE_NOT_FOUND).
        for deletion in deletions:
            response = await _send(
                admin, AlterUserScramCredentialsRequest(deletions=[deletion]), kafka, doing=doing
            )
            for _user, code, message, _tags in response.results:
                if code == _RESOURCE_NOT_FOUND and mechanisms is None:
                    continue
                _raise_for(code, message, kafka, doing=doing, app=name)
    except EventPlatformError:
        if not quiet:
            raise
        log.warning("app %r: undoing the partial add failed; revoke it by hand", name)

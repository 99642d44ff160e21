"""Whether the cluster lets this client in: authentication and authorisation, explained.

aiokafka hides why a client could not start: its bootstrap logs each server's error and then
raises ``KafkaConnectionError("Unable to bootstrap from …")``, whether the server was down,
refused the SASL credentials or presented a certificate the client does not trust. Where a
client fails to start on a cluster with security, :func:`refused` asks one server directly,
with the same options, and turns a refusal into :class:`~eventplatform.errors.AuthenticationFailed`
naming the principal and mechanism (never the password). :func:`denied` turns aiokafka's
authorisation errors (an ACL refuses an operation) into
:class:`~eventplatform.errors.AuthorizationFailed` naming principal and resource.
"""

from __future__ import annotations

import ssl

from aiokafka import errors as kafka_errors
from aiokafka.conn import create_conn

from eventplatform.errors import AuthenticationFailed, AuthorizationFailed, KafkaError
from eventplatform.settings import KafkaSettings, parse_bootstrap_servers

__all__ = ["denied", "principal_of", "refused", "start_failure"]

_AUTHENTICATION = (
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.UnsupportedSaslMechanismError,
)

_AUTHORIZATION: dict[type[Exception], str] = {
    kafka_errors.TopicAuthorizationFailedError: "topic",
    kafka_errors.GroupAuthorizationFailedError: "group",
    kafka_errors.TransactionalIdAuthorizationFailed: "transactional id",
    kafka_errors.ClusterAuthorizationFailedError: "cluster",
}


_HINTS = {
    # KIP-679: an idempotent producer's InitProducerId needs one of these.
    "cluster": " (an idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on a "
    "topic; creating topics needs CREATE)",
}


def principal_of(kafka: KafkaSettings) -> str:
    """The principal the broker sees for these settings (``User:NAME``, or ``ANONYMOUS``)."""
    if kafka.sasl_mechanism is not None and kafka.sasl_username:
        return f"User:{kafka.sasl_username}"
    return "User:ANONYMOUS"


def _authentication_failed(kafka: KafkaSettings, server: str, detail: str) -> AuthenticationFailed:
    principal = principal_of(kafka)
    return AuthenticationFailed(
        f"Kafka at {server} refused to authenticate principal {principal} "
        f"({kafka.sasl_mechanism} over {kafka.security_protocol}): {detail}. Check "
        "kafka.sasl_username and kafka.sasl_password or kafka.sasl_password_file (and that "
        "the user exists for this mechanism).",
        principal=principal,
        server=server,
    )


async def refused(kafka: KafkaSettings, servers: str) -> AuthenticationFailed | None:
    """Why a client of ``kafka`` could not start, when the answer is the security.

    Connects to each server in turn with the same TLS and SASL options and reports the first
    refusal: wrong credentials, an unknown mechanism, or a certificate that does not verify.
    None when the settings use no security, or no server refused (it may be down).
    """
    if kafka.security_protocol == "PLAINTEXT":
        return None
    options = kafka.connection_options()
    for host, port in parse_bootstrap_servers(servers):
        server = f"{host}:{port}"
        try:
            conn = await create_conn(host, port, request_timeout_ms=10_000, **options)
        except _AUTHENTICATION as exc:
            return _authentication_failed(kafka, server, f"{type(exc).__name__}: {exc}")
        except ssl.SSLCertVerificationError as exc:
            cafile = kafka.ssl_cafile or "the system trust store"
            return AuthenticationFailed(
                f"the TLS certificate of Kafka at {server} does not verify against {cafile} "
                f"(kafka.ssl_cafile): {exc.verify_message}",
                principal=principal_of(kafka),
                server=server,
            )
        except (kafka_errors.KafkaError, OSError, TimeoutError):
            continue  # down or unreachable: not a question of security; try the next
        conn.close()
    return None


async def start_failure(
    kafka: KafkaSettings, servers: str | None, exc: BaseException, *, what: str
) -> KafkaError:
    """The error to raise when ``what`` (a producer, a consumer) could not start on ``servers``.

    :class:`AuthenticationFailed` or :class:`AuthorizationFailed` when the security refused
    it, else :class:`KafkaError` quoting ``exc``.
    """
    servers = servers or kafka.bootstrap_servers or "?"
    if isinstance(exc, _AUTHENTICATION):
        return _authentication_failed(kafka, servers, f"{type(exc).__name__}: {exc}")
    found = denied(exc, kafka) or (await refused(kafka, servers) if servers != "?" else None)
    if found is not None:
        return found
    return KafkaError(f"{what} cannot connect to Kafka at {servers}: {exc}")


def denied(
    exc: BaseException, kafka: KafkaSettings, *, resource: str | None = None
) -> AuthorizationFailed | AuthenticationFailed | None:
    """``exc`` as :class:`AuthorizationFailed` (or :class:`AuthenticationFailed`), else None.

    Args:
        exc: an aiokafka error.
        kafka: the settings whose principal was refused.
        resource: the topic, group or transactional id asked for, when the caller knows it
            (aiokafka names a topic only sometimes).
    """
    if isinstance(exc, _AUTHENTICATION):
        return _authentication_failed(
            kafka, kafka.bootstrap_servers or "?", f"{type(exc).__name__}: {exc}"
        )
    for error, kind in _AUTHORIZATION.items():
        if isinstance(exc, error):
            principal = principal_of(kafka)
            named = resource or _named(exc)
            target = f"{kind} {named!r}" if named and kind != "cluster" else f"the {kind}"
            hint = _HINTS.get(kind, "")
            return AuthorizationFailed(
                f"Kafka refused principal {principal} access to {target} "
                f"({type(exc).__name__}): grant it an ACL (CreateAcls) for the operation{hint}",
                principal=principal,
                resource=f"{kind}:{named}" if named and kind != "cluster" else kind,
            )
    return None


def _named(exc: BaseException) -> str | None:
    """The resource aiokafka put in the error's arguments (a name, or a set of names)."""
    for arg in exc.args:
        if isinstance(arg, str) and arg:
            return arg
        if isinstance(arg, set | frozenset | list | tuple) and arg:
            return ",".join(sorted(str(a) for a in arg))
    return None

"""TLS for the REST registry: the client's trust and certificate, the server's certificate.

The client side follows Confluent's serializers, whose settings map one to one:
``schema.registry.ssl.ca.location`` → ``registry.ssl_cafile``,
``schema.registry.ssl.certificate.location``/``…key.location`` → ``registry.ssl_certfile`` /
``registry.ssl_keyfile`` (mutual TLS), ``basic.auth.user.info`` (``user:password``) →
``registry.username`` and ``registry.password``. The server side (``registry serve``, ``up``)
serves HTTPS when ``registry.server_certfile`` is set.

A file that cannot be read is a :class:`~eventplatform.errors.ConfigurationError` naming the
setting, raised when the registry is built rather than at its first request.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from eventplatform.errors import ConfigurationError
from eventplatform.settings import RegistrySettings

__all__ = ["client_context", "server_context"]


def _files(**paths: Path | None) -> str:
    return ", ".join(f"registry.{name}={path}" for name, path in paths.items() if path)


def client_context(registry: RegistrySettings) -> ssl.SSLContext | None:
    """The TLS context an ``https`` registry URL is reached with; None: the system's defaults.

    Raises:
        ConfigurationError: a file cannot be read or does not hold a certificate or key.
    """
    if registry.ssl_cafile is None and registry.ssl_certfile is None:
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(registry.ssl_cafile) if registry.ssl_cafile else None
        )
        if registry.ssl_certfile is not None:
            context.load_cert_chain(
                registry.ssl_certfile, registry.ssl_keyfile if registry.ssl_keyfile else None
            )
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        files = _files(
            ssl_cafile=registry.ssl_cafile,
            ssl_certfile=registry.ssl_certfile,
            ssl_keyfile=registry.ssl_keyfile,
        )
        raise ConfigurationError(
            f"cannot set up TLS to the schema registry from {files}: {type(exc).__name__}: {exc}"
        ) from None
    return context


def server_context(registry: RegistrySettings) -> ssl.SSLContext | None:
    """The TLS context the registry server listens with; None: plain HTTP.

    Raises:
        ConfigurationError: a key comes without a certificate, or a file cannot be read.
    """
    if registry.server_certfile is None:
        if registry.server_keyfile is not None:
            raise ConfigurationError(
                "registry.server_keyfile is set without registry.server_certfile"
            )
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(registry.server_certfile, registry.server_keyfile)
    except (OSError, ValueError) as exc:
        files = _files(
            server_certfile=registry.server_certfile, server_keyfile=registry.server_keyfile
        )
        raise ConfigurationError(
            f"cannot serve HTTPS from {files}: {type(exc).__name__}: {exc}"
        ) from None
    return context

"""A throwaway certificate authority and broker certificate for a development cluster.

:func:`make_tls` writes, once per cluster folder, a self-signed CA and one broker certificate
signed by it (ECDSA P-256; ``subjectAltName`` ``127.0.0.1``, ``::1`` and ``localhost``, so
that clients and brokers alike verify the host name). Kafka 4.x reads PEM key and trust stores
directly (``ssl.keystore.type=PEM``, KIP-651), so no keytool and no store password is needed.
The CA's private key is not kept: nothing else is ever signed with it.

The ``cryptography`` package comes with the ``tls`` extra (``pip install 'eventplatform[tls]'``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventplatform.errors import ProvisioningError

__all__ = ["TlsFiles", "make_tls"]

_VALID_FOR = datetime.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The PEM files of a cluster's TLS.

    Attributes:
        ca_file: the CA certificate: clients trust it (``kafka.ssl_cafile``).
        keystore: the broker's private key followed by its certificate chain
            (``ssl.keystore.location`` with ``ssl.keystore.type=PEM``).
    """

    ca_file: Path
    keystore: Path


def make_tls(folder: Path) -> TlsFiles:
    """The CA and broker certificate in ``folder``, generated when not there yet.

    Raises:
        ProvisioningError: the ``cryptography`` package is not installed.
    """
    files = TlsFiles(folder / "ca.pem", folder / "broker-keystore.pem")
    if files.ca_file.exists() and files.keystore.exists():
        return files
    try:
        from cryptography import x509  # noqa: PLC0415 - optional dependency
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415
    except ImportError as exc:
        raise ProvisioningError(
            "a SASL_SSL development cluster needs the cryptography package for its throwaway "
            "certificates: pip install 'eventplatform[tls]'"
        ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eventplatform dev CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(x509), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("localhost"),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # Brokers are TLS servers to clients and TLS clients of each other.
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(files.keystore, key_pem + cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    files.ca_file.write_bytes(ca_cert.public_bytes(pem))
    return files


def _ca_key_usage(x509: Any) -> Any:
    """A CA certificate's key usage: it signs certificates (and CRLs), nothing else."""
    flags = dict.fromkeys(
        ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
         "key_agreement", "encipher_only", "decipher_only"),
        False,
    )  # fmt: skip
    return x509.KeyUsage(key_cert_sign=True, crl_sign=True, **flags)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by its owner only (it holds a private key)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)

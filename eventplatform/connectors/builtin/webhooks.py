"""Standard Webhooks signatures: signing deliveries and verifying them.

The scheme (https://www.standardwebhooks.com/, "Signature scheme"):

- three headers: ``webhook-id`` (unique per message, the same on every retry of it),
  ``webhook-timestamp`` (integer Unix seconds) and ``webhook-signature``;
- the signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"`` over the raw body bytes;
- the symmetric signature is ``v1,`` + base64(HMAC-SHA256(secret, signed content));
- ``webhook-signature`` is a space-separated list of signatures, so a sender can sign with an
  old and a new secret while receivers rotate (any one matching verifies); versions other than
  ``v1`` (``v1a`` is the asymmetric one) are passed over;
- secrets are written ``whsec_`` + base64 of the key bytes (24-64 bytes recommended);
- receivers refuse timestamps outside a tolerance (5 minutes suggested), which with the id
  makes replaying a captured message useless.

Comparisons use :func:`hmac.compare_digest`, so the time taken does not reveal how much of a
forged signature was right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from eventplatform.errors import ConfigurationError, InvalidSignature

__all__ = [
    "H_WEBHOOK_ID",
    "H_WEBHOOK_SIGNATURE",
    "H_WEBHOOK_TIMESTAMP",
    "MESSAGE_ID",
    "MESSAGE_ID_PATTERN",
    "MESSAGE_ID_RULE",
    "TIMESTAMP_PATTERN",
    "SECRET_PREFIX",
    "SignatureVerifier",
    "Signer",
    "decode_secret",
    "sign",
    "signature_headers",
]

H_WEBHOOK_ID = "webhook-id"
H_WEBHOOK_TIMESTAMP = "webhook-timestamp"
H_WEBHOOK_SIGNATURE = "webhook-signature"
SECRET_PREFIX = "whsec_"
#: Longest ``webhook-id`` (and ``Idempotency-Key``) accepted; ids are stored for deduplication.
MAX_ID_LENGTH = 256
#: What a ``webhook-id`` or ``Idempotency-Key`` may be, as the OpenAPI document states it
#: (ECMA-262): 1 to 256 visible ASCII characters, spaces only inside (HTTP drops them at the
#: ends, RFC 9110 §5.5, so they could not be sent).
MESSAGE_ID_PATTERN = f"^[!-~](?:[ -~]{{0,{MAX_ID_LENGTH - 2}}}[!-~])?$"
MESSAGE_ID = re.compile(MESSAGE_ID_PATTERN[1:-1])
MESSAGE_ID_RULE = f"1 to {MAX_ID_LENGTH} visible ASCII characters (spaces only inside)"
#: ``webhook-timestamp``: integer Unix seconds, at most 12 digits.
TIMESTAMP_PATTERN = "^[0-9]{1,12}$"
_MAX_SIGNATURES = 16


def decode_secret(secret: str | bytes) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret (the prefix is optional); bytes pass.

    Raises:
        ConfigurationError: not base64, or empty.
    """
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret.strip().removeprefix(SECRET_PREFIX)
        try:
            # Padding is added because secrets are often shared without it.
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError(
                f"a webhook secret must be {SECRET_PREFIX}<base64>: {exc}"
            ) from exc
    if not key:
        raise ConfigurationError("a webhook secret must not be empty")
    return key


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of ``body`` sent as ``msg_id`` at ``timestamp``.

    Raises:
        ConfigurationError: the secret is malformed.
    """
    content = f"{msg_id}.{timestamp}.".encode() + body
    # hmac.digest: OpenSSL's one-shot HMAC, without building an HMAC object per message.
    digest = hmac.digest(decode_secret(secret), content, "sha256")
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secrets: Iterable[str | bytes], msg_id: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers of a delivery, signed with every one of ``secrets``.

    Raises:
        ConfigurationError: a secret is malformed.
    """
    return Signer(secrets).headers(msg_id, body, timestamp=timestamp)


class Signer:
    """Signs deliveries with fixed secrets: :func:`signature_headers` for a sender that signs
    many messages.

    The secrets are decoded and each HMAC keyed once; a message then costs a copy of the keyed
    state and the hashing of its own bytes (the webhook egress signs every delivery attempt).

    Raises:
        ConfigurationError: a secret is malformed.
    """

    __slots__ = ("_keyed",)

    def __init__(self, secrets: Iterable[str | bytes]) -> None:
        self._keyed = [
            hmac.new(decode_secret(secret), digestmod=hashlib.sha256) for secret in secrets
        ]

    def __repr__(self) -> str:
        return f"<Signer of {len(self._keyed)} secret(s)>"  # never the keys

    def headers(self, msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """The three Standard Webhooks headers of ``body`` sent as ``msg_id`` at ``timestamp``
        (default now), signed with every secret (the same as :func:`signature_headers`)."""
        when = str(int(time.time()) if timestamp is None else timestamp)
        # One update of the whole content: hmac's methods are Python wrappers, and copying a
        # body costs less than a second call (the egress signs every attempt; ~2.2 against
        # ~3.5 µs with base64's wrapper too).
        content = f"{msg_id}.{when}.".encode() + body
        signatures = []
        for keyed in self._keyed:
            mac = keyed.copy()
            mac.update(content)
            signatures.append("v1," + binascii.b2a_base64(mac.digest(), newline=False).decode())
        return {
            H_WEBHOOK_ID: msg_id,
            H_WEBHOOK_TIMESTAMP: when,
            H_WEBHOOK_SIGNATURE: " ".join(signatures),
        }


@dataclass(frozen=True, slots=True)
class VerifiedMessage:
    """A message whose signature verified: its id and timestamp."""

    id: str
    timestamp: int


class SignatureVerifier:
    """Verifies Standard Webhooks signatures against any of several secrets.

    Args:
        secrets: the accepted secrets (``whsec_…``); several during a rotation.
        tolerance: seconds a timestamp may lie in the past or the future.
        clock: the current Unix time (injectable for tests).

    Raises:
        ConfigurationError: no secret, a malformed one, or a negative tolerance.
    """

    def __init__(
        self,
        secrets: Iterable[str | bytes],
        *,
        tolerance: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = [decode_secret(secret) for secret in secrets]
        if not self._keys:
            raise ConfigurationError("a signature verifier needs at least one secret")
        if tolerance < 0:
            raise ConfigurationError(f"tolerance must be >= 0, not {tolerance}")
        self.tolerance = tolerance
        self._clock = clock

    def __repr__(self) -> str:
        return f"SignatureVerifier({len(self._keys)} secrets, tolerance={self.tolerance:g}s)"

    def verify(self, headers: Mapping[str, str], body: bytes) -> VerifiedMessage:
        """Check the signature headers of a request with raw ``body``.

        Args:
            headers: the request headers; looked up by lower-case name (aiohttp's
                ``CIMultiDict`` and plain lower-case dicts both work).
            body: the raw request body, exactly as received.

        Raises:
            InvalidSignature: a header is missing or malformed, the timestamp is outside the
                tolerance, or no ``v1`` signature matches any secret; the message says which.
        """
        msg_id = headers.get(H_WEBHOOK_ID, "")
        stamp = headers.get(H_WEBHOOK_TIMESTAMP, "")
        signatures = headers.get(H_WEBHOOK_SIGNATURE, "")
        missing = [
            name
            for name, value in (
                (H_WEBHOOK_ID, msg_id),
                (H_WEBHOOK_TIMESTAMP, stamp),
                (H_WEBHOOK_SIGNATURE, signatures),
            )
            if not value
        ]
        if missing:
            raise InvalidSignature(f"missing header {', '.join(missing)}")
        if MESSAGE_ID.fullmatch(msg_id) is None:
            raise InvalidSignature(f"{H_WEBHOOK_ID} must be {MESSAGE_ID_RULE}")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            raise InvalidSignature(f"{H_WEBHOOK_TIMESTAMP} must be integer Unix seconds")
        timestamp = int(stamp)
        now = self._clock()
        if abs(now - timestamp) > self.tolerance:
            direction = "old" if timestamp < now else "far in the future"
            raise InvalidSignature(
                f"{H_WEBHOOK_TIMESTAMP} is too {direction} (tolerance {self.tolerance:g}s)"
            )
        content = f"{msg_id}.{stamp}.".encode() + body
        expected = [hmac.new(key, content, hashlib.sha256).digest() for key in self._keys]
        matched = False
        for candidate in signatures.split(" ")[:_MAX_SIGNATURES]:
            version, _, encoded = candidate.partition(",")
            if version != "v1" or not encoded:
                continue
            try:
                given = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                continue
            # Every expected digest is compared, matched or not, to keep timing uniform.
            for digest in expected:
                matched |= hmac.compare_digest(digest, given)
        if not matched:
            raise InvalidSignature("no v1 signature matches")
        return VerifiedMessage(msg_id, timestamp)

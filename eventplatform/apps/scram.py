"""SCRAM credentials computed on the client (RFC 5802, RFC 7677, KIP-554).

``AlterUserScramCredentials`` never carries the password: the client draws a salt and sends
``SaltedPassword = Hi(password, salt, iterations)``, which is PBKDF2 with HMAC of the
mechanism's hash and a key as long as the hash (RFC 5802 §2.2). The broker derives the stored
and server keys from it, as ``kafka-configs --add-config SCRAM-SHA-512=[password=…]`` would.
Kafka normalises a password to its UTF-8 bytes (no SASLprep), and so does this module.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Literal, get_args

__all__ = [
    "DEFAULT_ITERATIONS",
    "MAX_ITERATIONS",
    "MECHANISM_CODES",
    "MIN_ITERATIONS",
    "ScramCredential",
    "ScramMechanism",
    "generate_password",
    "salted_password",
]

ScramMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512"]
SCRAM_MECHANISMS: tuple[str, ...] = get_args(ScramMechanism)

#: Kafka's ``ScramMechanism`` ids on the wire (``UNKNOWN`` is 0).
MECHANISM_CODES: dict[str, int] = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}

#: Kafka refuses fewer than 4096 (RFC 7677's minimum) or more than 16384 iterations.
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
#: Twice the minimum: each client login recomputes it, once per connection.
DEFAULT_ITERATIONS = 8192


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """``Hi(password, salt, iterations)`` of RFC 5802 for a ``SCRAM-SHA-*`` mechanism.

    Raises:
        ValueError: the mechanism is not SCRAM-SHA-256 or SCRAM-SHA-512.
    """
    try:
        name = _HASHES[mechanism]
    except KeyError:
        raise ValueError(
            f"{mechanism!r} is not a SCRAM mechanism; valid: {', '.join(SCRAM_MECHANISMS)}"
        ) from None
    return hashlib.pbkdf2_hmac(name, password.encode("utf-8"), salt, iterations)


def generate_password() -> str:
    """A new random password: 256 bits, URL-safe characters (safe in JAAS and env files)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What a SCRAM upsertion carries: never the password itself (its repr hides the keys)."""

    mechanism: str
    iterations: int
    salt: bytes = field(repr=False)
    salted_password: bytes = field(repr=False)

    @classmethod
    def create(
        cls, mechanism: str, password: str, *, iterations: int = DEFAULT_ITERATIONS
    ) -> ScramCredential:
        """A credential for ``password`` with a fresh 32-byte salt.

        Raises:
            ValueError: an unknown mechanism, or iterations outside Kafka's 4096-16384.
        """
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise ValueError(
                f"SCRAM iterations must be {MIN_ITERATIONS}-{MAX_ITERATIONS}, not {iterations}"
            )
        salt = secrets.token_bytes(32)
        return cls(
            mechanism, iterations, salt, salted_password(mechanism, password, salt, iterations)
        )

    @property
    def mechanism_code(self) -> int:
        """The mechanism's id on the wire."""
        return MECHANISM_CODES[self.mechanism]

"""The salted password against RFC 7677's worked example and PBKDF2 itself."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from eventplatform.apps.scram import (
    DEFAULT_ITERATIONS,
    MIN_ITERATIONS,
    ScramCredential,
    generate_password,
    salted_password,
)


def test_the_salted_password_reproduces_rfc_7677s_client_proof_and_server_signature() -> None:
    # RFC 7677 §3: user "user", password "pencil", SCRAM-SHA-256, i=4096.
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    salted = salted_password("SCRAM-SHA-256", "pencil", salt, 4096)
    client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = (
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    final_without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = f"{client_first_bare},{server_first},{final_without_proof}".encode()
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    signature = hmac.digest(stored_key, auth, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    assert base64.b64encode(proof).decode() == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    server_signature = hmac.digest(server_key, auth, "sha256")
    assert base64.b64encode(server_signature).decode() == (
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    )


def test_sha_512_is_pbkdf2_hmac_sha512_with_a_64_byte_key() -> None:
    salt = b"0123456789abcdef"
    salted = salted_password("SCRAM-SHA-512", "pässword", salt, 4096)
    assert len(salted) == 64
    # Kafka's ScramFormatter: the password's UTF-8 bytes, no SASLprep.
    assert salted == hashlib.pbkdf2_hmac("sha512", "pässword".encode(), salt, 4096)


def test_an_unknown_mechanism_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="SCRAM-SHA-256, SCRAM-SHA-512"):
        salted_password("PLAIN", "x", b"s", 4096)


def test_a_credential_has_a_fresh_salt_and_hides_its_keys() -> None:
    one = ScramCredential.create("SCRAM-SHA-512", "secret-password")
    two = ScramCredential.create("SCRAM-SHA-512", "secret-password")
    assert one.salt != two.salt
    assert len(one.salt) == 32
    assert one.iterations == DEFAULT_ITERATIONS >= MIN_ITERATIONS
    assert one.mechanism_code == 2
    assert one.salted_password == salted_password(
        "SCRAM-SHA-512", "secret-password", one.salt, one.iterations
    )
    assert one.salted_password.hex() not in repr(one)
    assert "secret-password" not in repr(one)


@pytest.mark.parametrize("iterations", [4095, 16385])
def test_iterations_outside_kafkas_range_are_refused(iterations: int) -> None:
    with pytest.raises(ValueError, match="4096-16384"):
        ScramCredential.create("SCRAM-SHA-512", "x", iterations=iterations)


def test_generated_passwords_are_long_random_and_url_safe() -> None:
    passwords = {generate_password() for _ in range(5)}
    assert len(passwords) == 5
    for password in passwords:
        assert len(password) >= 40
        assert set(password) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )

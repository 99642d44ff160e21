"""Standard Webhooks signatures, checked against the independent ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from eventplatform.connectors.builtin.webhooks import (
    SignatureVerifier,
    Signer,
    decode_secret,
    sign,
    signature_headers,
)
from eventplatform.errors import ConfigurationError, InvalidSignature

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
NEW_SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()
NOW = 1_760_000_000


def theirs(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode())


def headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


@given(
    msg_id=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    body=st.text(max_size=200),
)
def test_our_signatures_are_theirs(msg_id: str, body: str) -> None:
    raw = body.encode()
    assert sign(SECRET, msg_id, NOW, raw) == theirs(SECRET, msg_id, NOW, raw)
    # And theirs verifies ours.
    signed = signature_headers([SECRET], msg_id, raw, timestamp=NOW)
    verifier = SignatureVerifier([SECRET], clock=lambda: NOW)
    assert verifier.verify(signed, raw).id == msg_id


def test_a_signer_signs_every_message_as_sign_does_with_each_secret() -> None:
    signer = Signer([SECRET, NEW_SECRET.removeprefix("whsec_")])
    for msg_id, body in (("m-1", b'{"a":1}'), ("m-2", b""), ("m-1", b'{"a":1}')):
        signed = signer.headers(msg_id, body, timestamp=NOW)
        assert signed == headers(
            msg_id,
            NOW,
            f"{theirs(SECRET, msg_id, NOW, body)} {theirs(NEW_SECRET, msg_id, NOW, body)}",
        )
    assert "k" * 8 not in repr(signer)


def test_the_package_verifies_what_we_sign() -> None:
    body = json.dumps({"a": 1}).encode()
    signed = signature_headers([SECRET], "msg_1", body)
    assert Webhook(SECRET).verify(body, signed) == {"a": 1}


def test_any_of_several_signatures_and_secrets_verifies() -> None:
    body = b'{"x": 1}'
    rotating = f"{theirs(SECRET, 'm', NOW, body)} {theirs(NEW_SECRET, 'm', NOW, body)}"
    only_new = SignatureVerifier([NEW_SECRET], clock=lambda: NOW)
    assert only_new.verify(headers("m", NOW, rotating), body).timestamp == NOW
    both = SignatureVerifier([SECRET, NEW_SECRET], clock=lambda: NOW)
    assert both.verify(headers("m", NOW, theirs(NEW_SECRET, "m", NOW, body)), body).id == "m"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"webhook-id": ""}, "missing header webhook-id"),
        ({"webhook-timestamp": ""}, "missing header webhook-timestamp"),
        ({"webhook-timestamp": str(NOW - 301)}, "too old"),
        ({"webhook-timestamp": str(NOW + 301)}, "too far in the future"),
        ({"webhook-timestamp": "1.5e9"}, "integer Unix seconds"),
        ({"webhook-signature": "v1a,abc v2,def"}, "no v1 signature matches"),
        ({"webhook-signature": "v1,!!!notbase64"}, "no v1 signature matches"),
        ({"webhook-id": "x" * 257}, "1 to 256"),
    ],
)
def test_what_does_not_verify_says_why(change: dict[str, str], reason: str) -> None:
    body = b"{}"
    signed = headers("m", NOW, theirs(SECRET, "m", NOW, body)) | change
    with pytest.raises(InvalidSignature, match=reason):
        SignatureVerifier([SECRET], clock=lambda: NOW).verify(signed, body)


def test_a_tampered_body_or_another_id_does_not_verify() -> None:
    signature = theirs(SECRET, "m", NOW, b'{"a": 1}')
    verifier = SignatureVerifier([SECRET], clock=lambda: NOW)
    with pytest.raises(InvalidSignature):
        verifier.verify(headers("m", NOW, signature), b'{"a": 2}')
    with pytest.raises(InvalidSignature):
        verifier.verify(headers("other", NOW, signature), b'{"a": 1}')


def test_secrets_decode_with_or_without_prefix_and_padding() -> None:
    assert decode_secret(SECRET) == b"k" * 32
    assert decode_secret(SECRET.removeprefix("whsec_").rstrip("=")) == b"k" * 32
    with pytest.raises(ConfigurationError, match="whsec_<base64>"):
        decode_secret("whsec_not*base64")
    with pytest.raises(ConfigurationError, match="must not be empty"):
        decode_secret("whsec_")
    with pytest.raises(ConfigurationError, match="at least one secret"):
        SignatureVerifier([])
    assert "k" * 8 not in repr(SignatureVerifier([SECRET]))

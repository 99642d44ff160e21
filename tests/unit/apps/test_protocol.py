"""The ACL and SCRAM structs against bytes built by hand from Apache Kafka's message specs.

Each expected byte string is written out field by field (compact string = unsigned varint of
length + 1 then UTF-8, 0 for null; compact array = varint count + 1; compact bytes likewise;
an empty tagged-field buffer = 0x00), independently of aiokafka's encoders, so a struct with
a field missing, extra or out of order fails here.
"""

from __future__ import annotations

import struct

import pytest

from eventplatform.apps import protocol as p
from eventplatform.apps.grants import Operation, PatternType, Permission, ResourceType


def s(text: str | None) -> bytes:
    if text is None:
        return b"\x00"
    raw = text.encode()
    return bytes([len(raw) + 1]) + raw


def b(raw: bytes) -> bytes:
    return bytes([len(raw) + 1]) + raw


def n(count: int) -> bytes:
    return bytes([count + 1])


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


TAGS = b"\x00"
ACL_APIS = {p.API_CREATE_ACLS: (1, 3), p.API_DESCRIBE_ACLS: (1, 3), p.API_DELETE_ACLS: (1, 3)}


def test_create_acls_request_bytes_and_the_newest_version_the_broker_takes() -> None:
    creation = (ResourceType.TOPIC, "orders", PatternType.LITERAL, "User:a", "*", 3, 3)
    request = p.CreateAclsRequest([creation]).prepare(ACL_APIS)
    assert (request.API_VERSION, request.FLEXIBLE_VERSION) == (3, True)
    expected = n(1) + i8(2) + s("orders") + i8(3) + s("User:a") + s("*") + i8(3) + i8(3) + TAGS
    assert request.encode() == expected + TAGS
    # A 2.x broker (CreateAcls 0-2) gets v2, the same bytes.
    older = p.CreateAclsRequest([creation]).prepare({p.API_CREATE_ACLS: (0, 2)})
    assert older.API_VERSION == 2
    assert older.encode() == expected + TAGS


def test_create_acls_response_decodes_one_result_per_creation() -> None:
    raw = i32(0) + n(2) + i16(0) + s(None) + TAGS + i16(54) + s("no authorizer") + TAGS + TAGS
    response = p.CreateAclsRequest([]).prepare(ACL_APIS).RESPONSE_TYPE.decode(raw)
    assert response.results == [(0, None, {}), (54, "no authorizer", {})]


def test_describe_acls_request_is_one_filter_with_nulls_for_any() -> None:
    acl_filter = (
        ResourceType.ANY, None, PatternType.ANY, "User:a", None, Operation.ANY, Permission.ANY,
    )  # fmt: skip
    request = p.DescribeAclsRequest(acl_filter).prepare(ACL_APIS)
    expected = i8(1) + s(None) + i8(1) + s("User:a") + s(None) + i8(1) + i8(1) + TAGS
    assert request.encode() == expected


def test_describe_acls_response_decodes_resources_with_their_acls() -> None:
    acl = s("User:a") + s("*") + i8(3) + i8(3) + TAGS
    resource = i8(3) + s("a.") + i8(4) + n(1) + acl + TAGS
    raw = i32(0) + i16(0) + s(None) + n(1) + resource + TAGS
    response = p.DescribeAclsRequest((1, None, 1, None, None, 1, 1)).prepare(ACL_APIS)
    decoded = response.RESPONSE_TYPE.decode(raw)
    assert decoded.error_code == 0
    assert decoded.resources == [(3, "a.", 4, [("User:a", "*", 3, 3, {})], {})]


def test_delete_acls_request_and_response() -> None:
    request = p.DeleteAclsRequest([(1, None, 1, "User:a", None, 1, 1)]).prepare(ACL_APIS)
    body = i8(1) + s(None) + i8(1) + s("User:a") + s(None) + i8(1) + i8(1) + TAGS
    assert request.encode() == n(1) + body + TAGS
    matching = i16(0) + s(None) + i8(2) + s("orders") + i8(3) + s("User:a") + s("*")
    matching += i8(3) + i8(3) + TAGS
    raw = i32(0) + n(1) + i16(0) + s(None) + n(1) + matching + TAGS + TAGS
    decoded = request.RESPONSE_TYPE.decode(raw)
    assert decoded.filter_results == [
        (0, None, [(0, None, 2, "orders", 3, "User:a", "*", 3, 3, {})], {})
    ]


def test_describe_user_scram_credentials_for_some_users_or_all() -> None:
    apis = {p.API_DESCRIBE_USER_SCRAM_CREDENTIALS: (0, 0)}
    some = p.DescribeUserScramCredentialsRequest(["a"]).prepare(apis)
    assert (some.API_VERSION, some.FLEXIBLE_VERSION) == (0, True)
    assert some.encode() == n(1) + s("a") + TAGS + TAGS
    every = p.DescribeUserScramCredentialsRequest(None).prepare(apis)
    assert every.encode() == b"\x00" + TAGS  # a null array: every user
    result = s("a") + i16(0) + s(None) + n(1) + i8(2) + i32(8192) + TAGS + TAGS
    raw = i32(0) + i16(0) + s(None) + n(1) + result + TAGS
    decoded = some.RESPONSE_TYPE.decode(raw)
    assert decoded.results == [("a", 0, None, [(2, 8192, {})], {})]


def test_alter_user_scram_credentials_bytes_and_a_repr_without_the_keys() -> None:
    apis = {p.API_ALTER_USER_SCRAM_CREDENTIALS: (0, 0)}
    salt, salted = b"S" * 32, b"K" * 64
    request = p.AlterUserScramCredentialsRequest(
        deletions=[("old", 1)], upsertions=[("a", 2, 8192, salt, salted)]
    )
    built = request.prepare(apis)
    deletions = n(1) + s("old") + i8(1) + TAGS
    upsertions = n(1) + s("a") + i8(2) + i32(8192) + b(salt) + b(salted) + TAGS
    assert built.encode() == deletions + upsertions + TAGS
    # aiokafka logs every request's repr at debug level: the salted password (which is enough
    # to log in) and the salt never show.
    for text in (repr(built), repr(request)):
        assert "KKKK" not in text
        assert "SSSS" not in text
    assert "[hidden]" in repr(built)
    raw = i32(0) + n(1) + s("a") + i16(0) + s(None) + TAGS + TAGS
    assert built.RESPONSE_TYPE.decode(raw).results == [("a", 0, None, {})]


def test_a_broker_without_the_rpc_is_refused_before_sending() -> None:
    from aiokafka.errors import IncompatibleBrokerVersion

    with pytest.raises(IncompatibleBrokerVersion):
        p.AlterUserScramCredentialsRequest().prepare({})

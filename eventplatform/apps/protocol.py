# aiokafka ships no type information, so its protocol classes are Any to mypy.
# mypy: disallow-subclassing-any=False
"""The ACL and SCRAM admin RPCs as aiokafka request and response structs.

aiokafka 0.14 has no ACL or SCRAM-credential admin API, but its connection layer sends any
:class:`~aiokafka.protocol.api.RequestStruct` and negotiates the version per connection (a
:class:`~aiokafka.protocol.api.Request` picks the newest struct the broker accepts). The structs
follow Apache Kafka's message definitions,
``clients/src/main/resources/common/message/<Name>{Request,Response}.json``, checked against the
4.4.0 ``kafka-clients`` jar:

===================================  =======  ===========================================
DescribeAcls                         29       v2, v3 (v3 only adds the USER resource type)
CreateAcls                           30       v2, v3
DeleteAcls                           31       v2, v3
DescribeUserScramCredentials         50       v0 (KIP-554, Kafka 2.7+)
AlterUserScramCredentials            51       v0 (KIP-554, Kafka 2.7+)
===================================  =======  ===========================================

Every one is a *flexible* version (KIP-482): compact strings and arrays, a tagged-field buffer
closing each struct. The ACL RPCs' v2 is the oldest flexible version (Kafka 2.5) and 4.x
accepts 1-3 (v0 was removed in 4.0), so v2/v3 cover every broker that also has KIP-554.

A credential upsertion carries the *salted* password (KIP-554: the client salts and hashes,
the password never leaves it), but the salted password alone lets anyone authenticate as the
user (SCRAM's ClientKey derives from it), so its field type hides it from aiokafka's debug log
of every request (:class:`HiddenBytes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

__all__ = [
    "API_ALTER_USER_SCRAM_CREDENTIALS",
    "API_CREATE_ACLS",
    "API_DELETE_ACLS",
    "API_DESCRIBE_ACLS",
    "API_DESCRIBE_USER_SCRAM_CREDENTIALS",
    "AlterUserScramCredentialsRequest",
    "CreateAclsRequest",
    "DeleteAclsRequest",
    "DescribeAclsRequest",
    "DescribeUserScramCredentialsRequest",
    "HiddenBytes",
]

API_DESCRIBE_ACLS = 29
API_CREATE_ACLS = 30
API_DELETE_ACLS = 31
API_DESCRIBE_USER_SCRAM_CREDENTIALS = 50
API_ALTER_USER_SCRAM_CREDENTIALS = 51

_STRING = CompactString("utf-8")


class HiddenBytes(CompactBytes):
    """Compact bytes that never show in a repr (aiokafka logs every request at debug level)."""

    @classmethod
    def repr(cls, value: bytes | None) -> str:
        return "NULL" if value is None else "[hidden]"


# -- DescribeAcls (29) -------------------------------------------------------------------------

_ACL_DESCRIPTION = CompactArray(
    ("principal", _STRING),
    ("host", _STRING),
    ("operation", Int8),
    ("permission_type", Int8),
    ("tags", TaggedFields),
)


class DescribeAclsResponse_v2(Response):
    """DescribeAclsResponse v2: resources, each with its ACLs."""

    API_KEY = API_DESCRIBE_ACLS
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", _STRING),
        (
            "resources",
            CompactArray(
                ("resource_type", Int8),
                ("resource_name", _STRING),
                ("pattern_type", Int8),
                ("acls", _ACL_DESCRIPTION),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeAclsResponse_v3(DescribeAclsResponse_v2):
    """DescribeAclsResponse v3 (the same fields)."""

    API_VERSION = 3


_FILTER = (
    ("resource_type_filter", Int8),
    ("resource_name_filter", _STRING),
    ("pattern_type_filter", Int8),
    ("principal_filter", _STRING),
    ("host_filter", _STRING),
    ("operation", Int8),
    ("permission_type", Int8),
)


class DescribeAclsRequest_v2(RequestStruct):
    """DescribeAclsRequest v2: one filter (null name/principal/host match any)."""

    FLEXIBLE_VERSION = True
    API_KEY = API_DESCRIBE_ACLS
    API_VERSION = 2
    RESPONSE_TYPE = DescribeAclsResponse_v2
    SCHEMA = Schema(*_FILTER, ("tags", TaggedFields))


class DescribeAclsRequest_v3(DescribeAclsRequest_v2):
    """DescribeAclsRequest v3 (the same fields)."""

    API_VERSION = 3
    RESPONSE_TYPE = DescribeAclsResponse_v3


class DescribeAclsRequest(Request[DescribeAclsRequest_v2 | DescribeAclsRequest_v3]):
    """The ACLs that match one filter: a tuple of the seven filter fields, in JSON order."""

    API_KEY = API_DESCRIBE_ACLS

    def __init__(self, acl_filter: Sequence[Any]) -> None:
        self.fields = (*acl_filter, {})

    def build(
        self, request_struct_class: type[DescribeAclsRequest_v2 | DescribeAclsRequest_v3]
    ) -> DescribeAclsRequest_v2 | DescribeAclsRequest_v3:
        return request_struct_class(*self.fields)


# -- CreateAcls (30) ---------------------------------------------------------------------------


class CreateAclsResponse_v2(Response):
    """CreateAclsResponse v2: one result per creation, in order."""

    API_KEY = API_CREATE_ACLS
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(("error_code", Int16), ("error_message", _STRING), ("tags", TaggedFields)),
        ),
        ("tags", TaggedFields),
    )


class CreateAclsResponse_v3(CreateAclsResponse_v2):
    """CreateAclsResponse v3 (the same fields)."""

    API_VERSION = 3


class CreateAclsRequest_v2(RequestStruct):
    """CreateAclsRequest v2."""

    FLEXIBLE_VERSION = True
    API_KEY = API_CREATE_ACLS
    API_VERSION = 2
    RESPONSE_TYPE = CreateAclsResponse_v2
    SCHEMA = Schema(
        (
            "creations",
            CompactArray(
                ("resource_type", Int8),
                ("resource_name", _STRING),
                ("resource_pattern_type", Int8),
                ("principal", _STRING),
                ("host", _STRING),
                ("operation", Int8),
                ("permission_type", Int8),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class CreateAclsRequest_v3(CreateAclsRequest_v2):
    """CreateAclsRequest v3 (the same fields)."""

    API_VERSION = 3
    RESPONSE_TYPE = CreateAclsResponse_v3


class CreateAclsRequest(Request[CreateAclsRequest_v2 | CreateAclsRequest_v3]):
    """Create ACLs, each a tuple (type, name, pattern, principal, host, operation, permission)."""

    API_KEY = API_CREATE_ACLS

    def __init__(self, creations: Sequence[Sequence[Any]]) -> None:
        self.creations = [(*c, {}) for c in creations]

    def build(
        self, request_struct_class: type[CreateAclsRequest_v2 | CreateAclsRequest_v3]
    ) -> CreateAclsRequest_v2 | CreateAclsRequest_v3:
        return request_struct_class(self.creations, {})


# -- DeleteAcls (31) ---------------------------------------------------------------------------


class DeleteAclsResponse_v2(Response):
    """DeleteAclsResponse v2: per filter, its error and the ACLs it matched (and deleted)."""

    API_KEY = API_DELETE_ACLS
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "filter_results",
            CompactArray(
                ("error_code", Int16),
                ("error_message", _STRING),
                (
                    "matching_acls",
                    CompactArray(
                        ("error_code", Int16),
                        ("error_message", _STRING),
                        ("resource_type", Int8),
                        ("resource_name", _STRING),
                        ("pattern_type", Int8),
                        ("principal", _STRING),
                        ("host", _STRING),
                        ("operation", Int8),
                        ("permission_type", Int8),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DeleteAclsResponse_v3(DeleteAclsResponse_v2):
    """DeleteAclsResponse v3 (the same fields)."""

    API_VERSION = 3


class DeleteAclsRequest_v2(RequestStruct):
    """DeleteAclsRequest v2."""

    FLEXIBLE_VERSION = True
    API_KEY = API_DELETE_ACLS
    API_VERSION = 2
    RESPONSE_TYPE = DeleteAclsResponse_v2
    SCHEMA = Schema(
        ("filters", CompactArray(*_FILTER, ("tags", TaggedFields))), ("tags", TaggedFields)
    )


class DeleteAclsRequest_v3(DeleteAclsRequest_v2):
    """DeleteAclsRequest v3 (the same fields)."""

    API_VERSION = 3
    RESPONSE_TYPE = DeleteAclsResponse_v3


class DeleteAclsRequest(Request[DeleteAclsRequest_v2 | DeleteAclsRequest_v3]):
    """Delete the ACLs matching any of the filters (tuples of the seven filter fields)."""

    API_KEY = API_DELETE_ACLS

    def __init__(self, filters: Sequence[Sequence[Any]]) -> None:
        self.filters = [(*f, {}) for f in filters]

    def build(
        self, request_struct_class: type[DeleteAclsRequest_v2 | DeleteAclsRequest_v3]
    ) -> DeleteAclsRequest_v2 | DeleteAclsRequest_v3:
        return request_struct_class(self.filters, {})


# -- DescribeUserScramCredentials (50) ---------------------------------------------------------


class DescribeUserScramCredentialsResponse_v0(Response):
    """DescribeUserScramCredentialsResponse v0: per user, its mechanisms and iterations."""

    API_KEY = API_DESCRIBE_USER_SCRAM_CREDENTIALS
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", _STRING),
        (
            "results",
            CompactArray(
                ("user", _STRING),
                ("error_code", Int16),
                ("error_message", _STRING),
                (
                    "credential_infos",
                    CompactArray(
                        ("mechanism", Int8), ("iterations", Int32), ("tags", TaggedFields)
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeUserScramCredentialsRequest_v0(RequestStruct):
    """DescribeUserScramCredentialsRequest v0: ``users`` null for every user."""

    FLEXIBLE_VERSION = True
    API_KEY = API_DESCRIBE_USER_SCRAM_CREDENTIALS
    API_VERSION = 0
    RESPONSE_TYPE = DescribeUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("users", CompactArray(("name", _STRING), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class DescribeUserScramCredentialsRequest(Request[DescribeUserScramCredentialsRequest_v0]):
    """The SCRAM credentials of ``users`` (None: of every user)."""

    API_KEY = API_DESCRIBE_USER_SCRAM_CREDENTIALS

    def __init__(self, users: Sequence[str] | None) -> None:
        self.users: list[tuple[str, dict[int, bytes]]] | None = (
            None if users is None else [(name, {}) for name in users]
        )

    def build(
        self, request_struct_class: type[DescribeUserScramCredentialsRequest_v0]
    ) -> DescribeUserScramCredentialsRequest_v0:
        return request_struct_class(self.users, {})


# -- AlterUserScramCredentials (51) ------------------------------------------------------------


class AlterUserScramCredentialsResponse_v0(Response):
    """AlterUserScramCredentialsResponse v0: one result per affected user."""

    API_KEY = API_ALTER_USER_SCRAM_CREDENTIALS
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", _STRING),
                ("error_code", Int16),
                ("error_message", _STRING),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):
    """AlterUserScramCredentialsRequest v0: deletions (user, mechanism) and upsertions."""

    FLEXIBLE_VERSION = True
    API_KEY = API_ALTER_USER_SCRAM_CREDENTIALS
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(("name", _STRING), ("mechanism", Int8), ("tags", TaggedFields)),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", _STRING),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", HiddenBytes),
                ("salted_password", HiddenBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest(Request[AlterUserScramCredentialsRequest_v0]):
    """Delete (name, mechanism) credentials and upsert (name, mechanism, iterations, salt,
    salted password) ones."""

    API_KEY = API_ALTER_USER_SCRAM_CREDENTIALS

    def __init__(
        self,
        *,
        deletions: Sequence[tuple[str, int]] = (),
        upsertions: Sequence[tuple[str, int, int, bytes, bytes]] = (),
    ) -> None:
        self.deletions: list[tuple[Any, ...]] = [(*d, {}) for d in deletions]
        self.upsertions: list[tuple[Any, ...]] = [(*u, {}) for u in upsertions]

    def __repr__(self) -> str:
        users = [d[0] for d in self.deletions] + [u[0] for u in self.upsertions]
        return f"<AlterUserScramCredentialsRequest users={users!r}>"

    def build(
        self, request_struct_class: type[AlterUserScramCredentialsRequest_v0]
    ) -> AlterUserScramCredentialsRequest_v0:
        return request_struct_class(self.deletions, self.upsertions, {})

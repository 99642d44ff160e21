"""Confluent REST error codes ↔ eventplatform errors, on the client and on the server side."""

from __future__ import annotations

import pytest

from eventplatform.errors import (
    EventPlatformError,
    IncompatibleSchema,
    InvalidSchema,
    KafkaError,
    OperationNotPermitted,
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
    SchemaParseError,
    SettingNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from eventplatform.registry.rest_client import error_from_response
from eventplatform.registry.rest_server import confluent_error

REQUEST = "GET http://registry:8081/subjects/orders-value/versions/latest"


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, 40401, SubjectNotFound),
        (404, 40402, VersionNotFound),
        (404, 40403, SchemaNotFound),
        (404, 40404, SubjectNotFound),
        (404, 40406, VersionNotFound),
        (422, 42201, InvalidSchema),
        (422, 422, InvalidSchema),
        (422, 42202, VersionNotFound),
        (404, 40405, RegistryError),
        (404, 40407, RegistryError),
        (422, 42203, RegistryError),
        (404, 40408, SettingNotFound),
        (404, 40409, SettingNotFound),
        (422, 42204, RegistryError),
        (422, 42205, OperationNotPermitted),
        (409, 409, IncompatibleSchema),
        (500, 50001, RegistryUnavailable),
        (500, 50002, RegistryUnavailable),
        (500, 50003, RegistryUnavailable),
        (502, 502, RegistryUnavailable),
        (429, 429, RegistryUnavailable),
        (401, 401, RegistryError),
    ],
)
def test_confluent_code_maps_to_error(
    status: int, code: int, expected: type[RegistryError]
) -> None:
    error = error_from_response(
        status, {"error_code": code, "message": "the server says"}, request=REQUEST
    )

    assert type(error) is expected
    assert error.error_code == code
    assert "the server says" in str(error)
    assert REQUEST in str(error)


def test_only_unavailability_is_retriable() -> None:
    down = error_from_response(500, {"error_code": 50001, "message": "store"}, request=REQUEST)
    missing = error_from_response(404, {"error_code": 40401, "message": "x"}, request=REQUEST)

    assert down.retriable
    assert not missing.retriable


def test_confluent_incompatibility_message_is_kept_whole() -> None:
    message = (
        'Schema being registered is incompatible with an earlier schema for subject "s", '
        "details: [{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'…'}]"
    )

    error = error_from_response(409, {"error_code": 409, "message": message}, request=REQUEST)

    assert isinstance(error, IncompatibleSchema)
    assert error.messages == [message]


def test_incompatibility_details_survive_the_server_and_client() -> None:
    details = [
        "reader field 'amount' has no default and is missing from version 2",
        "reader type 'string' does not match writer type 'int' at /fields/0",
    ]
    status, body = confluent_error(
        IncompatibleSchema("refused", messages=details), subject="orders-value"
    )

    error = error_from_response(status, body, request=REQUEST)

    assert isinstance(error, IncompatibleSchema)
    assert error.messages == details
    assert 'for subject "orders-value"' in str(error)


def test_router_404_points_at_the_url_prefix() -> None:
    error = error_from_response(404, "<html>Not Found</html>", request=REQUEST)

    assert type(error) is RegistryError
    assert error.error_code == 404
    assert "check the registry URL" in str(error)
    assert "<html>Not Found</html>" in str(error)


def test_body_without_code_uses_the_status() -> None:
    error = error_from_response(503, None, request=REQUEST)

    assert isinstance(error, RegistryUnavailable)
    assert error.error_code == 503
    assert "HTTP 503" in str(error)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (SubjectNotFound("s"), 404, 40401),
        (VersionNotFound("v"), 404, 40402),
        (SchemaNotFound("id"), 404, 40403),
        (SubjectNotFound("soft-deleted", error_code=40404), 404, 40404),
        (RegistryError("permanent before soft", error_code=40405), 404, 40405),
        (RegistryError("version permanent before soft", error_code=40407), 404, 40407),
        (VersionNotFound("bad version", error_code=42202), 422, 42202),
        (IncompatibleSchema("no"), 409, 409),
        (InvalidSchema("bad"), 422, 42201),
        (SchemaParseError("bad json"), 422, 42201),
        (RegistryUnavailable("down"), 500, 50001),
        (KafkaError("broker gone"), 500, 50001),
        (RegistryError("refused"), 422, 422),
    ],
)
def test_error_maps_to_confluent_status_and_code(
    error: EventPlatformError, status: int, code: int
) -> None:
    assert confluent_error(error) == (status, {"error_code": code, "message": str(error)})


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (SubjectNotFound("s"), 404, 40401),
        (VersionNotFound("v"), 404, 40402),
        (SchemaNotFound("id"), 404, 40403),
        (IncompatibleSchema("no", messages=["field"]), 409, 409),
        (InvalidSchema("bad"), 422, 42201),
        (OperationNotPermitted("read-only"), 422, 42205),
        (SettingNotFound("no level"), 404, 40408),
        (SettingNotFound("no mode", error_code=40409), 404, 40409),
        (RegistryUnavailable("down"), 500, 50001),
    ],
)
def test_server_and_client_agree_on_each_error(
    error: RegistryError, status: int, code: int
) -> None:
    answer, body = confluent_error(error)

    assert (answer, body["error_code"]) == (status, code)
    assert type(error_from_response(status, body, request=REQUEST)) is type(error)

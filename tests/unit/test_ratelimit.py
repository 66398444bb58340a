"""Tables for the pure decisions: budget headers, retry waits, status -> error, quick-retry rule."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from shared import errors as e
from shared.harvest.ratelimit import (
    DEFAULT_RATE_LIMIT_WAIT_S,
    MAX_RETRY_AFTER_S,
    RateLimitInfo,
    error_for_response,
    parse_rate_limit,
    retry_after_seconds,
    should_retry_quickly,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"X-RateLimit-Limit": "75"}, RateLimitInfo(75, None, None)),
        (
            {"X-RateLimit-Limit": "75", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(NOW + 12)},
            RateLimitInfo(75, 0, NOW + 12),
        ),
        ({"x-ratelimit-remaining": "3"}, RateLimitInfo(None, 3, None)),
        ({"X-RateLimit-Reset": "20"}, RateLimitInfo(None, None, NOW + 20)),  # a delta, not an epoch
        ({"X-RateLimit-Limit": "abc", "X-RateLimit-Remaining": "2"}, RateLimitInfo(None, 2, None)),
    ],
)
def test_parse_rate_limit(headers: dict[str, str], expected: RateLimitInfo | None) -> None:
    assert parse_rate_limit(headers, NOW) == expected


HTTP_DATE = email.utils.formatdate(NOW + 7, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "5"}, 5.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"Retry-After": HTTP_DATE}, 7.0),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "99999"}, MAX_RETRY_AFTER_S),
        ({"Retry-After": "soon", "X-RateLimit-Reset": str(NOW + 9)}, 9.0),
        ({"X-RateLimit-Reset": str(NOW + 11)}, 11.0),
        ({"X-RateLimit-Reset": str(NOW - 11)}, 0.0),
        ({}, 4.0),
        ({"Retry-After": "garbage"}, 4.0),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float) -> None:
    assert retry_after_seconds(headers, NOW, default=4.0) == pytest.approx(expected, abs=0.01)


def _resp(status: int, body: object = None, headers: dict[str, str] | None = None, text: str | None = None):
    if text is not None:
        return httpx.Response(status, text=text, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (200, [], None),
        (201, {"id": 1}, None),
        (201, {"id": 1, "errors": []}, None),
        (201, {"errors": [{"message": "boom"}]}, e.UnexpectedResponseError),
        (400, {"message": "bad"}, e.InvalidRequestError),
        (422, {"message": "bad"}, e.InvalidRequestError),
        (401, {"message": "expired"}, e.AuthenticationError),
        (403, {"message": "no"}, e.PermissionDeniedError),
        (404, {"message": "Resource not found"}, e.NotFoundError),
        (408, None, e.ServerError),
        (409, {"message": "conflict"}, e.PermanentError),
        (429, None, e.RateLimitedError),
        (500, None, e.ServerError),
        (503, {"message": "down"}, e.ServerError),
    ],
)
def test_error_for_status(status: int, body: object, cls: type[e.HarvestError] | None) -> None:
    err = error_for_response(_resp(status, body), "post", "/v3/candidates", now=NOW)
    if cls is None:
        assert err is None
        return
    assert type(err) is cls
    assert (err.status, err.method, err.path) == (status, "POST", "/v3/candidates")


def test_validation_error_carries_field_errors_and_request_id() -> None:
    body = {
        "message": "Validation error",
        "errors": [{"field": "first_name", "message": "is required"}, {"message": "general"}],
    }
    err = error_for_response(_resp(422, body, {"X-Request-Id": "req-9"}), "POST", "/v3/candidates")
    assert isinstance(err, e.InvalidRequestError)
    assert err.message == "Validation error"
    assert err.field_errors == [e.FieldError("first_name", "is required"), e.FieldError(None, "general")]
    assert err.request_id == "req-9"
    assert "first_name: is required" in str(err)


def test_message_falls_back_to_first_error_then_reason() -> None:
    err = error_for_response(_resp(422, {"errors": [{"message": "x bad"}]}), "GET", "/v3/jobs")
    assert err is not None and err.message == "x bad"
    err = error_for_response(_resp(404, text="<html>"), "GET", "/v3/nope")
    assert err is not None and err.message == "Not Found"


@pytest.mark.parametrize(
    ("body", "text", "scope"),
    [
        ({"message": "Missing required scope: harvest:candidates:create"}, None, "harvest:candidates:create"),
        (
            {"errors": [{"message": "needs harvest:applied_candidate_tags:create"}]},
            None,
            "harvest:applied_candidate_tags:create",
        ),
        ({"message": "forbidden"}, None, None),
        (None, "scope harvest:notes:create missing", "harvest:notes:create"),
    ],
)
def test_forbidden_names_missing_scope(body: object, text: str | None, scope: str | None) -> None:
    err = error_for_response(_resp(403, body, text=text), "POST", "/v3/x")
    assert isinstance(err, e.PermissionDeniedError)
    assert err.missing_scope == scope


def test_rate_limited_has_retry_after() -> None:
    err = error_for_response(_resp(429, None, {"Retry-After": "12"}), "GET", "/v3/jobs", now=NOW)
    assert isinstance(err, e.RateLimitedError)
    assert err.retry_after_s == 12.0
    assert not err.outcome_unknown
    bare = error_for_response(_resp(429), "POST", "/v3/jobs", now=NOW)
    assert isinstance(bare, e.RateLimitedError) and bare.retry_after_s == DEFAULT_RATE_LIMIT_WAIT_S


def test_error_never_echoes_the_request_body() -> None:
    request = httpx.Request("POST", "https://h/v3/candidates", json={"email": "ada@example.org"})
    response = httpx.Response(422, json={"message": "invalid"}, request=request)
    err = error_for_response(response, "POST", "/v3/candidates")
    assert err is not None and "ada@example.org" not in str(err)


@pytest.mark.parametrize(
    ("exc", "method", "expected"),
    [
        (e.ServerError("x", status=500), "GET", True),
        (e.HarvestTimeoutError("x"), "get", True),
        (e.HarvestConnectionError("x"), "GET", True),
        (e.ServerError("x", status=500), "POST", False),
        (e.HarvestTimeoutError("x"), "POST", False),
        (e.HarvestConnectionError("x"), "PATCH", False),
        (e.RateLimitedError("x", retry_after_s=1), "GET", False),
        (e.ThrottledError("x", retry_after_s=1), "GET", False),
        (e.NotFoundError("x"), "GET", False),
        (e.InvalidRequestError("x"), "GET", False),
        (ValueError("x"), "GET", False),
    ],
)
def test_should_retry_quickly(exc: BaseException, method: str, expected: bool) -> None:
    assert should_retry_quickly(exc, method) is expected

"""Every error of the HTTP API as one JSON shape: RFC 9457 problem details (``application/problem+json``).

``{"type": "https://greenhouse-export.dev/problems/<slug>", "title", "status", "detail"}`` and, when they
apply, ``field`` (the request field at fault, ``target.job_id``), ``line`` and ``profile_id`` (a profile that
could not be read), ``errors`` (every problem when there are several) and ``batch_id``. The detail is one line
for a person; ``type`` is what a program branches on.

:class:`Problem` is raised by routes and dependencies. The handlers installed by :func:`install` turn into
problems: FastAPI's request validation (422 naming the field), Starlette's HTTP errors (404 route, 405...),
our own error tree (:mod:`shared.errors`: a user error is 4xx, an unavailable service 503, Greenhouse's
trouble 502/503), the store's and Redis's exceptions (503), and anything else (500, logged without detail).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.connections.tenancy import BatchNotFoundError, TenantNotFoundError
from shared.errors import (
    ConfigurationError,
    ConflictError,
    ConnectCheckError,
    ConnectionNotFoundError,
    ConsentError,
    ExporterError,
    HarvestError,
    PublishFailedError,
    ReauthRequiredError,
    RetryableError,
    TargetNotAllowedError,
    UnavailableError,
    UserError,
)
from shared.resources import translate_error

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://greenhouse-export.dev/problems/"
MEDIA_TYPE = "application/problem+json"
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


class ProblemDocument(BaseModel):
    """An RFC 9457 problem details document (the schema of every error answer)."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="A URI naming the kind of problem: branch on it.")
    title: str
    status: int
    detail: str | None = None
    field: str | None = Field(default=None, description="The request field at fault, e.g. target.job_id.")
    line: int | None = Field(default=None, description="The profile line (NDJSON) or position (JSON) at fault.")
    profile_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(default=None, description="Every problem, when there are several.")


class Problem(HTTPException):
    """An error answer: ``status``, a ``slug`` for its ``type``, a one-line ``detail``, and extra members."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.slug = slug or _slug(status)
        self.title = title or _TITLES.get(status, "Error")
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def document(self) -> dict[str, Any]:
        """The problem details document."""
        return {
            "type": PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status_code,
            "detail": self.detail,
            **self.extra,
        }

    def response(self) -> JSONResponse:
        """The answer carrying this problem."""
        return JSONResponse(self.document(), status_code=self.status_code, headers=self.headers, media_type=MEDIA_TYPE)


def _slug(status: int) -> str:
    return _TITLES.get(status, "error").lower().replace(" ", "-")


def not_found(what: str) -> Problem:
    """404 for ``what`` (say the same whether it does not exist or is someone else's)."""
    return Problem(404, f"{what} not found", slug="not-found")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem answers with these statuses."""
    return {
        status: {
            "description": _TITLES.get(status, "Error"),
            "content": {MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        for status in statuses
    }


# --- mapping errors to problems --------------------------------------------------------------------------------


def field_of(loc: tuple[int | str, ...] | list[int | str]) -> str | None:
    """``target.job_id`` from a validation error's location (``("body", "target", "job_id")``)."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


def validation_problem(errors: list[dict[str, Any]] | Any) -> Problem:
    """422 naming the first field at fault (every one in ``errors``); never the input values."""
    listed = [
        {
            # a JSON syntax error's location is a character offset, not a field
            "field": None if e.get("type") == "json_invalid" else field_of(tuple(e.get("loc", ()))),
            "in": e["loc"][0] if e.get("loc") else None,
            "message": str(e.get("msg", "invalid")).removeprefix("Value error, "),
        }
        for e in errors
    ]
    first = listed[0] if listed else {"field": None, "message": "invalid request"}
    where = f"{first['field']}: " if first["field"] else ""
    return Problem(
        422,
        f"{where}{first['message']}",
        slug="validation",
        field=first["field"],
        errors=listed,
    )


def problem_for(exc: BaseException) -> Problem | None:
    """The problem an error of ours (or of the store, Redis, the broker) stands for; None for anything else."""
    known = translate_error(exc)
    if known is None:
        return None
    text = str(known)
    if isinstance(known, ConnectionNotFoundError | BatchNotFoundError | TenantNotFoundError):
        return Problem(404, text, slug="not-found")
    if isinstance(known, ConfigurationError):
        log.error("configuration error: %s", text)
        return Problem(500, "the service is misconfigured; its operator is told in its log", slug="configuration")
    if isinstance(known, ConflictError):
        return Problem(409, text, slug="conflict")
    if isinstance(known, TargetNotAllowedError):
        return Problem(422, text, slug="target-not-allowed", field="target")
    if isinstance(known, ConnectCheckError):
        return Problem(422, text, slug="connect-check-failed")
    if isinstance(known, ConsentError):
        return Problem(400, text, slug="consent-failed")
    if isinstance(known, UserError):
        return Problem(400, text, slug="bad-request")
    if isinstance(known, PublishFailedError):
        return Problem(503, text, slug="publish-failed", batch_id=known.batch_id, headers={"Retry-After": "30"})
    if isinstance(known, UnavailableError):
        return Problem(503, text, slug="unavailable", headers={"Retry-After": "10"})
    if isinstance(known, ReauthRequiredError):
        return Problem(409, text, slug="needs-reauth")
    if isinstance(known, RetryableError):
        wait = getattr(known, "retry_after_s", None) or 10
        return Problem(503, text, slug="greenhouse-unavailable", headers={"Retry-After": str(max(1, round(wait)))})
    if isinstance(known, HarvestError):
        return Problem(502, text, slug="greenhouse-refused")
    if isinstance(known, ExporterError):  # an internal signal escaped: not the caller's fault
        return None
    return None  # pragma: no cover


# --- handlers ---------------------------------------------------------------------------------------------------


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return exc.response()


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_problem(exc.errors()).response()


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:  # Starlette lists the first matching route's methods only: list the path's
        allowed = allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    return Problem(exc.status_code, detail, headers=headers or None).response()


def allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document gives the request's path (HEAD with GET), for a 405's ``Allow``."""
    app = request.app
    templates: list[tuple[re.Pattern[str], int, list[str]]] | None = getattr(app.state, "allow_templates", None)
    if templates is None:
        templates = []
        for path, item in app.openapi().get("paths", {}).items():
            pattern = "".join(
                "[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]+\})", path)
            )
            methods = [m.upper() for m in item if m in _METHODS]
            if "GET" in methods:
                methods.append("HEAD")
            templates.append((re.compile(pattern), path.count("{"), methods))
        app.state.allow_templates = templates
    matching = [(params, methods) for pattern, params, methods in templates if pattern.fullmatch(request.url.path)]
    fewest = min((params for params, _ in matching), default=0)  # /connections/partner over /connections/{name}
    return sorted({m for params, methods in matching if params == fewest for m in methods})


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    problem = problem_for(exc)
    if problem is None:
        # The route (method and path template) and the error's type only: its message may carry input values.
        route = getattr(request.scope.get("route"), "path", request.url.path)
        log.error("internal error in %s %s: %s", request.method, route, type(exc).__name__, exc_info=exc)
        problem = Problem(500, "internal error; the service's log has the detail", slug="internal")
    elif problem.status_code >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, problem.detail)
    return problem.response()


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem document."""
    import kombu.exceptions
    import redis
    import sqlalchemy.exc

    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    for error in (ExporterError, sqlalchemy.exc.SQLAlchemyError, redis.RedisError, kombu.exceptions.OperationalError):
        app.add_exception_handler(error, _on_error)
    app.add_exception_handler(Exception, _on_error)

"""``create_app(res)``: the HTTP API as one FastAPI application over the process's resources.

Every route is under ``/v1``; the OpenAPI 3.1 document is at ``/openapi.json`` (no interactive docs page: the
document is the reference, and every page served is one more thing to secure). Errors are problem details
(:mod:`producer.web.problems`), and the document says so: every operation's error answers, the validation
422 included, are ``application/problem+json``. Middleware, outermost first: the access log (path only), the
body size limits.

``ghexport api`` builds the resources once per process and serves this app with uvicorn; a test passes its own
resources (SQLite store, sandbox transport) and talks to the app through ``fastapi.testclient``.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from producer.web import (
    api_keys,
    batches,
    callbacks,
    connections,
    exports,
    greenhouse,
    health,
    problems,
    profiles,
    tenants,
)
from producer.web.middleware import AccessLog, BodyLimit
from shared.resources import Resources

TITLE = "greenhouse-export API"
DESCRIPTION = (
    "Export sourced candidate profiles into Greenhouse: tenants, connections, idempotent exports, batch and "
    "profile status, signed callbacks. Authenticate with `Authorization: Bearer <API key>`. "
    "Errors are RFC 9457 problem details. Reference: docs/http-api.md."
)


def version() -> str:
    """The installed distribution's version (the API's ``info.version``)."""
    try:
        return metadata.version("greenhouse-export")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "0.0.0"


def create_app(res: Resources) -> FastAPI:
    """The HTTP API over ``res`` (left open: the caller owns and closes it)."""
    app = FastAPI(
        title=TITLE,
        version=version(),
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.res = res
    problems.install(app)
    for module in (health, tenants, api_keys, connections, exports, batches, profiles, callbacks, greenhouse):
        app.include_router(module.router, prefix="/v1")
    app.include_router(connections.consent_router, prefix="/v1")
    api = res.settings.api
    app.add_middleware(BodyLimit, max_body_bytes=api.max_body_bytes, max_json_bytes=api.max_json_bytes)
    app.add_middleware(AccessLog)  # added last: outermost, so it sees the 413s too

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document
    return app


def _document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document: FastAPI's, with problem details as every error answer and the export body's schema."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (problems.ProblemDocument, exports.ExportRequest):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[schema.get("title", model.__name__)] = schema
    schemas["ExportRequest"] = schemas.pop(exports.ExportRequest.model_config.get("title") or "ExportRequest")
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    problem = {
        "description": "A problem (RFC 9457 problem details)",
        "content": {problems.MEDIA_TYPE: {"schema": {"$ref": problems.PROBLEM_SCHEMA_REF}}},
    }
    for item in doc.get("paths", {}).values():
        for method, operation in item.items():
            if method not in ("get", "put", "post", "delete", "patch", "head", "options"):
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {**problem, "description": "The request is invalid: the problem names the field"}
            responses.setdefault("default", problem)
    return doc

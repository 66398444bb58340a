"""The HTTP API (``ghexport api``): FastAPI on uvicorn, for the platform's backend in any language.

Read top down: :mod:`~producer.web.app` (``create_app(res)``: the routers under ``/v1``, the middleware, the
OpenAPI 3.1 document at ``/openapi.json``) > one router per area (:mod:`~producer.web.health`,
:mod:`~producer.web.tenants`, :mod:`~producer.web.api_keys`, :mod:`~producer.web.connections`,
:mod:`~producer.web.exports`, :mod:`~producer.web.batches`, :mod:`~producer.web.profiles`,
:mod:`~producer.web.callbacks`, :mod:`~producer.web.greenhouse`) > :mod:`~producer.web.deps` (who calls: the
API key and its tenant) | :mod:`~producer.web.middleware` (body size limits, the access log) >
:mod:`~producer.web.problems` (every error as RFC 9457 problem details).

Routes hold no export logic: they check who calls and what it owns, then call :mod:`producer.api` and
:mod:`shared.connections` as the CLI does, and shape the answer. ``docs/http-api.md`` is the reference.
"""

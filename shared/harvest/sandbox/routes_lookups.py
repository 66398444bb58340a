"""Read-only lookups: users, sources, jobs, openings, close reasons, prospect pools and stages,
custom fields and their options.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from shared.harvest.sandbox.routing import Ctx, Route, paginate
from shared.harvest.sandbox.state import Record
from shared.harvest.sandbox.validate import invalid, parse_bool, parse_choice, parse_ids

JOB_STATUSES = ("open", "closed", "draft")


def _rows(table: dict[int, Record], keep: Callable[[Record], bool] = lambda r: True) -> list[Record]:
    return [dict(r) for r in table.values() if keep(r)]


def list_users(ctx: Ctx) -> httpx.Response:
    """``GET /v3/users``: ``primary_email`` matches ignoring case (callers compare exactly)."""

    def select(params: dict[str, str]) -> list[Record]:
        email = params.get("primary_email")
        return _rows(ctx.state.users, lambda u: email is None or u["primary_email"].lower() == email.lower())

    return paginate(ctx, ("primary_email",), select)


def list_sources(ctx: Ctx) -> httpx.Response:
    """``GET /v3/sources``: ``{id, name, type: {id, name}}``."""
    return paginate(ctx, (), lambda params: _rows(ctx.state.sources))


def list_jobs(ctx: Ctx) -> httpx.Response:
    """``GET /v3/jobs``: ``status`` open|closed|draft."""

    def select(params: dict[str, str]) -> list[Record]:
        status = parse_choice("status", params["status"], JOB_STATUSES) if "status" in params else None
        return _rows(ctx.state.jobs, lambda j: status is None or j["status"] == status)

    return paginate(ctx, ("status",), select)


def list_openings(ctx: Ctx) -> httpx.Response:
    """``GET /v3/openings``: ``job_ids``, ``open``."""

    def select(params: dict[str, str]) -> list[Record]:
        jids = set(parse_ids("job_ids", params["job_ids"])) if "job_ids" in params else None
        open_ = parse_bool("open", params["open"]) if "open" in params else None
        return _rows(
            ctx.state.openings,
            lambda o: (jids is None or o["job_id"] in jids) and (open_ is None or o["open"] == open_),
        )

    return paginate(ctx, ("job_ids", "open"), select)


def list_close_reasons(ctx: Ctx) -> httpx.Response:
    """``GET /v3/close_reasons``."""
    return paginate(ctx, (), lambda params: _rows(ctx.state.close_reasons))


def list_pools(ctx: Ctx) -> httpx.Response:
    """``GET /v3/prospect_pools``: ``active``."""

    def select(params: dict[str, str]) -> list[Record]:
        active = parse_bool("active", params["active"]) if "active" in params else None
        return _rows(ctx.state.pools, lambda p: active is None or p["active"] == active)

    return paginate(ctx, ("active",), select)


def list_stages(ctx: Ctx) -> httpx.Response:
    """``GET /v3/prospect_pool_stages``: ``prospect_pool_ids``."""

    def select(params: dict[str, str]) -> list[Record]:
        raw = params.get("prospect_pool_ids")
        pids = set(parse_ids("prospect_pool_ids", raw)) if raw is not None else None
        return _rows(ctx.state.stages, lambda s: pids is None or s["prospect_pool_id"] in pids)

    return paginate(ctx, ("prospect_pool_ids",), select)


def list_custom_fields(ctx: Ctx) -> httpx.Response:
    """``GET /v3/custom_fields``: ``field_type``."""

    def select(params: dict[str, str]) -> list[Record]:
        kind = params.get("field_type")
        return [dict(f) for f in ctx.state.custom_fields.values() if kind is None or f["field_type"] == kind]

    return paginate(ctx, ("field_type",), select)


def list_options(ctx: Ctx) -> httpx.Response:
    """``GET /v3/custom_field_options``: ``custom_field_key`` required and known; ``active``."""

    def select(params: dict[str, str]) -> list[Record]:
        key = params.get("custom_field_key")
        if key is None:
            raise invalid([("custom_field_key", "is required")])
        if key not in ctx.state.custom_fields:
            raise invalid([("custom_field_key", f"unknown custom field key {key}")])
        active = parse_bool("active", params["active"]) if "active" in params else None
        return _rows(
            ctx.state.options,
            lambda o: o["custom_field_key"] == key and (active is None or o["active"] == active),
        )

    return paginate(ctx, ("custom_field_key", "active"), select)


ROUTES = [
    Route("GET", "/v3/users", "harvest:users:list", list_users),
    Route("GET", "/v3/sources", "harvest:sources:list", list_sources),
    Route("GET", "/v3/jobs", "harvest:jobs:list", list_jobs),
    Route("GET", "/v3/openings", "harvest:openings:list", list_openings),
    Route("GET", "/v3/close_reasons", "harvest:close_reasons:list", list_close_reasons),
    Route("GET", "/v3/prospect_pools", "harvest:prospect_pools:list", list_pools),
    Route("GET", "/v3/prospect_pool_stages", "harvest:prospect_pool_stages:list", list_stages),
    Route("GET", "/v3/custom_fields", "harvest:custom_fields:list", list_custom_fields),
    Route("GET", "/v3/custom_field_options", "harvest:custom_field_options:list", list_options),
]

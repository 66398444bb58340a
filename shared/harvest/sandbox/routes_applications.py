"""Applications: the rules shared by ``POST /v3/candidates`` (its ``application`` member) and
``POST /v3/applications``, plus the ``/v3/applications`` routes.
"""

from __future__ import annotations

from typing import Any

import httpx

from shared.harvest.sandbox.routing import Ctx, Route, paginate, reply
from shared.harvest.sandbox.state import Record, State, iso
from shared.harvest.sandbox.validate import F, check_body, invalid, not_found, parse_ids

REFERRER = F("obj", fields={"type": F("enum", True, choices=("id", "email", "outside")), "value": F("scalar", True)})
JOB_APPLICATION = {
    "job_id": F("int", True),
    "source_id": F("int"),
    "referrer": REFERRER,
    "recruiter_id": F("int"),
    "coordinator_id": F("int"),
}
PROSPECT_APPLICATION = {
    "prospect": F("true", True),
    "job_ids": F("list", item=F("int")),
    "source_id": F("int"),
    "referrer": REFERRER,
    "prospect_pool_id": F("int"),
    "prospect_pool_stage_id": F("int"),
    "prospect_owner_id": F("int"),
}
CREATE_APPLICATION = {
    **{k: v for k, v in JOB_APPLICATION.items() if k != "job_id"},
    **{k: v for k, v in PROSPECT_APPLICATION.items() if k != "prospect"},
    "candidate_id": F("int", True),
    "job_id": F("int"),
    "prospect": F("bool"),
}
PROSPECT_ONLY = ("job_ids", "prospect_pool_id", "prospect_pool_stage_id", "prospect_owner_id")
UPDATE_APPLICATION = {
    "source_id": F("int"),
    "referrer": REFERRER,
    "recruiter_id": F("int"),
    "coordinator_id": F("int"),
    "prospect_pool_id": F("int"),
    "prospect_pool_stage_id": F("int"),
}


def _user_errors(
    state: State, app: dict[str, Any], names: tuple[str, ...], prefix: str
) -> list[tuple[str | None, str]]:
    errors: list[tuple[str | None, str]] = []
    for name in names:
        uid = app.get(name)
        if uid is None:
            continue
        if uid not in state.users:
            errors.append((prefix + name, f"user {uid} does not exist"))
        elif state.active_user(uid) is None:
            errors.append((prefix + name, f"user {uid} is deactivated"))
    return errors


def semantic_errors(
    state: State, app: dict[str, Any], prefix: str, candidate_id: int | None
) -> list[tuple[str | None, str]]:
    """Reference checks of an application (already shape-checked); ``prefix`` like ``application.``."""
    errors: list[tuple[str | None, str]] = []
    if app.get("prospect") is True:
        for jid in app.get("job_ids") or []:
            job = state.jobs.get(jid)
            if job is None:
                errors.append((prefix + "job_ids", f"job {jid} does not exist"))
            elif job["status"] == "closed":
                errors.append((prefix + "job_ids", f"job {jid} is closed"))
        pool_id, stage_id = app.get("prospect_pool_id"), app.get("prospect_pool_stage_id")
        if pool_id is not None and pool_id not in state.pools:
            errors.append((prefix + "prospect_pool_id", f"prospect pool {pool_id} does not exist"))
        if stage_id is not None:
            stage = state.stages.get(stage_id)
            if pool_id is None:
                errors.append((prefix + "prospect_pool_stage_id", "requires prospect_pool_id"))
            elif stage is None or stage["prospect_pool_id"] != pool_id:
                msg = f"stage {stage_id} does not belong to prospect pool {pool_id}"
                errors.append((prefix + "prospect_pool_stage_id", msg))
        errors += _user_errors(state, app, ("prospect_owner_id",), prefix)
    else:
        jid = app.get("job_id")
        job = state.jobs.get(jid) if isinstance(jid, int) else None
        if job is None:
            errors.append((prefix + "job_id", f"job {jid} does not exist"))
        elif job["status"] != "open":
            errors.append((prefix + "job_id", f"job {jid} is not open"))
        elif candidate_id is not None and any(
            a["candidate_id"] == candidate_id and a["job_id"] == jid and a["status"] == "active"
            for a in state.applications.values()
        ):
            errors.append((prefix + "job_id", "candidate already has an application for this job"))
        errors += _user_errors(state, app, ("recruiter_id", "coordinator_id"), prefix)
    source_id = app.get("source_id")
    if source_id is not None and source_id not in state.sources:
        errors.append((prefix + "source_id", f"source {source_id} does not exist"))
    referrer = app.get("referrer")
    if isinstance(referrer, dict) and referrer.get("type") == "id":
        value = referrer.get("value")
        uid = int(value) if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) else None
        if uid is None or uid not in state.users:
            errors.append((prefix + "referrer.value", f"user {value} does not exist"))
    return errors


def build(state: State, candidate_id: int, app: dict[str, Any]) -> Record:
    """Store and return a new application record (inputs already validated)."""
    now = iso(state.now())
    prospect = app.get("prospect") is True
    referrer = app.get("referrer") or {}
    record: Record = {
        "id": state.next_id(),
        "candidate_id": candidate_id,
        "job_id": None if prospect else app["job_id"],
        "prospect": prospect,
        "prospective_job_ids": list(app.get("job_ids") or []) if prospect else [],
        "status": "active",
        "source_id": app.get("source_id"),
        "referrer_id": int(referrer["value"]) if referrer.get("type") == "id" else None,
        "recruiter_id": app.get("recruiter_id"),
        "coordinator_id": app.get("coordinator_id"),
        "prospect_pool_id": app.get("prospect_pool_id"),
        "prospect_pool_stage_id": app.get("prospect_pool_stage_id"),
        "prospect_owner_id": app.get("prospect_owner_id"),
        "created_at": now,
        "updated_at": now,
    }
    state.applications[record["id"]] = record
    return record


def list_applications(ctx: Ctx) -> httpx.Response:
    """``GET /v3/applications``: ``candidate_ids``, ``job_ids``; applications of unseen candidates hidden."""

    def select(params: dict[str, str]) -> list[Record]:
        cids = set(parse_ids("candidate_ids", params["candidate_ids"])) if "candidate_ids" in params else None
        jids = set(parse_ids("job_ids", params["job_ids"])) if "job_ids" in params else None
        delay = ctx.config.visibility_delay_s
        return [
            dict(a)
            for a in ctx.state.applications.values()
            if ctx.state.visible(a["candidate_id"], delay)
            and (cids is None or a["candidate_id"] in cids)
            and (jids is None or a["job_id"] in jids or jids & set(a["prospective_job_ids"]))
        ]

    return paginate(ctx, ("candidate_ids", "job_ids"), select)


def create_application(ctx: Ctx) -> httpx.Response:
    """``POST /v3/applications``: a job or prospect application for an existing candidate."""
    ctx.no_query()
    body = ctx.body()
    check_body(body, CREATE_APPLICATION)
    errors: list[tuple[str | None, str]] = []
    if body.get("prospect") is True:
        if body.get("job_id") is not None:
            errors.append(("job_id", "not allowed for a prospect application; use job_ids"))
    else:
        if body.get("job_id") is None:
            errors.append(("job_id", "is required"))
        errors += [(k, "only allowed when prospect is true") for k in PROSPECT_ONLY if k in body]
    if errors:
        raise invalid(errors)
    candidate_id = body["candidate_id"]
    if candidate_id not in ctx.state.candidates:
        raise invalid([("candidate_id", f"candidate {candidate_id} does not exist")])
    errors = semantic_errors(ctx.state, body, "", candidate_id)
    if errors:
        raise invalid(errors)
    return reply(201, dict(build(ctx.state, candidate_id, body)))


def update_application(ctx: Ctx) -> httpx.Response:
    """``PATCH /v3/applications/{id}``: source, referrer, recruiter, coordinator, pool and stage."""
    ctx.no_query()
    app = ctx.state.applications.get(ctx.ids["id"])
    if app is None:
        raise not_found("application", ctx.ids["id"])
    body = ctx.body()
    check_body(body, UPDATE_APPLICATION)
    merged = {**app, **body, "prospect": app["prospect"], "job_ids": []}
    errors = [
        e for e in semantic_errors(ctx.state, merged, "", None) if e[0] is not None and e[0].split(".")[0] in body
    ]
    if errors:
        raise invalid(errors)
    for key, value in body.items():
        if key == "referrer":
            app["referrer_id"] = int(value["value"]) if value["type"] == "id" else None
        else:
            app[key] = value
    app["updated_at"] = iso(ctx.state.now())
    return reply(200, dict(app))


ROUTES = [
    Route("GET", "/v3/applications", "harvest:applications:list", list_applications),
    Route("POST", "/v3/applications", "harvest:applications:create", create_application),
    Route("PATCH", "/v3/applications/{id}", "harvest:applications:update", update_application),
]

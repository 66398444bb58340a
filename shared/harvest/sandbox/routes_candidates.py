"""Candidates: list (ids, email, ``created_at`` or ``updated_at`` range; hidden while being created), create
with one ``application``, update, delete, merge and anonymize.

A range is v3's one parameter of operator|timestamp pairs: ``created_at=gte|2024-01-01T00:00:00Z``, both ends
``created_at=gte|<ts>|lte|<ts>``, operators ``gte``, ``gt``, ``lte``, ``lt`` (docs/harvest.md section 5, [P]);
``created_at`` and ``updated_at`` together are a 422; any other spelling (the bracket form
``created_at[gte]``, ``created_after``...) is an unknown query parameter (422).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from shared.harvest.sandbox import routes_applications as apps
from shared.harvest.sandbox import webhooks
from shared.harvest.sandbox.routing import Ctx, Route, paginate, reply
from shared.harvest.sandbox.state import Record, State, iso
from shared.harvest.sandbox.validate import F, check_body, check_members, invalid, not_found, parse_time_filters


def _typed(*types: str) -> F:
    fields = {"value": F("str", True, nonempty=True), "type": F("enum", True, choices=types)}
    return F("list", item=F("obj", fields=fields))


CONTACT = {
    "email_addresses": _typed("personal", "work", "other"),
    "phone_numbers": _typed("home", "work", "mobile", "skype", "other"),
    "addresses": _typed("home", "work", "other"),
    "website_addresses": _typed("personal", "company", "portfolio", "blog", "other"),
    "social_media_addresses": F("list", item=F("obj", fields={"value": F("str", True, nonempty=True)})),
}
LIST_FILTERS = ("email", "created_at", "updated_at")
CUSTOM_FIELD = F("obj", fields={"name_key": F("str", True, nonempty=True), "value": F("str_or_list")})
UPDATE_CANDIDATE = {
    "first_name": F("str", nonempty=True),
    "last_name": F("str", nonempty=True),
    "company": F("str"),
    "title": F("str"),
    **CONTACT,
    "custom_fields": F("list", item=CUSTOM_FIELD),
}
CREATE_CANDIDATE = {
    **UPDATE_CANDIDATE,
    "first_name": F("str", True, nonempty=True),
    "last_name": F("str", True, nonempty=True),
    "application": F("obj"),
}
ANONYMIZE_FIELDS = (
    "full_name",
    "email_addresses",
    "phone_numbers",
    "addresses",
    "website_addresses",
    "social_media_addresses",
    "current_company",
    "current_title",
    "custom_fields",
)


def render(state: State, cand: Record) -> Record:
    """The v3 candidate object (tags are the names of applied tags; children are not embedded)."""
    tag_ids = [t["candidate_tag_id"] for t in state.applied_tags.values() if t["candidate_id"] == cand["id"]]
    return {
        **cand,
        "preferred_name": None,
        "can_email": True,
        "linked_user_ids": [],
        "last_activity_at": cand["updated_at"],
        "tags": [state.tags[t]["name"] for t in tag_ids if t in state.tags],
    }


def _custom_field_errors(state: State, fields: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    errors: list[tuple[str | None, str]] = []
    for i, cf in enumerate(fields):
        known = state.custom_fields.get(cf["name_key"])
        if known is None or known["field_type"] != "candidate":
            errors.append((f"custom_fields[{i}].name_key", f"unknown candidate custom field {cf['name_key']}"))
        elif known["value_type"] == "long_text" and isinstance(cf.get("value"), list):
            errors.append((f"custom_fields[{i}].value", "must be a string"))
    return errors


def _apply_fields(cand: Record, body: dict[str, Any]) -> None:
    for key, value in body.items():
        if key == "custom_fields":
            for cf in value:
                if cf.get("value") is None:
                    cand["custom_fields"].pop(cf["name_key"], None)
                else:
                    cand["custom_fields"][cf["name_key"]] = cf["value"]
        elif key != "application":
            cand[key] = value


def _ts(cand: Record, member: str) -> float:
    """The candidate's ``created_at`` or ``updated_at`` as epoch seconds (millisecond precision, as rendered)."""
    return datetime.fromisoformat(cand[member]).timestamp()


def list_candidates(ctx: Ctx) -> httpx.Response:
    """``GET /v3/candidates``: ``ids``, ``email`` (exact, case-insensitive on any address), and one range on
    ``created_at`` or ``updated_at`` (``gte|<ts>|lte|<ts>``...)."""

    def select(params: dict[str, str]) -> list[Record]:
        email = params.get("email")
        if email is not None and "@" not in email:
            raise invalid([("email", "must be an email address")])
        ranges = parse_time_filters(params)
        rows = []
        for cand in ctx.state.candidates.values():
            if not ctx.state.visible(cand["id"], ctx.config.visibility_delay_s):
                continue
            if email is not None and email.lower() not in {e["value"].lower() for e in cand["email_addresses"]}:
                continue
            if not all(bounds.contains(_ts(cand, member)) for member, bounds in ranges.items()):
                continue
            rows.append(render(ctx.state, cand))
        return rows

    return paginate(ctx, LIST_FILTERS, select)


def create_candidate(ctx: Ctx) -> httpx.Response:
    """``POST /v3/candidates``: 201 ``{"candidate": ..., "application": ... | null}``."""
    ctx.no_query()
    body = ctx.body()
    errors: list[tuple[str | None, str]] = []
    check_members(body, CREATE_CANDIDATE, "", errors)
    app = body.get("application")
    if isinstance(app, dict):
        schema = apps.PROSPECT_APPLICATION if "prospect" in app else apps.JOB_APPLICATION
        check_members(app, schema, "application", errors)
    if errors:
        raise invalid(errors)
    errors = _custom_field_errors(ctx.state, body.get("custom_fields") or [])
    if isinstance(app, dict):
        errors += apps.semantic_errors(ctx.state, app, "application.", None)
    if errors:
        raise invalid(errors)
    state, now = ctx.state, ctx.state.now()
    cand: Record = {
        "id": state.next_id(),
        "first_name": None,
        "last_name": None,
        "company": None,
        "title": None,
        "private": False,
        **{k: [] for k in CONTACT},
        "custom_fields": {},
        "created_at": iso(now),
        "updated_at": iso(now),
    }
    _apply_fields(cand, body)
    state.candidates[cand["id"]] = cand
    state.created_ts[cand["id"]] = now
    application = apps.build(state, cand["id"], app) if isinstance(app, dict) else None
    return reply(201, {"candidate": render(state, cand), "application": application and dict(application)})


def _candidate(ctx: Ctx) -> Record:
    cand = ctx.state.candidates.get(ctx.ids["id"])
    if cand is None:
        raise not_found("candidate", ctx.ids["id"])
    return cand


def update_candidate(ctx: Ctx) -> httpx.Response:
    """``PATCH /v3/candidates/{id}``: arrays replace the stored ones."""
    ctx.no_query()
    cand = _candidate(ctx)
    body = ctx.body()
    check_body(body, UPDATE_CANDIDATE)
    errors = _custom_field_errors(ctx.state, body.get("custom_fields") or [])
    if errors:
        raise invalid(errors)
    _apply_fields(cand, body)
    cand["updated_at"] = iso(ctx.state.now())
    return reply(200, render(ctx.state, cand))


def remove_candidate(state: State, cid: int) -> None:
    """Delete a candidate and every child record."""
    state.candidates.pop(cid, None)
    state.created_ts.pop(cid, None)
    app_ids = {a for a, rec in state.applications.items() if rec["candidate_id"] == cid}
    for table in (state.applications, state.educations, state.employments, state.applied_tags, state.notes):
        for rid in [r for r, rec in table.items() if rec.get("candidate_id") == cid]:
            del table[rid]
    for rid in [r for r, rec in state.attachments.items() if rec["application_id"] in app_ids]:
        del state.attachments[rid]


def delete_candidate(ctx: Ctx) -> httpx.Response:
    """``DELETE /v3/candidates/{id}``: 204; fires ``delete_candidate`` (:mod:`~shared.harvest.sandbox.webhooks`)."""
    ctx.no_query()
    cand = _candidate(ctx)
    webhooks.candidate_deleted(ctx.state, cand)
    remove_candidate(ctx.state, cand["id"])
    return reply(204)


def merge_candidate(ctx: Ctx) -> httpx.Response:
    """``POST /v3/candidates/{id}/merge`` ``{secondary_candidate_id}``: children move, secondary is deleted."""
    ctx.no_query()
    primary = _candidate(ctx)
    body = ctx.body()
    check_body(body, {"secondary_candidate_id": F("int", True)})
    sid = body["secondary_candidate_id"]
    if sid == primary["id"] or sid not in ctx.state.candidates:
        raise invalid([("secondary_candidate_id", f"candidate {sid} cannot be merged into {primary['id']}")])
    merge_records(ctx.state, primary, sid)
    return reply(200, render(ctx.state, primary))


def merge_records(state: State, primary: Record, sid: int) -> None:
    """Merge candidate ``sid`` into ``primary`` (both exist, distinct): its applications, educations,
    employments, notes and tags not already there move, its new email addresses are added, it is deleted, and
    the merge's webhook fires for it (:func:`~shared.harvest.sandbox.webhooks.candidate_merged`)."""
    webhooks.candidate_merged(state, state.candidates[sid], primary["id"])
    have = {t["candidate_tag_id"] for t in state.applied_tags.values() if t["candidate_id"] == primary["id"]}
    for table in (state.applications, state.educations, state.employments, state.notes, state.applied_tags):
        for rec in table.values():
            if rec.get("candidate_id") == sid and rec.get("candidate_tag_id") not in have:
                rec["candidate_id"] = primary["id"]
    known = {e["value"].lower() for e in primary["email_addresses"]}
    secondary = state.candidates[sid]
    primary["email_addresses"] += [e for e in secondary["email_addresses"] if e["value"].lower() not in known]
    remove_candidate(state, sid)
    primary["updated_at"] = iso(state.now())


def anonymize_candidate(ctx: Ctx) -> httpx.Response:
    """``PATCH /v3/candidates/{id}/anonymize`` ``{fields: [...]}``: irreversible."""
    ctx.no_query()
    cand = _candidate(ctx)
    body = ctx.body()
    check_body(body, {"fields": F("list", True, item=F("enum", choices=ANONYMIZE_FIELDS))})
    for name in body["fields"]:
        if name == "full_name":
            cand["first_name"], cand["last_name"] = "Anonymized", "Candidate"
        elif name in CONTACT or name == "custom_fields":
            cand[name] = {} if name == "custom_fields" else []
        else:
            cand[name.removeprefix("current_")] = None
    cand["updated_at"] = iso(ctx.state.now())
    return reply(200, render(ctx.state, cand))


ROUTES = [
    Route("GET", "/v3/candidates", "harvest:candidates:list", list_candidates),
    Route("POST", "/v3/candidates", "harvest:candidates:create", create_candidate),
    Route("PATCH", "/v3/candidates/{id}", "harvest:candidates:update", update_candidate),
    Route("DELETE", "/v3/candidates/{id}", "harvest:candidates:destroy", delete_candidate),
    Route("POST", "/v3/candidates/{id}/merge", "harvest:candidates:merge", merge_candidate),
    Route("PATCH", "/v3/candidates/{id}/anonymize", "harvest:candidates:anonymize", anonymize_candidate),
]

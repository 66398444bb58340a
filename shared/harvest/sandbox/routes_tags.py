"""Candidate tags (definitions) and applied candidate tags (a tag on one candidate)."""

from __future__ import annotations

import httpx

from shared.harvest.sandbox.routing import Ctx, Route, paginate, reply
from shared.harvest.sandbox.state import Record, iso
from shared.harvest.sandbox.validate import F, check_body, invalid, parse_ids

CREATE_TAG = {"name": F("str", True, nonempty=True)}
APPLY_TAG = {"candidate_id": F("int", True), "candidate_tag_id": F("int", True)}


def list_tags(ctx: Ctx) -> httpx.Response:
    """``GET /v3/candidate_tags``."""
    return paginate(ctx, (), lambda params: [dict(t) for t in ctx.state.tags.values()])


def create_tag(ctx: Ctx) -> httpx.Response:
    """``POST /v3/candidate_tags`` ``{name}``: a name taken ignoring case is a 422 (no silent reuse)."""
    ctx.no_query()
    body = ctx.body()
    check_body(body, CREATE_TAG)
    name = body["name"].strip()
    if any(t["name"].lower() == name.lower() for t in ctx.state.tags.values()):
        raise invalid([("name", "name has already been taken")])
    record: Record = {"id": ctx.state.next_id(), "name": name}
    ctx.state.tags[record["id"]] = record
    return reply(201, dict(record))


def list_applied(ctx: Ctx) -> httpx.Response:
    """``GET /v3/applied_candidate_tags``: ``candidate_ids``, ``candidate_tag_ids``."""

    def select(params: dict[str, str]) -> list[Record]:
        cids = set(parse_ids("candidate_ids", params["candidate_ids"])) if "candidate_ids" in params else None
        tids = (
            set(parse_ids("candidate_tag_ids", params["candidate_tag_ids"])) if "candidate_tag_ids" in params else None
        )
        delay = ctx.config.visibility_delay_s
        return [
            dict(r)
            for r in ctx.state.applied_tags.values()
            if ctx.state.visible(r["candidate_id"], delay)
            and (cids is None or r["candidate_id"] in cids)
            and (tids is None or r["candidate_tag_id"] in tids)
        ]

    return paginate(ctx, ("candidate_ids", "candidate_tag_ids"), select)


def apply_tag(ctx: Ctx) -> httpx.Response:
    """``POST /v3/applied_candidate_tags`` ``{candidate_id, candidate_tag_id}``; no implicit tag creation."""
    ctx.no_query()
    body = ctx.body()
    check_body(body, APPLY_TAG)
    cid, tid = body["candidate_id"], body["candidate_tag_id"]
    errors: list[tuple[str | None, str]] = []
    if cid not in ctx.state.candidates:
        errors.append(("candidate_id", f"candidate {cid} does not exist"))
    if tid not in ctx.state.tags:
        errors.append(("candidate_tag_id", f"candidate tag {tid} does not exist"))
    elif any(r["candidate_id"] == cid and r["candidate_tag_id"] == tid for r in ctx.state.applied_tags.values()):
        errors.append(("candidate_tag_id", "tag has already been applied to this candidate"))
    if errors:
        raise invalid(errors)
    record: Record = {
        "id": ctx.state.next_id(),
        "candidate_id": cid,
        "candidate_tag_id": tid,
        "created_at": iso(ctx.state.now()),
    }
    ctx.state.applied_tags[record["id"]] = record
    return reply(201, dict(record))


ROUTES = [
    Route("GET", "/v3/candidate_tags", "harvest:candidate_tags:list", list_tags),
    Route("POST", "/v3/candidate_tags", "harvest:candidate_tags:create", create_tag),
    Route("GET", "/v3/applied_candidate_tags", "harvest:applied_candidate_tags:list", list_applied),
    Route("POST", "/v3/applied_candidate_tags", "harvest:applied_candidate_tags:create", apply_tag),
]

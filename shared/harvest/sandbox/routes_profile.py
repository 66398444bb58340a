"""Profile children of a candidate: educations, employments, attachments (on an application), notes."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

import httpx

from shared.harvest.sandbox.routing import Ctx, Route, paginate, reply
from shared.harvest.sandbox.state import Record, State, iso
from shared.harvest.sandbox.validate import F, check_body, check_date_order, invalid, not_found, parse_ids

EDUCATION_OPTIONS = {
    "school_name_custom_field_option_id": "school_name",
    "degree_custom_field_option_id": "degree",
    "discipline_custom_field_option_id": "discipline",
}
CREATE_EDUCATION = {
    "candidate_id": F("int", True),
    **{name: F("int") for name in EDUCATION_OPTIONS},
    "start_date": F("date"),
    "end_date": F("date"),
}
CREATE_EMPLOYMENT = {
    "candidate_id": F("int", True),
    "company_name": F("str", True, nonempty=True),
    "title": F("str", True, nonempty=True),
    "start_date": F("date", True),
    "end_date": F("date"),
}
ATTACHMENT_TYPES = (
    "resume",
    "cover_letter",
    "take_home_test",
    "offer_packet",
    "offer_letter",
    "signed_offer_letter",
    "midfunnel_agreement",
    "automated_agreement",
    "form_attachment",
    "other",
)
VISIBILITIES = ("public", "admin_only", "private")
CREATE_ATTACHMENT = {
    "application_id": F("int", True),
    "filename": F("str", True, nonempty=True),
    "type": F("enum", True, choices=ATTACHMENT_TYPES),
    "content": F("str"),
    "url": F("str"),
    "visibility": F("enum", choices=VISIBILITIES),
}
CREATE_NOTE = {
    "candidate_id": F("int", True),
    "application_id": F("int"),
    "user_id": F("int", True),
    "body": F("str", True, nonempty=True),
    "visibility": F("enum", True, choices=("admin_only", "private", "public")),
    "note_type": F("enum", True, choices=("NOTE",)),
}
NOTE_VISIBILITY = {"admin_only": "admin_only_visible", "private": "privately_visible", "public": "publicly_visible"}
FILENAME_RE = re.compile(r"^[^.].*\.[A-Za-z0-9]{1,10}$")


def _by_candidate(ctx: Ctx, table: dict[int, Record]) -> httpx.Response:
    """List a child table by ``candidate_ids``; children of candidates not yet visible are hidden."""

    def select(params: dict[str, str]) -> list[Record]:
        cids = set(parse_ids("candidate_ids", params["candidate_ids"])) if "candidate_ids" in params else None
        return [
            dict(r)
            for r in table.values()
            if (cids is None or r["candidate_id"] in cids)
            and (
                r["candidate_id"] not in ctx.state.candidates
                or ctx.state.visible(r["candidate_id"], ctx.config.visibility_delay_s)
            )
        ]

    return paginate(ctx, ("candidate_ids",), select)


def _lister(table: Callable[[State], dict[int, Record]]) -> Callable[[Ctx], httpx.Response]:
    return lambda ctx: _by_candidate(ctx, table(ctx.state))


def _deleter(what: str, table: Callable[[State], dict[int, Record]]) -> Callable[[Ctx], httpx.Response]:
    def delete(ctx: Ctx) -> httpx.Response:
        ctx.no_query()
        if table(ctx.state).pop(ctx.ids["id"], None) is None:
            raise not_found(what, ctx.ids["id"])
        return reply(204)

    return delete


def _require_candidate(state: State, cid: int) -> None:
    if cid not in state.candidates:
        raise invalid([("candidate_id", f"candidate {cid} does not exist")])


def create_education(ctx: Ctx) -> httpx.Response:
    """``POST /v3/candidate_educations``: option ids must belong to the matching custom field key."""
    ctx.no_query()
    body = ctx.body()
    check_body(body, CREATE_EDUCATION)
    _require_candidate(ctx.state, body["candidate_id"])
    errors: list[tuple[str | None, str]] = []
    names: dict[str, str | None] = {}
    for member, key in EDUCATION_OPTIONS.items():
        oid = body.get(member)
        option = ctx.state.options.get(oid) if oid is not None else None
        if oid is not None and (option is None or option["custom_field_key"] != key):
            errors.append((member, f"{oid} is not a {key} custom field option"))
        names[key] = option["name"] if option else None
    if errors:
        raise invalid(errors)
    check_date_order(body.get("start_date"), body.get("end_date"))
    record: Record = {
        "id": ctx.state.next_id(),
        **{m: body.get(m) for m in CREATE_EDUCATION},
        **names,
        "created_at": iso(ctx.state.now()),
    }
    ctx.state.educations[record["id"]] = record
    return reply(201, dict(record))


def create_employment(ctx: Ctx) -> httpx.Response:
    """``POST /v3/candidate_employments``: company_name, title, start_date required."""
    ctx.no_query()
    body = ctx.body()
    check_body(body, CREATE_EMPLOYMENT)
    _require_candidate(ctx.state, body["candidate_id"])
    check_date_order(body.get("start_date"), body.get("end_date"))
    record: Record = {
        "id": ctx.state.next_id(),
        **{m: body.get(m) for m in CREATE_EMPLOYMENT},
        "created_at": iso(ctx.state.now()),
    }
    ctx.state.employments[record["id"]] = record
    return reply(201, dict(record))


def create_attachment(ctx: Ctx) -> httpx.Response:
    """``POST /v3/attachments``: exactly one of base64 ``content`` or ``url``; filename with extension."""
    ctx.no_query()
    body = ctx.body()
    check_body(body, CREATE_ATTACHMENT)
    errors: list[tuple[str | None, str]] = []
    app = ctx.state.applications.get(body["application_id"])
    if app is None:
        errors.append(("application_id", f"application {body['application_id']} does not exist"))
    if not FILENAME_RE.match(body["filename"]):
        errors.append(("filename", "must include a file extension"))
    content, url = body.get("content"), body.get("url")
    size = 0
    if (content is None) == (url is None):
        errors.append(("content", "exactly one of content or url is required"))
    elif content is not None:
        try:
            size = len(base64.b64decode(content, validate=True))
        except (binascii.Error, ValueError):
            size = -1
        if size <= 0:
            errors.append(("content", "must be non-empty base64"))
    elif not str(url).startswith(("http://", "https://")):
        errors.append(("url", "must be an http(s) URL"))
    if errors or app is None:
        raise invalid(errors)
    if body["type"] in ("resume", "cover_letter"):
        for old in ctx.state.attachments.values():
            if old["application_id"] == app["id"] and old["type"] == body["type"]:
                old["type"] = "other"
    aid = ctx.state.next_id()
    record: Record = {
        "id": aid,
        "application_id": app["id"],
        "candidate_id": app["candidate_id"],
        "filename": body["filename"],
        "type": body["type"],
        "visibility": body.get("visibility") or ("admin_only" if body["type"].startswith("offer") else "public"),
        "url": f"https://sandbox.invalid/attachments/{aid}/{body['filename']}",
        "size": size if content is not None else None,
        "source_url": url,
        "created_at": iso(ctx.state.now()),
    }
    ctx.state.attachments[aid] = record
    return reply(201, dict(record))


def create_note(ctx: Ctx) -> httpx.Response:
    """``POST /v3/notes``: ``note_type`` exactly ``NOTE``; the author must be a user.

    Like Greenhouse, ``candidate_id`` is not checked: a bad id creates an orphan note.
    """
    ctx.no_query()
    body = ctx.body()
    check_body(body, CREATE_NOTE)
    if body["user_id"] not in ctx.state.users:
        raise invalid([("user_id", f"user {body['user_id']} does not exist")])
    record: Record = {
        "id": ctx.state.next_id(),
        "candidate_id": body["candidate_id"],
        "application_id": body.get("application_id"),
        "user_id": body["user_id"],
        "body": body["body"],
        "visibility": NOTE_VISIBILITY[body["visibility"]],
        "type": body["note_type"],
        "created_at": iso(ctx.state.now()),
    }
    ctx.state.notes[record["id"]] = record
    return reply(201, dict(record))


ROUTES = [
    Route("GET", "/v3/candidate_educations", "harvest:candidate_educations:list", _lister(lambda s: s.educations)),
    Route("POST", "/v3/candidate_educations", "harvest:candidate_educations:create", create_education),
    Route(
        "DELETE",
        "/v3/candidate_educations/{id}",
        "harvest:candidate_educations:destroy",
        _deleter("education", lambda s: s.educations),
    ),
    Route("GET", "/v3/candidate_employments", "harvest:candidate_employments:list", _lister(lambda s: s.employments)),
    Route("POST", "/v3/candidate_employments", "harvest:candidate_employments:create", create_employment),
    Route(
        "DELETE",
        "/v3/candidate_employments/{id}",
        "harvest:candidate_employments:destroy",
        _deleter("employment", lambda s: s.employments),
    ),
    Route("POST", "/v3/attachments", "harvest:attachments:create", create_attachment),
    Route("GET", "/v3/notes", "harvest:notes:list", _lister(lambda s: s.notes)),
    Route("POST", "/v3/notes", "harvest:notes:create", create_note),
]

"""Profile children of a candidate: educations, employments, attachments (on an application), notes.

Attachments as Harvest shows them: ``id, application_id, candidate_id, filename, type, content_type,
visibility, url, created_at, updated_at`` ([P REF-ATT] for the semantics; member names [3P OGMCP, SVMCP,
Workato's v3 connector output]). Assumptions, as Greenhouse publishes neither: the org's extension blocklist
(:attr:`~shared.harvest.sandbox.state.State.blocked_extensions`, seeded with
:data:`~shared.harvest.sandbox.seed.BLOCKED_EXTENSIONS`) and the size cap on decoded ``content``
(:attr:`~shared.harvest.sandbox.state.SandboxConfig.max_attachment_bytes`, default 20 MiB), both answered 422
naming the field; offer documents default to ``admin_only``, every other type to ``public``. The sandbox does not
fetch a ``url`` upload; the ``url`` it returns points at its own ``GET /_sandbox/attachments/{id}/content``
and expires :data:`URL_TTL_S` (7 days) after the answer that carried it.
"""

from __future__ import annotations

import base64
import binascii
import math
import mimetypes
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from shared.harvest.sandbox.routing import Ctx, Route, paginate, reply
from shared.harvest.sandbox.state import ALL_ATTACHMENT_TYPES, Record, SandboxConfig, State, iso
from shared.harvest.sandbox.validate import (
    F,
    check_body,
    check_date_order,
    invalid,
    not_found,
    parse_choice,
    parse_fields,
    parse_ids,
    parse_time_filters,
)

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
CREATE_ATTACHMENT_V1_STYLE = {**CREATE_ATTACHMENT, "content_type": F("str")}
"""The members with ``SandboxConfig.attachment_content_type == "required"``."""
V1_CONTENT_TYPES = frozenset({"application/pdf", "application/msword", "text/plain", "application/rtf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "image/jpeg", "image/png"})  # fmt: skip
"""Content types accepted with base64 ``content`` in ``required`` mode (v1's whitelist included PDF [P G11])."""
CREATE_NOTE = {
    "candidate_id": F("int", True),
    "application_id": F("int"),
    "user_id": F("int", True),
    "body": F("str", True, nonempty=True),
    "visibility": F("enum", True, choices=("admin_only", "private", "public")),
    "note_type": F("enum", True, choices=("NOTE",)),
}
NOTE_VISIBILITY = {"admin_only": "admin_only_visible", "private": "privately_visible", "public": "publicly_visible"}
EXTENSION_RE = re.compile(r"^[A-Za-z0-9]{1,10}$")
RELABELLED_TYPES = ("resume", "cover_letter")
"""Types of which an application keeps one: a new upload re-labels the previous one ``other`` [P REF-ATT]."""
DEFAULT_VISIBILITY = {"offer_packet": "admin_only", "offer_letter": "admin_only", "signed_offer_letter": "admin_only"}
"""Visibility when the upload names none ("derived from type" [P]; this mapping is an assumption): else public."""
URL_TTL_S = 7 * 24 * 3600
"""An attachment's download ``url`` expires 7 days after it was handed out [P REF-ATT]."""
ATTACHMENT_FIELDS = (
    "id",
    "application_id",
    "candidate_id",
    "filename",
    "type",
    "content_type",
    "visibility",
    "url",
    "created_at",
    "updated_at",
)
ATTACHMENT_RANGES = ("created_at", "updated_at")
"""Range filters of ``GET /v3/attachments``, one per request: ``created_at=gte|<ts>|lte|<ts>`` (section 3)."""
_MIME = mimetypes.MimeTypes(filenames=())  # built-in table only: the same answer on every machine
_MIME.add_type("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx")
_MIME.add_type("application/vnd.oasis.opendocument.text", ".odt")


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


def attachment_errors(state: State, config: SandboxConfig, body: dict[str, Any]) -> list[tuple[str | None, str]]:
    """What Harvest refuses in an already shape-checked ``POST /v3/attachments`` body (reference, name,
    blocklisted extension, content XOR url, base64, size)."""
    errors: list[tuple[str | None, str]] = []
    if body["application_id"] not in state.applications:
        errors.append(("application_id", f"application {body['application_id']} does not exist"))
    filename: str = body["filename"].strip()
    stem, dot, ext = filename.rpartition(".")
    if not dot or not EXTENSION_RE.match(ext):
        errors.append(("filename", "must include a file extension, e.g. resume.pdf"))
    elif not stem.strip(" ."):
        errors.append(("filename", "must have a name before its extension"))
    else:
        extension = "." + ext.lower()
        blocked = state.blocked_extensions.get(ALL_ATTACHMENT_TYPES, frozenset()) | state.blocked_extensions.get(
            body["type"], frozenset()
        )
        if extension in blocked:
            errors.append(("filename", f"extension {extension} is blocked for {body['type']} attachments"))
    content, url = body.get("content"), body.get("url")
    if (content is None) == (url is None):
        errors.append(("content", "exactly one of content or url is required"))
    elif content is not None:
        if config.attachment_content_type == "required" and body.get("content_type") not in V1_CONTENT_TYPES:
            what = "is required with content" if body.get("content_type") is None else "is not an accepted type"
            errors.append(("content_type", what))
        size = _decoded_size(content)
        if size is None or size == 0:
            errors.append(("content", "must be non-empty base64"))
        elif size > config.max_attachment_bytes:
            errors.append(("content", f"is {size} bytes; the largest allowed is {config.max_attachment_bytes}"))
    else:
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors.append(("url", "must be a publicly fetchable http(s) URL"))
    return errors


def _decoded_size(content: str) -> int | None:
    """Length of standard base64 ``content`` once decoded; ``None`` when it is not valid base64."""
    try:
        return len(base64.b64decode(content, validate=True))
    except (binascii.Error, ValueError):
        return None


def content_type_of(filename: str) -> str:
    """The MIME type Harvest reports for a file name (``application/octet-stream`` when unknown)."""
    return _MIME.guess_type(filename, strict=False)[0] or "application/octet-stream"


def attachment_download_path(attachment_id: int, org_id: int | None = None) -> str:
    """Where the sandbox serves an attachment's bytes (an admin route: no token, like a signed URL); an
    attachment of an organization other than the default one names it (``?org_id=``)."""
    path = f"/_sandbox/attachments/{attachment_id}/content"
    return path if org_id is None else f"{path}?org_id={org_id}"


def render_attachment(state: State, record: Record, origin: str | None) -> Record:
    """The v3 attachment object: the record without private members, ``candidate_id`` from its application
    (so it follows merges), and a download ``url`` that expires :data:`URL_TTL_S` after this answer.

    ``origin`` (``scheme://host``) is the request's; ``None`` (the admin snapshot): a path with no expiry.
    """
    out = {k: v for k, v in record.items() if not k.startswith("_")}
    app = state.applications.get(record["application_id"])
    out["candidate_id"] = app["candidate_id"] if app is not None else None
    path = attachment_download_path(record["id"], state.org_id)
    expires = f"{'&' if '?' in path else '?'}expires={math.ceil(state.now() + URL_TTL_S)}"
    out["url"] = path if origin is None else f"{origin}{path}{expires}"
    return out


def _origin(ctx: Ctx) -> str:
    url = ctx.request.url
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def create_attachment(ctx: Ctx) -> httpx.Response:
    """``POST /v3/attachments``: exactly one of base64 ``content`` or ``url``; filename with an extension that
    is not on the org's blocklist; a new ``resume``/``cover_letter`` re-labels the previous one ``other``."""
    ctx.no_query()
    body = ctx.body()
    check_body(
        body, CREATE_ATTACHMENT_V1_STYLE if ctx.config.attachment_content_type == "required" else CREATE_ATTACHMENT
    )
    errors = attachment_errors(ctx.state, ctx.config, body)
    if errors:
        raise invalid(errors)
    now = iso(ctx.state.now())
    app_id, kind = body["application_id"], body["type"]
    if kind in RELABELLED_TYPES:
        for old in ctx.state.attachments.values():
            if old["application_id"] == app_id and old["type"] == kind:
                old["type"] = "other"
                old["updated_at"] = now
    filename = body["filename"].strip()
    content = body.get("content")
    record: Record = {
        "id": ctx.state.next_id(),
        "application_id": app_id,
        "filename": filename,
        "type": kind,
        "content_type": body.get("content_type") or content_type_of(filename),
        "visibility": body.get("visibility") or DEFAULT_VISIBILITY.get(kind, "public"),
        "created_at": now,
        "updated_at": now,
        "_content": base64.b64decode(content, validate=True) if content is not None else None,
        "_source_url": body.get("url"),
    }
    ctx.state.attachments[record["id"]] = record
    return reply(201, render_attachment(ctx.state, record, _origin(ctx)))


def list_attachments(ctx: Ctx) -> httpx.Response:
    """``GET /v3/attachments``: ``application_ids``, ``candidate_ids`` (attachments on those candidates'
    applications), ``type``, one range on ``created_at`` or ``updated_at`` (``gte|<ts>|lte|<ts>``...), ``fields``
    (``id`` is always returned). Attachments of candidates Greenhouse is still creating are hidden."""
    origin = _origin(ctx)

    def select(params: dict[str, str]) -> list[Record]:
        aids = set(parse_ids("application_ids", params["application_ids"])) if "application_ids" in params else None
        cids = set(parse_ids("candidate_ids", params["candidate_ids"])) if "candidate_ids" in params else None
        kind = parse_choice("type", params["type"], ATTACHMENT_TYPES) if "type" in params else None
        ranges = parse_time_filters(params, ATTACHMENT_RANGES)
        fields = parse_fields(params["fields"], ATTACHMENT_FIELDS) if "fields" in params else None
        rows = []
        for record in ctx.state.attachments.values():
            row = render_attachment(ctx.state, record, origin)
            cid = row["candidate_id"]
            if cid is None or not ctx.state.visible(cid, ctx.config.visibility_delay_s):
                continue
            if (aids is not None and row["application_id"] not in aids) or (cids is not None and cid not in cids):
                continue
            if kind is not None and row["type"] != kind:
                continue
            if not all(bounds.contains(_ts(row, member)) for member, bounds in ranges.items()):
                continue
            rows.append(row if fields is None else {k: row[k] for k in ("id", *fields)})
        return rows

    return paginate(ctx, ("application_ids", "candidate_ids", "type", *ATTACHMENT_RANGES, "fields"), select)


def _ts(row: Record, member: str) -> float:
    """A row's ``created_at`` or ``updated_at`` as epoch seconds."""
    return datetime.fromisoformat(row[member]).timestamp()


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
    Route("GET", "/v3/attachments", "harvest:attachments:list", list_attachments),
    Route("POST", "/v3/attachments", "harvest:attachments:create", create_attachment),
    Route("GET", "/v3/notes", "harvest:notes:list", _lister(lambda s: s.notes)),
    Route("POST", "/v3/notes", "harvest:notes:create", create_note),
]

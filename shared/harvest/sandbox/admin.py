"""Unauthenticated ``/_sandbox/`` admin routes (not rate limited) and the state snapshot.

``GET /_sandbox/state``, ``GET /_sandbox/stats``, ``POST /_sandbox/faults`` ``{kind, method, path, count}``,
``POST /_sandbox/credentials`` ``{client_id, client_secret, scopes, rate_limit?, window_s?}`` (the credential's
own rate limit and window; absent or ``null``: the sandbox's), ``POST /_sandbox/expire_tokens``,
``POST /_sandbox/outage`` ``{seconds, status?, writes_only?}``: for ``seconds`` (sandbox clock) every /v3
request and ``POST /token`` (with ``writes_only: true``, only /v3 writes) answers ``status`` (a 5xx, default
503) with Harvest's error body, before auth, rate limit or any action; ``seconds: 0`` ends it (see
:meth:`~shared.harvest.sandbox.app.Sandbox.outage`).
``PATCH /_sandbox/candidates/{id}`` ``{member: value}`` changes a candidate behind the exporter's back, and
``DELETE /_sandbox/candidates/{id}`` removes it with its applications (deleted or merged in Greenhouse).
``GET /_sandbox/attachments/{id}/content[?expires=<epoch s>]`` serves an attachment's decoded bytes: it is
where the ``url`` of a v3 attachment points (404 for an unknown attachment or a ``url`` upload, whose file the
sandbox never fetched; 403 once ``expires`` is past on the sandbox clock, like Greenhouse's expiring links;
``org_id=`` names an organization other than the default one).
Several organizations and partner OAuth: ``GET /_sandbox/state?org_id=`` (one organization's records; default:
the default one), ``POST /_sandbox/organizations`` ``{org_id, name, rate_limit?, window_s?}``,
``POST /_sandbox/revoke`` ``{client_id, org_id}`` (the organization disconnects the partner: answers
``{"revoked": <live tokens killed>}``), ``GET /_sandbox/oauth`` (the partner OAuth counters).
Greenhouse's webhooks (:mod:`~shared.harvest.sandbox.webhooks`): ``POST /_sandbox/webhooks`` ``{action, url,
secret_key, org_id?}`` configures one (answers ``{"id": ...}``), ``GET /_sandbox/webhooks`` lists the deliveries
(``{"deliveries": [...]}``), ``POST /_sandbox/merge`` ``{keep_id, remove_id, org_id?}`` merges two candidates as a
recruiter would (the removed one's webhook fires).
Bad input is a 400 ``{"message": ...}``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, Protocol, TypedDict
from urllib.parse import quote

import httpx

from shared.harvest.sandbox.routes_candidates import render
from shared.harvest.sandbox.routes_profile import render_attachment
from shared.harvest.sandbox.routing import reply
from shared.harvest.sandbox.state import AttachmentFile, Record, State
from shared.harvest.sandbox.stats import OAuthStats, StatsSnapshot


class StateSnapshot(TypedDict):
    """:func:`snapshot`: the tenant's candidates with their children, its tags, and notes on no candidate."""

    candidates: list[Record]
    candidate_tags: list[Record]
    orphan_notes: list[Record]


class AdminTarget(Protocol):
    """What the admin routes drive: :class:`~shared.harvest.sandbox.app.Sandbox`.

    A protocol, so this module never imports ``app`` (which imports this module to route ``/_sandbox/``).
    """

    def state_snapshot(self, org_id: int | None = ...) -> StateSnapshot: ...

    def stats(self) -> StatsSnapshot: ...

    def expire_tokens(self) -> None: ...

    def outage(self, seconds: float, status: int = ..., *, writes_only: bool = ...) -> None: ...

    def inject_fault(self, kind: str, *, method: str = ..., path: str = ..., count: int = ...) -> None: ...

    def edit_candidate(self, candidate_id: int, changes: dict[str, object]) -> None: ...

    def remove_candidate(self, candidate_id: int) -> None: ...

    def merge(self, keep_id: int, remove_id: int, *, org_id: int | None = ...) -> None: ...

    def add_webhook(self, action: str, url: str, secret_key: str, *, org_id: int | None = ...) -> int: ...

    def webhook_deliveries(self) -> list[dict[str, Any]]: ...

    def attachment_file(
        self, attachment_id: int, *, expires: float | None = ..., org_id: int | None = ...
    ) -> AttachmentFile: ...

    def add_organization(
        self, org_id: int, name: str, *, rate_limit: int | None = ..., window_s: float | None = ...
    ) -> None: ...

    def revoke_consent(self, client_id: str, org_id: int) -> int: ...

    def oauth_stats(self) -> OAuthStats: ...

    def add_credential(
        self,
        client_id: str,
        client_secret: str,
        scopes: Iterable[str],
        *,
        rate_limit: int | None = ...,
        window_s: float | None = ...,
    ) -> None: ...


ATTACHMENT_CONTENT = re.compile(r"^/_sandbox/attachments/(\d+)/content$")


def snapshot(state: State) -> StateSnapshot:
    """Candidates (rendered) each with applications, educations, employments, tags, notes, attachments.

    Attachments (on the candidate's applications) show as the API shows them, their ``url`` a path without
    expiry, plus the decoded ``size`` (``None`` for a ``url`` upload) and the ``source_url`` of a url upload.
    """

    def children(table: dict[int, Record], cid: int) -> list[Record]:
        return [dict(r) for r in table.values() if r.get("candidate_id") == cid]

    def attachment(record: Record) -> Record:
        content = record["_content"]
        size = len(content) if content is not None else None
        return {**render_attachment(state, record, None), "size": size, "source_url": record["_source_url"]}

    candidates = []
    for cid in sorted(state.candidates):
        row = render(state, state.candidates[cid])
        row["applications"] = children(state.applications, cid)
        row["educations"] = children(state.educations, cid)
        row["employments"] = children(state.employments, cid)
        row["applied_tags"] = children(state.applied_tags, cid)
        row["notes"] = children(state.notes, cid)
        app_ids = {a["id"] for a in row["applications"]}
        row["attachments"] = [attachment(a) for a in state.attachments.values() if a["application_id"] in app_ids]
        candidates.append(row)
    return {
        "candidates": candidates,
        "candidate_tags": [dict(t) for t in state.tags.values()],
        "orphan_notes": [dict(n) for n in state.notes.values() if n["candidate_id"] not in state.candidates],
    }


def _json(request: httpx.Request) -> dict[str, Any]:
    try:
        body = json.loads(request.content or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    """An optional member that must be an integer above 0 (``null`` or absent: ``None``)."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be an integer above 0")
    return value


def _positive_number(body: dict[str, Any], name: str) -> float | None:
    """An optional member that must be a finite number above 0 (``null`` or absent: ``None``)."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a number above 0")
    return float(value)


def _add_credential(sandbox: AdminTarget, body: dict[str, Any]) -> None:
    scopes = body["scopes"]
    if not isinstance(scopes, list):
        raise ValueError("scopes must be a list")
    sandbox.add_credential(
        str(body["client_id"]),
        str(body["client_secret"]),
        map(str, scopes),
        rate_limit=_positive_int(body, "rate_limit"),
        window_s=_positive_number(body, "window_s"),
    )


def _org_id(request: httpx.Request) -> int | None:
    """The optional ``org_id`` query parameter (ValueError unless digits)."""
    raw = request.url.params.get("org_id")
    if raw is not None and not raw.isdigit():
        raise ValueError("org_id must be an integer")
    return None if raw is None else int(raw)


def _add_organization(sandbox: AdminTarget, body: dict[str, Any]) -> None:
    org_id = body["org_id"]
    if isinstance(org_id, bool) or not isinstance(org_id, int):
        raise ValueError("org_id must be an integer")
    sandbox.add_organization(
        org_id,
        str(body["name"]),
        rate_limit=_positive_int(body, "rate_limit"),
        window_s=_positive_number(body, "window_s"),
    )


def _int(body: dict[str, Any], name: str) -> int:
    """Member ``name``, which must be an integer (ValueError otherwise)."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    return value


def _body_org_id(body: dict[str, Any]) -> int | None:
    """The optional ``org_id`` member (absent or ``null``: the default organization)."""
    return None if body.get("org_id") is None else _int(body, "org_id")


def _merge(sandbox: AdminTarget, body: dict[str, Any]) -> None:
    sandbox.merge(_int(body, "keep_id"), _int(body, "remove_id"), org_id=_body_org_id(body))


def _add_webhook(sandbox: AdminTarget, body: dict[str, Any]) -> int:
    action, url, secret_key = (str(body[k]) for k in ("action", "url", "secret_key"))
    return sandbox.add_webhook(action, url, secret_key, org_id=_body_org_id(body))


def _revoke(sandbox: AdminTarget, body: dict[str, Any]) -> int:
    org_id = body["org_id"]
    if isinstance(org_id, bool) or not isinstance(org_id, int):
        raise ValueError("org_id must be an integer")
    return sandbox.revoke_consent(str(body["client_id"]), org_id)


def _attachment_content(sandbox: AdminTarget, attachment_id: int, request: httpx.Request) -> httpx.Response:
    raw = request.url.params.get("expires")
    if raw is not None and not raw.isdigit():
        return reply(400, {"message": "bad sandbox admin request: expires must be epoch seconds"})
    try:
        org_id = _org_id(request)
    except ValueError as exc:
        return reply(400, {"message": f"bad sandbox admin request: {exc}"})
    try:
        file = sandbox.attachment_file(attachment_id, expires=None if raw is None else float(raw), org_id=org_id)
    except KeyError as exc:
        return reply(404, {"message": f"Resource not found: {exc.args[0]}"})
    except PermissionError:
        return reply(403, {"message": "Request has expired"})
    disposition = f"attachment; filename*=UTF-8''{quote(file.filename)}"
    headers = {"Content-Type": file.content_type, "Content-Disposition": disposition}
    return httpx.Response(200, headers=headers, content=file.content)


def handle(sandbox: AdminTarget, request: httpx.Request) -> httpx.Response:
    """Serve one admin request; bad input is a 400 ``{"message": ...}``."""
    route = (request.method.upper(), request.url.path.rstrip("/"))
    found = ATTACHMENT_CONTENT.match(route[1])
    if route[0] == "GET" and found is not None:
        return _attachment_content(sandbox, int(found.group(1)), request)
    try:
        if route == ("GET", "/_sandbox/state"):
            return reply(200, sandbox.state_snapshot(_org_id(request)))
        if route == ("GET", "/_sandbox/stats"):
            return reply(200, sandbox.stats())
        if route == ("POST", "/_sandbox/expire_tokens"):
            sandbox.expire_tokens()
            return reply(200, {"ok": True})
        if route == ("POST", "/_sandbox/faults"):
            body = _json(request)
            sandbox.inject_fault(
                str(body["kind"]),
                method=str(body.get("method", "POST")),
                path=str(body.get("path", "/v3/candidates")),
                count=int(body.get("count", 1)),
            )
            return reply(201, {"ok": True})
        if route == ("POST", "/_sandbox/outage"):
            body = _json(request)
            # it checks every member (ValueError: 400)
            sandbox.outage(body["seconds"], body.get("status", 503), writes_only=body.get("writes_only", False))
            return reply(200, {"ok": True})
        if route[0] in ("PATCH", "DELETE") and route[1].startswith("/_sandbox/candidates/"):
            candidate_id = int(route[1].rsplit("/", 1)[1])
            if route[0] == "DELETE":
                sandbox.remove_candidate(candidate_id)
            else:
                sandbox.edit_candidate(candidate_id, _json(request))
            return reply(200, {"ok": True})
        if route == ("POST", "/_sandbox/credentials"):
            _add_credential(sandbox, _json(request))
            return reply(201, {"ok": True})
        if route == ("POST", "/_sandbox/organizations"):
            _add_organization(sandbox, _json(request))
            return reply(201, {"ok": True})
        if route == ("POST", "/_sandbox/revoke"):
            return reply(200, {"revoked": _revoke(sandbox, _json(request))})
        if route == ("GET", "/_sandbox/oauth"):
            return reply(200, asdict(sandbox.oauth_stats()))
        if route == ("POST", "/_sandbox/webhooks"):
            return reply(201, {"id": _add_webhook(sandbox, _json(request))})
        if route == ("GET", "/_sandbox/webhooks"):
            return reply(200, {"deliveries": sandbox.webhook_deliveries()})
        if route == ("POST", "/_sandbox/merge"):
            _merge(sandbox, _json(request))
            return reply(200, {"ok": True})
    except (KeyError, TypeError, ValueError) as exc:
        return reply(400, {"message": f"bad sandbox admin request: {exc}"})
    return reply(404, {"message": "Resource not found"})

"""Route table plumbing: :class:`Route`, the per-request :class:`Ctx`, JSON replies and paginated lists."""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.harvest.sandbox.state import CursorEntry, Record, SandboxConfig, State, Token
from shared.harvest.sandbox.validate import invalid, parse_ids

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 500


def reply(status: int, body: object = None) -> httpx.Response:
    """A JSON response (no body for ``None``)."""
    if body is None:
        return httpx.Response(status)
    return httpx.Response(status, json=body)


@dataclass
class Ctx:
    """What a route handler gets: state, config, the request, its query and path ids, the token."""

    state: State
    config: SandboxConfig
    request: httpx.Request
    route: Route
    query: dict[str, str]
    ids: dict[str, int]
    token: Token
    # Any, like Record: members are whatever JSON the client sent, read by name once check_body has
    # checked them against the route's schema.
    _body: dict[str, Any] | None = field(default=None, repr=False)

    def body(self) -> dict[str, Any]:
        """The JSON object body; an empty body counts as ``{}``; anything else that is not an object: 422."""
        if self._body is None:
            raw = self.request.content
            try:
                parsed = json.loads(raw) if raw.strip() else {}
            except ValueError:
                raise invalid([("body", "must be valid JSON")]) from None
            if not isinstance(parsed, dict):
                raise invalid([("body", "must be a JSON object")])
            self._body = parsed
        return self._body

    def no_query(self) -> None:
        """Write routes take no query parameters."""
        if self.query:
            raise invalid([(k, f"Invalid query params: {k}") for k in sorted(self.query)])


Handler = Callable[[Ctx], httpx.Response]


@dataclass(frozen=True)
class Route:
    """One Harvest v3 route: method, path template (``{id}`` segments), required scope, handler."""

    method: str
    template: str
    scope: str
    handler: Handler

    @property
    def key(self) -> str:
        """Stats key, e.g. ``POST /v3/candidates``."""
        return f"{self.method} {self.template}"

    @property
    def is_list(self) -> bool:
        """GET on a collection: subject to the site-admin rule."""
        return self.method == "GET" and "{" not in self.template

    def match(self, path: str) -> dict[str, int] | None:
        """Path ids when ``path`` fits the template, else ``None``."""
        pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>\\d+)", self.template) + "$"
        found = re.match(pattern, path)
        return None if found is None else {k: int(v) for k, v in found.groupdict().items()}


def paginate(
    ctx: Ctx,
    filters: Iterable[str],
    select: Callable[[dict[str, str]], list[Record]],
) -> httpx.Response:
    """A Harvest v3 list: bare JSON array, ``per_page`` 1..500, ``ids``, cursor in a ``Link`` header.

    ``select`` validates the route's own ``filters`` and returns matching rows; a ``cursor`` request
    replays the filters of the request that produced the cursor.
    """
    query = ctx.query
    if "cursor" in query:
        others = sorted(k for k in query if k != "cursor")
        if others:
            raise invalid([("cursor", "cursor must be the only query parameter")])
        entry = ctx.state.cursors.get(query["cursor"])
        if entry is None or entry.route != ctx.route.key:
            raise invalid([("cursor", "cursor is invalid or has expired")])
        params, offset, per_page = entry.params, entry.offset, entry.per_page
    else:
        allowed = {"per_page", "ids", *filters}
        unknown = sorted(k for k in query if k not in allowed)
        if unknown:
            msg = f"Invalid query params: {', '.join(unknown)}"
            raise invalid([(k, msg) for k in unknown])
        params, offset, per_page = dict(query), 0, _per_page(query.get("per_page"))
    rows = select(params)
    if "ids" in params:
        wanted = set(parse_ids("ids", params["ids"]))
        rows = [r for r in rows if r["id"] in wanted]
    rows.sort(key=lambda r: r["id"])
    page = rows[offset : offset + per_page]
    response = reply(200, page)
    if offset + per_page < len(rows):
        cursor = base64.urlsafe_b64encode(secrets.token_bytes(18)).decode()
        ctx.state.cursors[cursor] = CursorEntry(ctx.route.key, params, offset + per_page, per_page)
        url = ctx.request.url.copy_with(params={"cursor": cursor})
        response.headers["Link"] = f'<{url}>; rel="next"'
    return response


def _per_page(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PER_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PER_PAGE:
        raise invalid([("per_page", f"must be an integer between 1 and {MAX_PER_PAGE}")])
    return int(raw)

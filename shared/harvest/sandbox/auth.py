"""OAuth client-credentials token endpoint, bearer-token checks and the rolling-window rate limit (per
credential; per partner client and organization: see :mod:`~shared.harvest.sandbox.oauth`)."""

from __future__ import annotations

import base64
import binascii
import math
import secrets
from collections import deque
from dataclasses import dataclass
from urllib.parse import parse_qs

import httpx

from shared.harvest.sandbox.state import RateLimit, SandboxConfig, State, Token, iso
from shared.harvest.sandbox.validate import ApiError


def oauth_error(status: int, error: str, description: str) -> httpx.Response:
    """An RFC 6749 error answer: ``{"error", "error_description"}``."""
    return httpx.Response(status, json={"error": error, "error_description": description})


def basic_credentials(request: httpx.Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (client_id, secret) if sep else None


def form(request: httpx.Request) -> dict[str, str]:
    """Form members from the body (urlencoded) and the query string; both placements work in reality."""
    params = {k: v for k, v in request.url.params.items()}
    content_type = request.headers.get("content-type", "")
    if request.content and (not content_type or content_type.startswith("application/x-www-form-urlencoded")):
        try:
            text = request.content.decode()
        except UnicodeDecodeError:
            text = ""
        params.update({k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()})
    return params


def mint_token(state: State, config: SandboxConfig, request: httpx.Request) -> httpx.Response:
    """``POST /token`` for a custom credential: Basic client auth, ``grant_type=client_credentials``, optional
    numeric ``sub``."""
    creds = basic_credentials(request)
    known = state.credentials.get(creds[0]) if creds else None
    if creds is None or known is None or not secrets.compare_digest(known.secret, creds[1]):
        return oauth_error(401, "invalid_client", "client authentication failed")
    params = form(request)
    if params.get("grant_type") != "client_credentials":
        return oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
    sub: int | None = None
    if params.get("sub") not in (None, ""):
        raw = params["sub"]
        user = state.users.get(int(raw)) if raw.isdigit() else None
        if user is None:
            return oauth_error(400, "invalid_request", f"sub {raw} is not a user of this organization")
        if user["deactivated"]:
            return oauth_error(400, "invalid_request", f"sub {raw} is a deactivated user")
        sub = user["id"]
    expires_ts = state.now() + config.token_ttl_s
    access_token = secrets.token_urlsafe(32)
    state.tokens[access_token] = Token(creds[0], sub, known.scopes, expires_ts)
    expires_at = iso(expires_ts)[:19] + "Z"
    return httpx.Response(200, json={"token_type": "Bearer", "access_token": access_token, "expires_at": expires_at})


def authenticate(state: State, request: httpx.Request) -> Token:
    """The live token of a ``Bearer`` header, else a 401 ``{"message": "Unauthorized"}``."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token = state.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
    if token is None or state.now() >= token.expires_ts:
        raise ApiError(401, "Unauthorized")
    return token


@dataclass(frozen=True)
class Admission:
    """What :func:`admit` decided for one request: the answer's headers, the window's use, the limit applied."""

    allowed: bool
    headers: dict[str, str]
    in_window: int
    """Requests in the window after this one (the refused one is not counted)."""
    limit: RateLimit
    at: float
    """When the decision was taken (the sandbox clock)."""


def admit(state: State, key: str, limit: RateLimit) -> Admission:
    """Rolling-window rate limit of one budget ``key`` (a credential's client id, or ``client@org`` for a
    partner in one organization), at ``limit``.

    Allowed requests get ``X-RateLimit-Limit/Remaining/Reset``; a refused one gets ``Retry-After`` and
    ``X-RateLimit-Reset`` only (Greenhouse omits Limit/Remaining on 429) and consumes no budget.
    """
    now = state.now()
    window = state.windows.setdefault(key, deque())
    while window and window[0] <= now - limit.window_s:
        window.popleft()
    if len(window) >= limit.requests:
        frees_at = window[0] + limit.window_s
        retry_after = max(1, math.ceil(frees_at - now))
        headers = {"Retry-After": str(retry_after), "X-RateLimit-Reset": str(math.ceil(frees_at))}
        return Admission(False, headers, len(window), limit, now)
    window.append(now)
    headers = {
        "X-RateLimit-Limit": str(limit.requests),
        "X-RateLimit-Remaining": str(limit.requests - len(window)),
        "X-RateLimit-Reset": str(math.ceil(window[0] + limit.window_s)),
    }
    return Admission(True, headers, len(window), limit, now)

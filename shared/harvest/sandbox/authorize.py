"""``/authorize``: the consent step of the partner authorization-code grant (docs/harvest.md section 3).

``GET /authorize?response_type=code&client_id=..&redirect_uri=..&scope=<space separated>&state=..`` answers a
consent page (``text/html``) whose form POSTs back to the same URL with ``organization_id`` (default: the
default organization), ``user_id`` (the Greenhouse user who is logged in and consents: an active user of that
organization), ``consent_as`` (``service_account`` | ``user``) and ``decision`` (``allow`` | ``deny``).

An unknown ``client_id``, or a ``redirect_uri`` not registered for it (matched exactly), is a 400 error page and
never a redirect (RFC 6749 4.1.2.1); so are bad consent-form members (a browser would show the form again).
Every other outcome redirects (302) to the ``redirect_uri`` with ``state`` echoed: ``code`` on allow, else
``error`` and ``error_description``: ``invalid_request`` (no ``response_type``), ``unsupported_response_type``,
``invalid_scope`` (no ``scope``, or one the client is not approved for), ``access_denied`` (the user denied, or
chose the service account without being a Site Admin). A service-account consent acts as the organization's
service account, a user consent as that user.
"""

from __future__ import annotations

import html
import secrets
from collections import Counter
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from shared.harvest.sandbox.orgs import Organizations
from shared.harvest.sandbox.state import AuthCode, Grant, SandboxConfig, State

CONSENT_AS = ("service_account", "user")
DECISIONS = ("allow", "deny")
NO_STORE = {"Cache-Control": "no-store"}


class PageError(Exception):
    """The request is answered with a 400 error page, not a redirect; the message says why."""


@dataclass(frozen=True)
class AuthorizeQuery:
    """The checked query of an authorization request."""

    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None


def error_page(message: str) -> httpx.Response:
    """The 400 page for a request that must not be redirected."""
    text = f"<!doctype html><title>Authorization error</title><h1>Authorization error</h1><p>{html.escape(message)}</p>"
    return httpx.Response(400, headers={**NO_STORE, "Content-Type": "text/html; charset=utf-8"}, content=text)


def redirect(uri: str, params: dict[str, str | None]) -> httpx.Response:
    """302 to ``uri`` with ``params`` added to its query (``None`` values left out)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return httpx.Response(302, headers={**NO_STORE, "Location": urlunsplit(parts._replace(query=urlencode(query)))})


def _error(query: AuthorizeQuery, error: str, description: str) -> httpx.Response:
    return redirect(query.redirect_uri, {"error": error, "error_description": description, "state": query.state})


def serve(
    state: State, config: SandboxConfig, orgs: Organizations, counts: Counter[str], request: httpx.Request
) -> httpx.Response:
    """``GET`` (the consent page) or ``POST`` (the decision) ``/authorize``; raises :class:`PageError`."""
    params = dict(request.url.params.items())
    partner = state.partners.get(params.get("client_id") or "")
    if partner is None:
        raise PageError(f"unknown client_id {params.get('client_id')!r}")
    redirect_uri = params.get("redirect_uri") or ""
    if redirect_uri not in partner.redirect_uris:
        raise PageError(f"redirect_uri {redirect_uri!r} is not registered for this client")
    scopes = tuple(params.get("scope", "").split())
    query = AuthorizeQuery(params["client_id"], redirect_uri, scopes, params.get("state"))
    if "response_type" not in params:
        return _error(query, "invalid_request", "response_type is required")
    if params["response_type"] != "code":
        return _error(query, "unsupported_response_type", "response_type must be code")
    if not query.scopes:
        return _error(query, "invalid_scope", "scope is required")
    refused = [s for s in query.scopes if s not in partner.scopes]
    if refused:
        return _error(query, "invalid_scope", f"not approved for this client: {' '.join(refused)}")
    if request.method.upper() == "GET":
        return _page(request, query, orgs)
    return _decide(state, config, orgs, counts, query, _form_body(request))


def _form_body(request: httpx.Request) -> dict[str, str]:
    try:
        text = request.content.decode()
    except UnicodeDecodeError:
        raise PageError("the consent form must be UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def _int(body: dict[str, str], name: str) -> int | None:
    raw = body.get(name, "")
    if raw == "":
        return None
    if not raw.isdigit():
        raise PageError(f"{name} must be an integer id")
    return int(raw)


def _decide(
    state: State,
    config: SandboxConfig,
    orgs: Organizations,
    counts: Counter[str],
    query: AuthorizeQuery,
    body: dict[str, str],
) -> httpx.Response:
    org_id = _int(body, "organization_id")
    if org_id is not None and org_id not in orgs:
        raise PageError(f"organization {org_id} does not exist")
    org = orgs.get(org_id)
    user_id = _int(body, "user_id")
    if user_id is None:
        raise PageError("user_id is required: the Greenhouse user who consents")
    user = org.state.active_user(user_id)
    if user is None:
        raise PageError(f"user {user_id} is not an active user of organization {org.org_id}")
    consent_as, decision = body.get("consent_as"), body.get("decision")
    if consent_as not in CONSENT_AS:
        raise PageError(f"consent_as must be one of: {', '.join(CONSENT_AS)}")
    if decision not in DECISIONS:
        raise PageError(f"decision must be one of: {', '.join(DECISIONS)}")
    if decision == "deny":
        counts["consents_denied"] += 1
        return _error(query, "access_denied", "the user denied the authorization request")
    if consent_as == "service_account" and not user["site_admin"]:
        counts["consents_denied"] += 1
        return _error(query, "access_denied", "only Site Admins can authorize with a service account")
    sub = org.service_account_id if consent_as == "service_account" else user_id
    code = secrets.token_urlsafe(32)
    grant = Grant(query.client_id, org.org_id, sub, frozenset(query.scopes))
    state.codes[code] = AuthCode(grant, query.redirect_uri, state.now() + config.auth_code_ttl_s)
    counts["codes_issued"] += 1
    return redirect(query.redirect_uri, {"code": code, "state": query.state})


def _page(request: httpx.Request, query: AuthorizeQuery, orgs: Organizations) -> httpx.Response:
    e = html.escape
    action = "/authorize?" + request.url.query.decode("ascii")
    scopes = "".join(f"<li>{e(s)}</li>" for s in query.scopes)
    options = "".join(
        f'<option value="{o.org_id}"{" selected" if o is orgs.default else ""}>{e(o.name)}</option>' for o in orgs
    )
    text = (
        f"<!doctype html><title>Authorize {e(query.client_id)}</title>"
        f"<h1>{e(query.client_id)} asks to access your Greenhouse account</h1><ul>{scopes}</ul>"
        f'<form method="post" action="{e(action)}">'
        f'<label>Organization <select name="organization_id">{options}</select></label>'
        '<label>Your user id <input name="user_id" inputmode="numeric" required></label>'
        '<label><input type="radio" name="consent_as" value="service_account" checked> Use a service account</label>'
        '<label><input type="radio" name="consent_as" value="user"> Act as me</label>'
        '<button name="decision" value="allow">Allow</button><button name="decision" value="deny">Deny</button>'
        "</form>"
    )
    return httpx.Response(200, headers={**NO_STORE, "Content-Type": "text/html; charset=utf-8"}, content=text)

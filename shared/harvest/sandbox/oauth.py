"""Partner OAuth at the auth server (docs/harvest.md section 3): ``POST /token`` for partner clients (code
exchange, refresh), ``POST /introspect``, consent revocation, and the scopes a partner token holds now.

``POST /token`` with a partner client's Basic auth: ``grant_type=client_credentials`` is refused
(``unauthorized_client``: "The Client Credentials Flow is not available for Greenhouse partners");
``authorization_code`` takes ``code`` and the ``redirect_uri`` given to ``/authorize`` (a code is single use,
bound to its client, and lives :attr:`~shared.harvest.sandbox.state.SandboxConfig.auth_code_ttl_s`);
``refresh_token`` takes a ``refresh_token``, single use: every refresh rotates it, and one unused for
:attr:`~shared.harvest.sandbox.state.SandboxConfig.refresh_token_ttl_s` is dead. Both answer
``{token_type, access_token, refresh_token, expires_at}`` (no organization or user ids). Errors are RFC 6749's
``{"error", "error_description"}``: 401 ``invalid_client``, else 400. Any other client id goes to the custom
credentials' client-credentials endpoint, unchanged. Scopes removed from a partner client are enforced at once
on its live tokens and are not granted again by a refresh; added ones need a new consent [P handling-scope-changes].
"""

from __future__ import annotations

import secrets
from collections import Counter

import httpx

from shared.harvest.sandbox.auth import basic_credentials, form, mint_token, oauth_error
from shared.harvest.sandbox.orgs import Organizations
from shared.harvest.sandbox.state import Grant, RefreshToken, SandboxConfig, State, Token, iso

CLIENT_CREDENTIALS_REFUSED = "The Client Credentials Flow is not available for Greenhouse partners"
CLAIMS = "https://auth.greenhouse.io/claims"
LIVE, USED, REVOKED = "live", "used", "revoked"


def _invalid_grant(counts: Counter[str], counter: str | None, description: str) -> httpx.Response:
    if counter is not None:
        counts[counter] += 1
    return oauth_error(400, "invalid_grant", description)


def token_endpoint(state: State, config: SandboxConfig, counts: Counter[str], request: httpx.Request) -> httpx.Response:
    """``POST /token``: a partner client's grants here; a custom credential's client-credentials grant as before."""
    creds = basic_credentials(request)
    partner = state.partners.get(creds[0]) if creds else None
    if creds is None or partner is None:
        return mint_token(state, config, request)
    if not secrets.compare_digest(partner.secret, creds[1]):
        return oauth_error(401, "invalid_client", "client authentication failed")
    params = form(request)
    grant_type = params.get("grant_type")
    if grant_type == "client_credentials":
        counts["client_credentials_refused"] += 1
        return oauth_error(400, "unauthorized_client", CLIENT_CREDENTIALS_REFUSED)
    if grant_type == "authorization_code":
        return _exchange(state, config, counts, creds[0], params)
    if grant_type == "refresh_token":
        return _refresh(state, config, counts, creds[0], params)
    return oauth_error(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")


def _exchange(
    state: State, config: SandboxConfig, counts: Counter[str], client_id: str, params: dict[str, str]
) -> httpx.Response:
    for name in ("code", "redirect_uri"):
        if not params.get(name):
            return oauth_error(400, "invalid_request", f"{name} is required")
    code = state.codes.get(params["code"])
    if code is None or code.grant.client_id != client_id:
        return _invalid_grant(counts, None, "the authorization code is invalid")
    if code.used:
        return _invalid_grant(counts, "code_reused", "the authorization code was already used")
    if state.now() >= code.expires_ts:
        return _invalid_grant(counts, "code_expired", "the authorization code has expired")
    if params["redirect_uri"] != code.redirect_uri:
        return _invalid_grant(counts, None, "redirect_uri does not match the one of the authorization request")
    code.used = True
    counts["codes_exchanged"] += 1
    return _issue(state, config, code.grant)


def _refresh(
    state: State, config: SandboxConfig, counts: Counter[str], client_id: str, params: dict[str, str]
) -> httpx.Response:
    if not params.get("refresh_token"):
        return oauth_error(400, "invalid_request", "refresh_token is required")
    record = state.refresh_tokens.get(params["refresh_token"])
    if record is None or record.grant.client_id != client_id:
        return _invalid_grant(counts, None, "the refresh token is invalid")
    if record.status == REVOKED:
        return _invalid_grant(counts, "refresh_revoked", "the refresh token was revoked: consent again")
    if record.status == USED:
        return _invalid_grant(counts, "refresh_reused", "the refresh token was already used (they rotate)")
    if state.now() - record.issued_ts >= config.refresh_token_ttl_s:
        return _invalid_grant(counts, "refresh_expired", "the refresh token has expired: consent again")
    record.status = USED
    counts["refreshes"] += 1
    grant = record.grant
    approved = state.partners[client_id].scopes
    return _issue(state, config, Grant(grant.client_id, grant.org_id, grant.sub, grant.scopes & approved))


def _issue(state: State, config: SandboxConfig, grant: Grant) -> httpx.Response:
    """A new access token and a new refresh token for ``grant``."""
    now = state.now()
    access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires_ts = now + config.token_ttl_s
    state.tokens[access] = Token(grant.client_id, grant.sub, grant.scopes, expires_ts, grant.org_id)
    state.refresh_tokens[refresh] = RefreshToken(grant, now)
    body = {
        "token_type": "Bearer",
        "access_token": access,
        "refresh_token": refresh,
        "expires_at": iso(expires_ts)[:19] + "Z",
    }
    return httpx.Response(200, json=body)


def live_scopes(state: State, token: Token) -> frozenset[str]:
    """The scopes a token holds now: a custom credential's as minted; a partner's cut to the client's approved
    scopes (removals apply at once)."""
    if token.org_id is None:
        return token.scopes
    partner = state.partners.get(token.client_id)
    return token.scopes & partner.scopes if partner is not None else frozenset()


def introspect(state: State, orgs: Organizations, counts: Counter[str], request: httpx.Request) -> httpx.Response:
    """``POST /introspect`` (Basic client auth of a partner client or a custom credential; form ``token``).

    A live access token of that client: ``active``, ``client_id``, ``sub`` (the acting user; a custom
    credential's token without ``sub``: its organization's service account), ``scope``, ``exp`` and the
    Greenhouse claims (organization id and name, ``user_role``). Anything else: ``{"active": false}``.
    """
    creds = basic_credentials(request)
    client = (state.partners.get(creds[0]) or state.credentials.get(creds[0])) if creds else None
    if creds is None or client is None or not secrets.compare_digest(client.secret, creds[1]):
        return oauth_error(401, "invalid_client", "client authentication failed")
    value = form(request).get("token")
    if not value:
        return oauth_error(400, "invalid_request", "token is required")
    counts["introspections"] += 1
    token = state.tokens.get(value)
    if token is None or token.client_id != creds[0] or state.now() >= token.expires_ts:
        return httpx.Response(200, json={"active": False})
    org = orgs.of(token)
    sub = org.service_account_id if token.sub is None else token.sub
    user = org.state.users.get(sub)
    body = {
        "active": True,
        "client_id": token.client_id,
        "sub": str(sub),
        "scope": " ".join(sorted(live_scopes(state, token))),
        "exp": int(token.expires_ts),
        CLAIMS: {
            "organization": {"id": org.org_id, "name": org.name},
            "user_role": "site_admin" if user is not None and user["site_admin"] else "basic",
        },
    }
    return httpx.Response(200, json=body)


def revoke(state: State, config: SandboxConfig, client_id: str, org_id: int) -> int:
    """Kill every access and refresh token (and pending code) of ``client_id`` in ``org_id``; how many tokens
    were live. Spent refresh tokens stay ``used``; live ones become ``revoked``."""
    now = state.now()
    killed = [k for k, t in state.tokens.items() if t.client_id == client_id and t.org_id == org_id]
    live = sum(now < state.tokens[k].expires_ts for k in killed)
    for key in killed:
        del state.tokens[key]
    for record in state.refresh_tokens.values():
        if record.grant.client_id == client_id and record.grant.org_id == org_id and record.status == LIVE:
            live += now - record.issued_ts < config.refresh_token_ttl_s
            record.status = REVOKED
    for key in [k for k, c in state.codes.items() if c.grant.client_id == client_id and c.grant.org_id == org_id]:
        del state.codes[key]
    return live

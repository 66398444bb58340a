"""Greenhouse's partner OAuth on the wire (authorization-code grant; ``docs/harvest.md``, partner integrations).

- :func:`authorize_url`: where the customer's browser goes to consent (``response_type=code``, client id,
  redirect URI, the scopes, a ``state``; no PKCE) [P POAUTH, 3P NANGO].
- :func:`callback_code`: the code in the redirect back, or the refusal it carries (``error``).
- :class:`PartnerOAuth`: the code exchange and the refresh at the token endpoint (HTTP Basic client auth,
  form body), and introspection (the customer organization, ``sub``, scopes, role) [3P slates].
- :class:`PartnerAuth`: the ``httpx.Auth`` that puts a partner connection's access token on every Harvest
  request and, after a 401, asks its token keeper once for a fresher one.

authlib builds the authorize URL and the token requests' bodies (its RFC 6749 parameter functions) and reads
the callback; the requests go through the process's pooled ``httpx.Client``, so they share its timeouts and
an injected test transport. The answers are parsed here: Greenhouse's token answer carries ``expires_at`` as
ISO 8601 (``expires_in`` accepted too), which authlib's token type does not read. Refresh tokens are single
use: a refresh answered ``invalid_grant`` means the authorization is gone (or another process used the token
first, which the keeper rules out before concluding). Nothing here logs a token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from shared.errors import (
    ConsentError,
    GrantRefusedError,
    HarvestConnectionError,
    HarvestTimeoutError,
    UnexpectedResponseError,
)
from shared.harvest.auth import DEFAULT_TOKEN_LIFETIME_S, Credential, parse_expires_at
from shared.harvest.models import TokenResponse
from shared.harvest.ratelimit import error_for_response

GREENHOUSE_CLAIMS = "https://auth.greenhouse.io/claims"
"""Introspection's member holding the organization and the user's role [3P slates]."""
STATE_BYTES = 32
"""Length of a consent's ``state`` (random URL-safe characters; single use, bound to one connect)."""


def new_state() -> str:
    """A fresh random ``state`` for one consent."""
    return str(generate_token(STATE_BYTES))


def authorize_url(endpoint: str, client_id: str, redirect_uri: str, scopes: Iterable[str], state: str) -> str:
    """The URL that asks the customer to consent (scopes space separated, as RFC 6749 writes them)."""
    return str(
        prepare_grant_uri(endpoint, client_id, "code", redirect_uri=redirect_uri, scope=list(scopes), state=state)
    )


def callback_code(params: Mapping[str, str]) -> str:
    """The authorization code of a consent's redirect; :class:`ConsentError` when it carries a refusal
    (``error``: ``access_denied`` when the customer declined) or no code."""
    error = params.get("error")
    if error:
        detail = (params.get("error_description") or "").strip()[:200]
        what = "the consent was denied" if error == "access_denied" else "Greenhouse refused the consent"
        raise ConsentError(f"{what} ({error}{': ' + detail if detail else ''}); nothing was stored")
    code = params.get("code")
    if not code:
        raise ConsentError("the consent's redirect carries neither a code nor an error; nothing was stored")
    return code


class TokenSet(BaseModel):
    """A token answer: the access token, the (rotated) refresh token, and when the access token expires."""

    model_config = ConfigDict(frozen=True)

    access_token: SecretStr
    refresh_token: SecretStr
    expires_at: float
    """Epoch seconds."""


class Introspection(BaseModel):
    """What introspection says of a token: live or not, for which organization, acting as whom, with which scopes."""

    active: bool
    client_id: str | None = None
    sub: int | None = None
    scopes: list[str] = []
    organization_id: int | None = None
    organization_name: str | None = None
    user_role: str | None = None


class _IntrospectionAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")

    active: bool
    client_id: str | None = None
    sub: str | int | None = None
    scope: str | None = None


def _introspection(body: Any) -> Introspection:
    answer = _IntrospectionAnswer.model_validate(body)
    if not answer.active:
        return Introspection(active=False)
    claims = (answer.model_extra or {}).get(GREENHOUSE_CLAIMS) or {}
    org = claims.get("organization") if isinstance(claims, dict) else None
    org = org if isinstance(org, dict) else {}
    sub = str(answer.sub) if answer.sub is not None else ""
    return Introspection(
        active=True,
        client_id=answer.client_id,
        sub=int(sub) if sub.isdigit() else None,
        scopes=(answer.scope or "").split(),
        organization_id=int(org["id"]) if str(org.get("id", "")).isdigit() else None,
        organization_name=org.get("name") if isinstance(org.get("name"), str) else None,
        user_role=claims.get("user_role") if isinstance(claims, dict) else None,
    )


@dataclass
class PartnerOAuth:
    """The token and introspection endpoints for one partner client (``credential``), over ``http``."""

    http: httpx.Client
    credential: Credential
    token_url: str
    introspect_url: str
    wall: Callable[[], float] = time.time

    def exchange_code(self, code: str, redirect_uri: str) -> TokenSet:
        """Trade a consent's code (it lives a minute, single use) for tokens."""
        body = prepare_token_request("authorization_code", code=code, redirect_uri=redirect_uri)
        return self._tokens(self._post(self.token_url, body))

    def refresh(self, refresh_token: SecretStr) -> TokenSet:
        """Trade a refresh token (single use) for a new access token and a new refresh token."""
        body = prepare_token_request("refresh_token", refresh_token=refresh_token.get_secret_value())
        return self._tokens(self._post(self.token_url, body))

    def introspect(self, access_token: SecretStr) -> Introspection:
        """What Greenhouse says of ``access_token`` (organization, ``sub``, scopes, role)."""
        body = urlencode({"token": access_token.get_secret_value()})
        response = self._post(self.introspect_url, body)
        try:
            return _introspection(response.json())
        except (ValueError, ValidationError, TypeError, KeyError):
            raise UnexpectedResponseError(
                "introspection answered an unreadable body",
                status=response.status_code,
                path=_path(self.introspect_url),
            ) from None

    def _post(self, url: str, body: str) -> httpx.Response:
        secret = self.credential.client_secret.get_secret_value()
        request = self.http.build_request(
            "POST", url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        request = next(httpx.BasicAuth(self.credential.client_id, secret).auth_flow(request))
        try:
            response = self.http.send(request)
        except httpx.TimeoutException:
            raise HarvestTimeoutError("no answer from Greenhouse's OAuth endpoint in time", path=_path(url)) from None
        except httpx.TransportError as exc:
            raise HarvestConnectionError(
                f"{type(exc).__name__} talking to Greenhouse's OAuth endpoint", path=_path(url)
            ) from None
        if response.status_code in (400, 401):
            raise _refused(response, url)
        error = error_for_response(response, "POST", _path(url))
        if error is not None:
            error.method = None  # not a Harvest call: nothing was created
            raise error
        return response

    def _tokens(self, response: httpx.Response) -> TokenSet:
        try:
            token = TokenResponse.model_validate_json(response.content)
            if not token.refresh_token:
                raise ValueError("no refresh_token")
            lifetime = DEFAULT_TOKEN_LIFETIME_S
            if token.expires_at:
                lifetime = parse_expires_at(token.expires_at) - self.wall()
            elif token.expires_in is not None:
                lifetime = float(token.expires_in)
        except (ValidationError, ValueError):
            raise UnexpectedResponseError(
                "the token endpoint answered an unreadable body",
                status=response.status_code,
                path=_path(self.token_url),
            ) from None
        return TokenSet(
            access_token=SecretStr(token.access_token),
            refresh_token=SecretStr(token.refresh_token),
            expires_at=self.wall() + lifetime,
        )


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def _refused(response: httpx.Response, url: str) -> GrantRefusedError:
    """The RFC 6749 refusal of the token endpoint (``invalid_grant``, ``invalid_client``...)."""
    code, detail = "unknown_error", ""
    try:
        body = response.json()
        if isinstance(body, dict):
            code = str(body.get("error") or code)[:100]
            detail = str(body.get("error_description") or "")[:200]
    except ValueError:
        pass
    return GrantRefusedError(code, detail, status=response.status_code, path=_path(url))


class AccessTokens(Protocol):
    """A partner connection's token keeper (:mod:`shared.connections.grants`): the access token to send now,
    a fresher one after Greenhouse answered 401 to ``stale``, and ``rejected`` when the fresher one got a
    401 too. Each raises :class:`~shared.errors.ReauthRequiredError` when the customer must consent again."""

    def token(self) -> str: ...

    def renew(self, stale: str) -> str: ...

    def rejected(self, token: str) -> None: ...


class PartnerAuth(httpx.Auth):
    """``Bearer`` tokens from a partner connection's keeper; after a 401, one fresher token and one replay."""

    def __init__(self, tokens: AccessTokens) -> None:
        self.tokens = tokens

    def with_sub(self, sub: int | None) -> PartnerAuth:
        """Itself: who acts was fixed at consent (there is no ``sub`` in the partner flow)."""
        return self

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.tokens.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        fresh = self.tokens.renew(token)
        if fresh == token:
            return
        request.headers["Authorization"] = f"Bearer {fresh}"
        response = yield request
        if response.status_code == 401:
            self.tokens.rejected(fresh)


def require_redirect(redirect_uri: str) -> str:
    """``redirect_uri`` if it is an absolute http(s) URL, else :class:`ConsentError`."""
    parts = urlsplit(redirect_uri.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConsentError(
            f"--redirect-uri must be an absolute http(s) URL registered with Greenhouse, not {redirect_uri!r}"
        )
    return redirect_uri.strip()

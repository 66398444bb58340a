"""OAuth2 client-credentials auth for Harvest v3 [P AUTH]: mint, cache per (client id, sub), re-mint once.

``POST <token_url>`` with HTTP Basic ``client_id:client_secret`` and a form body
``grant_type=client_credentials[&sub=<user id>]``; the answer carries ``access_token`` and ``expires_at``
[P GHPHP] (``expires_in`` [3P] as a fallback, else one hour [P POAUTH]).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from shared.errors import AuthenticationError, UnexpectedResponseError
from shared.harvest.models import TokenResponse
from shared.harvest.ratelimit import error_for_response

DEFAULT_TOKEN_LIFETIME_S = 3600.0
"""Lifetime assumed when the token answer names none (access tokens live one hour [P POAUTH])."""


class Credential(BaseModel):
    """A Harvest v3 (OAuth) client id and secret; the secret never appears in repr or logs.

    ``organization_id`` is set for a partner client acting for one customer organization: Greenhouse counts
    the rate limit per customer account, and one partner client id serves every customer, so :attr:`key`
    (the key of the limiter, the learned window and the circuit breaker) is the organization's."""

    client_id: str
    client_secret: SecretStr
    organization_id: int | None = None

    @property
    def key(self) -> str:
        """``client_id`` for a custom credential, ``client_id@organization_id`` for a partner's customer."""
        return self.client_id if self.organization_id is None else f"{self.client_id}@{self.organization_id}"


class TokenCache:
    """Thread-safe, per-process access tokens keyed by (client_id, sub), with monotonic expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, int | None], tuple[str, float]] = {}

    def get(self, client_id: str, sub: int | None, now: float, margin_s: float) -> str | None:
        """The cached token when it stays valid for more than ``margin_s`` after ``now``, else None."""
        with self._lock:
            entry = self._tokens.get((client_id, sub))
        if entry is None or entry[1] - margin_s <= now:
            return None
        return entry[0]

    def put(self, client_id: str, sub: int | None, token: str, expires_at_monotonic: float) -> None:
        """Store a freshly minted token."""
        with self._lock:
            self._tokens[(client_id, sub)] = (token, expires_at_monotonic)

    def invalidate(self, client_id: str, sub: int | None, token: str | None = None) -> None:
        """Forget the token (only if it is still ``token``, so a newer mint by another thread survives)."""
        with self._lock:
            entry = self._tokens.get((client_id, sub))
            if entry is not None and (token is None or entry[0] == token):
                del self._tokens[(client_id, sub)]


def parse_expires_at(value: str) -> float:
    """Epoch seconds of an ISO-8601 timestamp (``Z`` or offset, with or without fractions; naive = UTC)."""
    parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class OAuth2ClientCredentials(httpx.Auth):
    """``httpx.Auth`` that attaches ``Bearer`` tokens, minting through the generator flow (any transport).

    A cached token is reused until ``margin_s`` before it expires. A 401 from Harvest re-mints once and
    replays the request; a second 401 is returned to the caller. A token endpoint 400/401 raises
    :class:`AuthenticationError` naming the client id (never the secret); other failures raise the
    mapped :class:`HarvestError` with ``method=None`` (nothing was sent to Harvest yet).
    """

    requires_response_body = True

    def __init__(
        self,
        credential: Credential,
        token_url: str,
        *,
        sub: int | None = None,
        cache: TokenCache | None = None,
        margin_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.credential = credential
        self.token_url = token_url
        self.sub = sub
        self.cache = cache if cache is not None else TokenCache()
        self.margin_s = margin_s
        self._clock = clock
        self._wall = wall
        self._token_path = urlsplit(token_url).path or "/"

    def with_sub(self, sub: int | None) -> OAuth2ClientCredentials:
        """The same credential, cache and clocks acting as another user."""
        return OAuth2ClientCredentials(
            self.credential,
            self.token_url,
            sub=sub,
            cache=self.cache,
            margin_s=self.margin_s,
            clock=self._clock,
            wall=self._wall,
        )

    def token_request(self) -> httpx.Request:
        """The mint request (form body; Basic auth with the client id and secret)."""
        data = {"grant_type": "client_credentials"}
        if self.sub is not None:
            data["sub"] = str(self.sub)
        basic = httpx.BasicAuth(self.credential.client_id, self.credential.client_secret.get_secret_value())
        request = httpx.Request("POST", self.token_url, data=data)
        return next(basic.auth_flow(request))

    def _refused(self, response: httpx.Response) -> AuthenticationError:
        who = f"client id {self.credential.client_id!r} or its secret"
        if self.sub is not None:
            who += f" (or the acting user sub={self.sub})"
        code = ""
        try:
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                code = f" [{body['error'][:100]}]"
        except ValueError:
            pass
        return AuthenticationError(
            f"the token endpoint refused {who}{code}", status=response.status_code, path=self._token_path
        )

    def accept_token(self, response: httpx.Response) -> str:
        """Parse a token answer, cache it and return the access token; raise on a refusal or bad body."""
        if response.status_code in (400, 401):
            raise self._refused(response)
        error = error_for_response(response, "POST", self._token_path)
        if error is not None:
            error.method = None  # Harvest itself was not called: the outcome of the caller's request is known
            raise error
        try:
            token = TokenResponse.model_validate_json(response.content)
            lifetime = DEFAULT_TOKEN_LIFETIME_S
            if token.expires_at:
                lifetime = parse_expires_at(token.expires_at) - self._wall()
            elif token.expires_in is not None:
                lifetime = float(token.expires_in)
        except (ValidationError, ValueError) as exc:
            raise UnexpectedResponseError(
                f"token endpoint answered an unparseable body ({type(exc).__name__})",
                status=response.status_code,
                path=self._token_path,
            ) from None
        self.cache.put(self.credential.client_id, self.sub, token.access_token, self._clock() + lifetime)
        return token.access_token

    def cached_token(self) -> str | None:
        """The cached token when it is valid beyond the refresh margin."""
        return self.cache.get(self.credential.client_id, self.sub, self._clock(), self.margin_s)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.cached_token()
        if token is None:
            token = self.accept_token((yield self.token_request()))
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        self.cache.invalidate(self.credential.client_id, self.sub, token)
        token = self.accept_token((yield self.token_request()))
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

"""Counters the sandbox keeps about the traffic it saw (for tests, the demo and benchmarks)."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TypedDict

from shared.harvest.sandbox.state import RateLimit

MAX_INVALID = 1000


class InvalidRequest(TypedDict):
    """One 4xx the sandbox sent (other than a 429), and why."""

    route: str
    status: int
    reason: str


class CredentialStats(TypedDict):
    """One credential in :attr:`StatsSnapshot.credentials`: the limit it has now and its rate-limit traffic."""

    rate_limit: int
    """Requests allowed per window: the credential's own limit, else the sandbox's."""
    window_s: float
    """The rolling window, seconds: the credential's own, else the sandbox's."""
    accepted: int
    """Requests the rate limit let through (they used budget; their answer may still be an error)."""
    rate_limited: int
    """Requests refused with 429."""
    first_accepted_at: float | None
    """Epoch seconds (sandbox clock) of the first accepted request; ``None`` before any."""
    last_accepted_at: float | None
    """Epoch seconds (sandbox clock) of the latest accepted request; ``None`` before any."""
    max_in_window: int
    """Most requests seen in one rolling window (as :attr:`StatsSnapshot.max_in_window`, 0 before any)."""


class StatsSnapshot(TypedDict):
    """:meth:`Stats.snapshot`: what tests, the demo and benchmarks read about the traffic."""

    total_requests: int
    requests: dict[str, dict[str, int]]
    """Route key -> status (``"dropped"`` for a dropped connection) -> count."""
    rate_limited: int
    faults: dict[str, int]
    """Fault kind -> how many requests it hit (scripted and random, writes and reads)."""
    outage: int
    """Requests answered by an outage (:meth:`Sandbox.outage`); each is also counted under its route."""
    invalid: list[InvalidRequest]
    max_in_window: dict[str, int]
    credentials: dict[str, CredentialStats]
    """Client id -> its limit and traffic, for every credential the sandbox knows; ``client_id@org_id`` -> the
    same for every partner client and organization with a consent (one budget per organization)."""


@dataclass(frozen=True)
class OAuthStats:
    """:meth:`Sandbox.oauth_stats <shared.harvest.sandbox.app.Sandbox.oauth_stats>`: what happened in the
    partner OAuth flow (also ``GET /_sandbox/oauth``)."""

    codes_issued: int = 0
    """Authorization codes handed out by a consent."""
    codes_exchanged: int = 0
    """Codes turned into tokens at ``POST /token``."""
    code_reused: int = 0
    """Exchanges refused because the code was already used."""
    code_expired: int = 0
    """Exchanges refused because the code was older than ``auth_code_ttl_s``."""
    refreshes: int = 0
    """Successful refreshes (each rotated the refresh token)."""
    refresh_reused: int = 0
    """Refreshes refused because the refresh token was already used."""
    refresh_expired: int = 0
    """Refreshes refused because the refresh token was unused for ``refresh_token_ttl_s``."""
    refresh_revoked: int = 0
    """Refreshes refused because the consent was revoked."""
    introspections: int = 0
    """``POST /introspect`` calls by an authenticated client (active or not)."""
    consents_denied: int = 0
    """Consents answered ``access_denied``: the user denied, or a non-Site Admin chose the service account."""
    client_credentials_refused: int = 0
    """``grant_type=client_credentials`` requests by a partner client (refused: ``unauthorized_client``)."""


OAUTH_COUNTERS = tuple(f.name for f in fields(OAuthStats))


@dataclass
class _Traffic:
    """One credential's rate-limit decisions so far."""

    accepted: int = 0
    rate_limited: int = 0
    first_accepted_at: float | None = None
    last_accepted_at: float | None = None


class Stats:
    """Requests by route and status, 429s, faults, outage answers, invalid requests; per credential its
    admissions and peak."""

    def __init__(self) -> None:
        self.total_requests = 0
        self.by_route: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.rate_limited = 0
        self.faults: Counter[str] = Counter()
        self.outage = 0
        self.invalid: deque[InvalidRequest] = deque(maxlen=MAX_INVALID)
        self.max_in_window: dict[str, int] = {}
        self.traffic: defaultdict[str, _Traffic] = defaultdict(_Traffic)
        self.oauth: Counter[str] = Counter()
        """Partner OAuth events by :class:`OAuthStats` field name."""

    def oauth_snapshot(self) -> OAuthStats:
        """The partner OAuth counters so far."""
        return OAuthStats(**{name: self.oauth[name] for name in OAUTH_COUNTERS})

    def record(self, route: str, status: int | str, reason: str | None = None) -> None:
        """Count one finished request; ``status`` is ``"dropped"`` for a dropped connection."""
        self.total_requests += 1
        self.by_route[route][str(status)] += 1
        if status == 429:
            self.rate_limited += 1
        elif isinstance(status, int) and 400 <= status < 500:
            self.invalid.append({"route": route, "status": status, "reason": reason or ""})

    def window_peak(self, client_id: str, in_window: int) -> None:
        """Remember the most requests seen in one rolling window for a credential (or ``client@org`` key)."""
        if in_window > self.max_in_window.get(client_id, 0):
            self.max_in_window[client_id] = in_window

    def admission(self, client_id: str, *, allowed: bool, in_window: int, at: float) -> None:
        """Count one rate-limit decision for a budget, taken at ``at``, and its window's use: ``client_id`` is a
        credential's client id, or ``f"{client_id}@{org_id}"`` for a partner token in one organization."""
        self.window_peak(client_id, in_window)
        traffic = self.traffic[client_id]
        if not allowed:
            traffic.rate_limited += 1
            return
        traffic.accepted += 1
        if traffic.first_accepted_at is None:
            traffic.first_accepted_at = at
        traffic.last_accepted_at = at

    def credential(self, client_id: str, limit: RateLimit) -> CredentialStats:
        """One credential's figures, with the limit it has now."""
        traffic = self.traffic.get(client_id) or _Traffic()
        return {
            "rate_limit": limit.requests,
            "window_s": limit.window_s,
            "accepted": traffic.accepted,
            "rate_limited": traffic.rate_limited,
            "first_accepted_at": traffic.first_accepted_at,
            "last_accepted_at": traffic.last_accepted_at,
            "max_in_window": self.max_in_window.get(client_id, 0),
        }

    def snapshot(self, limits: Mapping[str, RateLimit]) -> StatsSnapshot:
        """JSON-serialisable view; ``limits`` (client id -> its current limit) names the credentials to report."""
        return {
            "total_requests": self.total_requests,
            "requests": {route: dict(counts) for route, counts in self.by_route.items()},
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "outage": self.outage,
            "invalid": list(self.invalid),
            "max_in_window": dict(self.max_in_window),
            "credentials": {cid: self.credential(cid, limits[cid]) for cid in sorted(limits)},
        }

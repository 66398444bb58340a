"""The sandbox core: :class:`Sandbox` turns one ``httpx.Request`` into one ``httpx.Response``.

Order of checks on ``/v3/...`` (as Greenhouse): outage (:meth:`Sandbox.outage`: its status, before
anything else), bearer token (401), rate limit (429), fault injection, route (404), scope (403),
site-admin rule for list routes (403), validation (422), action. ``POST /token`` has the outage and
fault checks too.

A /v3 request acts in its token's organization (:mod:`~shared.harvest.sandbox.orgs`): a custom credential's
token in the default one (:attr:`Sandbox.state`), a partner's in the one it was consented for; the rate limit
is counted per credential, and per partner client and organization. The partner OAuth pages and endpoints,
``GET``/``POST /authorize`` (:mod:`~shared.harvest.sandbox.authorize`) and ``POST /introspect``
(:mod:`~shared.harvest.sandbox.oauth`), are served without outage or fault checks: the outage and the faults
model what the exporter's workers call (the API and token minting); the consent page is a browser step and
introspection a diagnostic, and a test of a failing refresh stays about the refresh. They are counted in the
stats under ``GET /authorize``, ``POST /authorize`` and ``POST /introspect``; latency applies to them.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import httpx

from shared.harvest.sandbox import (
    admin,
    authorize,
    oauth,
    routes_applications,
    routes_candidates,
    routes_lookups,
    routes_profile,
    routes_tags,
    webhooks,
)
from shared.harvest.sandbox.auth import admit, authenticate
from shared.harvest.sandbox.faults import (
    AFTER_KINDS,
    BEFORE_KINDS,
    SLOW_AFTER,
    SLOW_BEFORE,
    DropConnectionError,
    add_fault,
    check_config,
    take_fault,
)
from shared.harvest.sandbox.orgs import Organization, Organizations, budget_key, check_limits
from shared.harvest.sandbox.routing import Ctx, Route, reply
from shared.harvest.sandbox.seed import ADMIN_USER_ID, ORG_ID, ORG_NAME, SERVICE_ACCOUNT_USER_ID, seed, seed_tenant
from shared.harvest.sandbox.state import (
    ALL_ATTACHMENT_TYPES,
    AttachmentFile,
    Credential,
    Outage,
    PartnerClient,
    RateLimit,
    SandboxConfig,
    State,
    Token,
    WebhookEndpoint,
)
from shared.harvest.sandbox.stats import OAuthStats, Stats, StatsSnapshot
from shared.harvest.sandbox.validate import ApiError

ROUTES: list[Route] = [
    *routes_candidates.ROUTES,
    *routes_applications.ROUTES,
    *routes_profile.ROUTES,
    *routes_tags.ROUTES,
    *routes_lookups.ROUTES,
]
SERVER_ERROR = {"message": "Internal server error"}
UNAVAILABLE = 503
"""The status of an ``unavailable`` fault and the default status of an outage."""


def error_body(status: int) -> dict[str, str]:
    """Harvest's error body for a server-side failure: ``{"message": ...}``."""
    return SERVER_ERROR if status == 500 else {"message": HTTPStatus(status).phrase}


def find_route(method: str, path: str) -> tuple[Route, dict[str, int]] | None:
    """The route serving ``method path`` and its path ids (a known path with another method: none)."""
    for route in ROUTES:
        ids = route.match(path)
        if ids is not None and route.method == method:
            return route, ids
    return None


def _positive_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number of seconds")


def _reason(response: httpx.Response) -> str | None:
    """Why a 4xx/5xx was sent, for the stats' list of invalid requests."""
    if response.status_code < 400:
        return None
    body = response.json()
    reason = str(body.get("message") or body.get("error"))
    details = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in body.get("errors") or [])
    return f"{reason} ({details})" if details else reason


class Sandbox:
    """A strict in-memory fake of Greenhouse Harvest v3 (and its ``/token`` endpoint).

    ``clock`` (default :func:`time.time`) drives token expiry, rate-limit windows and candidate
    visibility, so tests advance time instead of sleeping; ``sleep`` serves latency and the ``slow`` and
    ``slow_after`` faults. Configured webhooks (:meth:`add_webhook`) are delivered from a background thread
    through ``webhook_client`` (default: an ``httpx.Client`` of its own); :meth:`close` stops it.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        webhook_client: httpx.Client | None = None,
    ) -> None:
        self.config = config or SandboxConfig()
        check_config(self.config)
        cap = self.config.max_attachment_bytes
        if isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0:
            raise ValueError("max_attachment_bytes must be a positive integer")
        if self.config.attachment_content_type not in ("refused", "required"):
            raise ValueError("attachment_content_type must be 'refused' or 'required'")
        _positive_seconds("auth_code_ttl_s", self.config.auth_code_ttl_s)
        _positive_seconds("refresh_token_ttl_s", self.config.refresh_token_ttl_s)
        self.state = State(clock=clock or time.time, rng=random.Random(self.config.seed))
        """The default organization (:data:`~shared.harvest.sandbox.seed.ORG_ID`); it also holds the credentials,
        partner clients, tokens, faults and the outage of the whole sandbox."""
        self.stats_recorder = Stats()
        self._sleep = sleep or time.sleep
        self._webhooks = webhooks.Dispatcher(
            self.config.webhook_retry_delays_s, self.config.webhook_timeout_s, webhook_client
        )
        self.state.webhook_sink = self._webhooks.submit
        seed(self.state)
        self._orgs = Organizations(Organization(ORG_ID, ORG_NAME, self.state, SERVICE_ACCOUNT_USER_ID))

    # --- public helpers ---------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """An ``httpx.MockTransport`` over :meth:`handle`; a dropped connection raises ``RemoteProtocolError``."""

        def handler(request: httpx.Request) -> httpx.Response:
            try:
                return self.handle(request)
            except DropConnectionError:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from None

        return httpx.MockTransport(handler)

    def add_credential(
        self,
        client_id: str,
        client_secret: str,
        scopes: Iterable[str],
        *,
        rate_limit: int | None = None,
        window_s: float | None = None,
    ) -> None:
        """Create or replace an API credential; tokens minted later carry these scopes.

        ``rate_limit`` requests per rolling ``window_s`` seconds apply to this credential alone; either left
        ``None`` is the configuration's. They apply from its next request on, to tokens minted before too.
        """
        check_limits(rate_limit, window_s)
        credential = Credential(client_secret, frozenset(scopes), rate_limit, window_s)
        with self.state.lock:
            if client_id in self.state.partners:
                raise ValueError(f"{client_id!r} is a partner client")
            self.state.credentials[client_id] = credential

    def add_partner_client(
        self, client_id: str, client_secret: str, scopes: Iterable[str], redirect_uris: Iterable[str]
    ) -> None:
        """Create or replace a partner OAuth client (authorization-code grant only): ``scopes`` are the scopes
        Greenhouse approved for it, ``redirect_uris`` the registered ones (matched exactly). Scopes removed by a
        replacement apply at once to its live tokens (docs/harvest.md section 3); added ones need a new consent.
        """
        uris = frozenset(redirect_uris)
        if not uris:
            raise ValueError("a partner client needs at least one redirect URI")
        partner = PartnerClient(client_secret, frozenset(scopes), uris)
        with self.state.lock:
            if client_id in self.state.credentials:
                raise ValueError(f"{client_id!r} is a custom credential")
            self.state.partners[client_id] = partner

    def add_organization(
        self, org_id: int, name: str, *, rate_limit: int | None = None, window_s: float | None = None
    ) -> None:
        """Create another organization (customer account) seeded with the seed data (its own copy), with its
        own rate limit and window for partner tokens (``None``: the configuration's). Taken id: ValueError."""
        if isinstance(org_id, bool) or not isinstance(org_id, int) or org_id <= 0:
            raise ValueError("org_id must be a positive integer")
        check_limits(rate_limit, window_s)
        with self.state.lock:
            state = State(
                clock=self.state.clock, lock=self.state.lock, rng=random.Random(self.config.seed), org_id=org_id
            )
            state.webhook_sink = self._webhooks.submit
            seed_tenant(state)
            self._orgs.add(Organization(org_id, name, state, SERVICE_ACCOUNT_USER_ID, rate_limit, window_s))

    def org_state(self, org_id: int) -> State:
        """The records of one organization (the default one's is :attr:`state`); unknown id: KeyError."""
        with self.state.lock:
            return self._orgs.get(org_id).state

    def consent(
        self,
        authorize_url: str,
        *,
        org_id: int | None = None,
        user_id: int | None = None,
        consent_as: str = "service_account",
        deny: bool = False,
    ) -> str:
        """Consent to an authorization URL as a logged-in Greenhouse user would (``POST /authorize``, through
        the same code) and return the redirect's ``Location`` (``code`` and ``state``, or ``error``).

        ``org_id`` None: the default organization; ``user_id`` None: the organization's Site Admin
        (:data:`~shared.harvest.sandbox.seed.ADMIN_USER_ID`). A request that gets an error page instead of a
        redirect (unknown client, unregistered redirect URI, bad member): ValueError naming why.
        """
        body = {
            "organization_id": "" if org_id is None else str(org_id),
            "user_id": str(ADMIN_USER_ID if user_id is None else user_id),
            "consent_as": consent_as,
            "decision": "deny" if deny else "allow",
        }
        request = httpx.Request("POST", authorize_url, data=body)
        if request.url.path != "/authorize":
            raise ValueError(f"not an authorization URL: {authorize_url}")
        response = self._authorize(request, page_errors=True)
        return response.headers["location"]

    def revoke_consent(self, client_id: str, org_id: int) -> int:
        """The organization disconnects the partner: every access and refresh token of ``client_id`` in
        ``org_id`` dies (API calls 401, refresh ``invalid_grant``, introspection inactive); returns how many
        were live. Unknown partner client or organization: KeyError."""
        with self.state.lock:
            if client_id not in self.state.partners:
                raise KeyError(f"unknown partner client {client_id!r}")
            self._orgs.get(org_id)
            return oauth.revoke(self.state, self.config, client_id, org_id)

    def oauth_stats(self) -> OAuthStats:
        """Partner OAuth counters: see :class:`~shared.harvest.sandbox.stats.OAuthStats`."""
        with self.state.lock:
            return self.stats_recorder.oauth_snapshot()

    def expire_tokens(self) -> None:
        """Expire every access token minted so far (the next call with one gets 401)."""
        with self.state.lock:
            for token in self.state.tokens.values():
                token.expires_ts = float("-inf")

    def inject_fault(self, kind: str, *, method: str = "POST", path: str = "/v3/candidates", count: int = 1) -> None:
        """Make the next ``count`` requests to ``method path`` (literal path or route template) fail."""
        with self.state.lock:
            add_fault(self.state, kind, method, path, count)

    def outage(self, seconds: float, status: int = UNAVAILABLE, *, writes_only: bool = False) -> None:
        """For the next ``seconds`` (sandbox clock), every /v3 request and ``POST /token`` answers ``status``;
        with ``writes_only``, only /v3 writes (POST, PUT, PATCH, DELETE) do: reads and token mints are served.

        The answer comes before auth, rate limit, faults or any action (nothing is written, no budget is
        used); each is counted in the stats under its route and in ``outage``. ``seconds=0`` ends an
        outage; a new call replaces the current one. ``status`` must be a 5xx.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < math.inf:
            raise ValueError("seconds must be a finite number, 0 or more")
        if isinstance(status, bool) or not isinstance(status, int) or not 500 <= status <= 599:
            raise ValueError("status must be an integer from 500 to 599")
        if not isinstance(writes_only, bool):
            raise ValueError("writes_only must be true or false")
        with self.state.lock:
            until = self.state.now() + seconds
            self.state.outage = Outage(until, status, writes_only) if seconds > 0 else None

    def edit_candidate(self, candidate_id: int, changes: dict[str, object]) -> None:
        """Change fields of a candidate behind the exporter's back (a recruiter editing it in Greenhouse):
        ``changes`` sets top-level members such as ``first_name``; unknown candidate or member: KeyError."""
        with self.state.lock:
            record = self.state.candidates[candidate_id]
            for name, value in changes.items():
                if name not in record or name == "id":
                    raise KeyError(f"candidate has no member {name!r}")
                record[name] = value

    def remove_candidate(self, candidate_id: int) -> None:
        """Remove a candidate and its applications (deleted, or merged into another record in Greenhouse):
        reads never show it again, and ``delete_candidate`` fires (:meth:`add_webhook`). Unknown candidate:
        KeyError."""
        with self.state.lock:
            webhooks.candidate_deleted(self.state, self.state.candidates[candidate_id])
            del self.state.candidates[candidate_id]
            self.state.created_ts.pop(candidate_id, None)
            for app_id in [a for a, app in self.state.applications.items() if app.get("candidate_id") == candidate_id]:
                del self.state.applications[app_id]

    def merge(self, keep_id: int, remove_id: int, *, org_id: int | None = None) -> None:
        """Merge candidate ``remove_id`` into ``keep_id`` as a recruiter would in Greenhouse (the same as
        ``POST /v3/candidates/{keep_id}/merge``): the removed record's applications and other children move to
        the survivor, it disappears, and its merge fires (``delete_candidate``, or ``merge_candidate`` when the
        organization has that webhook). Unknown candidate or organization: KeyError; the same id twice:
        ValueError."""
        if keep_id == remove_id:
            raise ValueError("a candidate cannot be merged into itself")
        with self.state.lock:
            state = self._orgs.get(org_id).state
            if remove_id not in state.candidates:
                raise KeyError(f"candidate {remove_id} does not exist")
            routes_candidates.merge_records(state, state.candidates[keep_id], remove_id)

    def add_webhook(self, action: str, url: str, secret_key: str, *, org_id: int | None = None) -> int:
        """Configure a webhook of an organization (``org_id`` None: the default one), as a customer does in
        Greenhouse's Dev Center: every ``action`` event (``delete_candidate`` or ``merge_candidate``, see
        :mod:`~shared.harvest.sandbox.webhooks`) is POSTed to ``url``, signed with ``secret_key``. Returns the
        webhook's id. Greenhouse requires https; the sandbox takes http too (loopback receivers)."""
        if action not in webhooks.ACTIONS:
            raise ValueError(f"the sandbox fires no {action!r} webhook: use one of {', '.join(webhooks.ACTIONS)}")
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must be an http or https URL")
        if not secret_key:
            raise ValueError("secret_key must not be empty")
        with self.state.lock:
            state = self._orgs.get(org_id).state
            endpoint = WebhookEndpoint(self._webhooks.next_webhook_id(), action, url, secret_key)
            state.webhooks.append(endpoint)
            return endpoint.id

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every webhook delivery so far, oldest first: ``event_id``, ``webhook_id``, ``org_id``, ``action``,
        ``url``, ``state`` (``pending``, ``delivered``, ``failed``: given up), ``attempts`` (``status`` or
        ``error`` each) and the ``payload`` sent."""
        return self._webhooks.deliveries()

    def wait_for_webhooks(self, timeout_s: float = 10.0) -> bool:
        """Wait until every webhook delivery is delivered or given up; False if some still are not after
        ``timeout_s`` (real seconds)."""
        return self._webhooks.wait_idle(timeout_s)

    def close(self) -> None:
        """Stop the webhook deliveries' thread (pending ones stay pending) and close their own HTTP client."""
        self._webhooks.close()

    def attachment_file(
        self, attachment_id: int, *, expires: float | None = None, org_id: int | None = None
    ) -> AttachmentFile:
        """The file of an attachment uploaded as base64 ``content``, decoded (what its download ``url`` serves).

        KeyError: no such attachment (in organization ``org_id``; None: the default one), or it was uploaded by
        ``url`` (the sandbox never fetches those). ``expires`` (epoch seconds, from the ``url``) already past on
        the sandbox clock: PermissionError.
        """
        with self.state.lock:
            record = self._orgs.get(org_id).state.attachments.get(attachment_id)
            if record is None or record["_content"] is None:
                why = "does not exist" if record is None else "was uploaded by url: the sandbox holds no content"
                raise KeyError(f"attachment {attachment_id} {why}")
            if expires is not None and self.state.now() >= expires:
                raise PermissionError(f"the download URL of attachment {attachment_id} has expired")
            return AttachmentFile(record["filename"], record["content_type"], record["_content"])

    def attachment_content(self, attachment_id: int) -> bytes:
        """The decoded bytes of an attachment uploaded as base64 ``content`` (tests read a resume back with it);
        KeyError as :meth:`attachment_file`."""
        return self.attachment_file(attachment_id).content

    def block_extensions(self, extensions: Iterable[str], *, attachment_type: str = ALL_ATTACHMENT_TYPES) -> None:
        """Replace the org's blocked attachment extensions for one type (default: every type).

        ``extensions`` like ``.pdf`` or ``pdf`` (any case); an empty list unblocks everything for that key.
        """
        if attachment_type != ALL_ATTACHMENT_TYPES and attachment_type not in routes_profile.ATTACHMENT_TYPES:
            raise ValueError(f"unknown attachment type {attachment_type!r}")
        normal = frozenset("." + e.lower().lstrip(".") for e in extensions if e.strip("."))
        with self.state.lock:
            self.state.blocked_extensions[attachment_type] = normal

    def state_snapshot(self, org_id: int | None = None) -> admin.StateSnapshot:
        """JSON-serialisable view of one organization's candidates with their children, plus tags and orphan
        notes (``org_id`` None: the default organization; unknown: KeyError)."""
        with self.state.lock:
            return admin.snapshot(self._orgs.get(org_id).state)

    def stats(self) -> StatsSnapshot:
        """Traffic counters, and per credential (and per partner client and organization with a consent, as
        ``client_id@org_id``) its current limit: see :class:`~shared.harvest.sandbox.stats.Stats`."""
        with self.state.lock:
            limits = {cid: self.state.rate_limit(self.config, cid) for cid in self.state.credentials}
            for record in self.state.refresh_tokens.values():
                grant = record.grant
                limits[budget_key(grant.client_id, grant.org_id)] = self._orgs.get(grant.org_id).limit(self.config)
            return self.stats_recorder.snapshot(limits)

    # --- the core ---------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Serve one request; raises :class:`DropConnectionError` when the connection must be dropped."""
        request.read()
        method, path = request.method.upper(), request.url.path
        if path.startswith("/_sandbox/"):
            return admin.handle(self, request)
        if self.config.latency_ms > 0:
            self._sleep(self.config.latency_ms / 1000)
        if path == "/token" and method == "POST":
            return self._serve(request, "POST /token", None, None)
        if path == "/authorize" and method in ("GET", "POST"):
            return self._authorize(request)
        if path == "/introspect" and method == "POST":
            with self.state.lock:
                response = oauth.introspect(self.state, self._orgs, self.stats_recorder.oauth, request)
                self.stats_recorder.record("POST /introspect", response.status_code, _reason(response))
            return response
        if path.startswith("/v3/"):
            found = find_route(method, path)
            return self._serve(
                request, found[0].key if found else f"{method} (unknown route)", *(found or (None, None))
            )
        with self.state.lock:
            self.stats_recorder.record(f"{method} (unknown route)", 404, "unknown route")
        return reply(404, {"message": "Resource not found"})

    def _serve(
        self, request: httpx.Request, key: str, route: Route | None, ids: dict[str, int] | None
    ) -> httpx.Response:
        state, stats = self.state, self.stats_recorder
        method, path = request.method.upper(), request.url.path
        headers: dict[str, str] = {}
        with state.lock:
            outage_status = state.outage_status(method, path)
            if outage_status is not None:
                stats.record(key, outage_status)
                stats.outage += 1
                return reply(outage_status, error_body(outage_status))
            token: Token | None = None
            if path != "/token":
                try:
                    token = authenticate(state, request)
                except ApiError as exc:
                    stats.record(key, exc.status, exc.reason)
                    return reply(exc.status, exc.body())
                budget = budget_key(token.client_id, token.org_id)
                admission = admit(state, budget, self._limit(token))
                stats.admission(budget, allowed=admission.allowed, in_window=admission.in_window, at=admission.at)
                headers = admission.headers
                if not admission.allowed:
                    stats.record(key, 429)
                    return httpx.Response(429, headers=headers, json={"message": "Rate limit exceeded"})
            fault = take_fault(state, self.config, method, path, route.template if route else None)
            if fault:
                stats.faults[fault] += 1
        if fault == SLOW_BEFORE:
            self._sleep(self.config.slow_s)
        if fault in BEFORE_KINDS:
            return self._fail(fault, key, headers)
        with state.lock:
            if token is None:
                response = oauth.token_endpoint(state, self.config, stats.oauth, request)
            else:
                response = self._dispatch(request, route, ids or {}, token)
            if fault in AFTER_KINDS:
                return self._fail(fault, key, headers)
            stats.record(key, response.status_code, _reason(response))
        if fault == SLOW_AFTER:  # applied and counted; the answer waits (outside the lock)
            self._sleep(self.config.slow_s)
        response.headers.update(headers)
        return response

    def _limit(self, token: Token) -> RateLimit:
        """A custom credential's own limit (else the configuration's); a partner's organization's."""
        if token.org_id is None:
            return self.state.rate_limit(self.config, token.client_id)
        return self._orgs.get(token.org_id).limit(self.config)

    def _authorize(self, request: httpx.Request, *, page_errors: bool = False) -> httpx.Response:
        """``GET``/``POST /authorize``; with ``page_errors``, an error page raises ValueError instead."""
        key = f"{request.method.upper()} /authorize"
        with self.state.lock:
            try:
                response = authorize.serve(self.state, self.config, self._orgs, self.stats_recorder.oauth, request)
            except authorize.PageError as exc:
                self.stats_recorder.record(key, 400, str(exc))
                if page_errors:
                    raise ValueError(str(exc)) from None
                return authorize.error_page(str(exc))
            self.stats_recorder.record(key, response.status_code)
            return response

    def _fail(self, fault: str, key: str, headers: dict[str, str]) -> httpx.Response:
        dropped = fault.startswith("drop")
        status = UNAVAILABLE if fault == "unavailable" else 500
        with self.state.lock:
            self.stats_recorder.record(key, "dropped" if dropped else status)
        if dropped:
            raise DropConnectionError(fault)
        return httpx.Response(status, headers=headers, json=error_body(status))

    def _dispatch(
        self, request: httpx.Request, route: Route | None, ids: dict[str, int], token: Token
    ) -> httpx.Response:
        if route is None:
            return reply(404, {"message": "Resource not found"})
        if route.scope not in oauth.live_scopes(self.state, token):
            message = f"Missing required scope: {route.scope}"
            return reply(403, {"message": message, "errors": [{"message": message, "field": None}]})
        state = self._orgs.of(token).state  # the organization the token acts in
        user = state.users.get(token.sub) if token.sub is not None else None
        if route.is_list and token.sub is not None and not (user is not None and user["site_admin"]):
            return reply(403, {"message": "The authorizing user (sub) must be a Site Admin to use list endpoints"})
        query = dict(request.url.params.items())
        ctx = Ctx(state, self.config, request, route, query, ids, token)
        try:
            return route.handler(ctx)
        except ApiError as exc:
            return reply(exc.status, exc.body())

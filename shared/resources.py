"""Process-wide resources built from :class:`Settings`: store engine, Redis client, Harvest plumbing.

Built lazily, once per process (the CLI at first use, a worker process in ``worker_process_init``), and
closed on shutdown; never per task and never at import time.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

from shared.settings import EMBEDDED, Settings

if TYPE_CHECKING:
    import httpx
    import redis
    from sqlalchemy.engine import Engine

    from shared.harvest.auth import TokenCache
    from shared.harvest.client import HarvestClient
    from shared.limiter import RateGate
    from shared.lookups import Lookups
    from shared.store.models import Connection


class Resources:
    """Lazily built, process-wide collaborators. Thread-safe construction; ``close()`` releases them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()

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
            from shared.embedded import embedded_redis_url

            return embedded_redis_url(self.settings.embedded_dir)
        return self.settings.broker_url

    @cached_property
    def redis_url(self) -> str:
        """Redis for the shared limiter and caches: explicit, else the broker's Redis, else embedded."""
        url = self.settings.redis_url
        if url == EMBEDDED or (url is None and self.settings.broker_url == EMBEDDED):
            from shared.embedded import embedded_redis_url

            return embedded_redis_url(self.settings.embedded_dir)
        if url:
            return url
        broker = self.broker_url
        if broker.startswith(("redis://", "rediss://", "redis+socket://", "unix://")):
            return broker
        from shared.embedded import embedded_redis_url

        return embedded_redis_url(self.settings.embedded_dir)

    @cached_property
    def redis(self) -> redis.Redis:
        """A Redis client on :attr:`redis_url`."""
        import redis as redis_lib

        url = self.redis_url
        if url.startswith("redis+socket://"):
            return redis_lib.Redis(unix_socket_path=url.removeprefix("redis+socket://"))
        return redis_lib.Redis.from_url(url)

    @cached_property
    def http(self) -> httpx.Client:
        """One pooled HTTP client for every Harvest call of this process."""
        import httpx

        h = self.settings.harvest
        return httpx.Client(
            timeout=httpx.Timeout(h.timeout_s, connect=h.connect_timeout_s),
            headers={"User-Agent": h.user_agent},
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )

    @cached_property
    def token_cache(self) -> TokenCache:
        """OAuth tokens of this process, per (credential, sub)."""
        from shared.harvest.auth import TokenCache

        return TokenCache()

    @cached_property
    def limiter(self) -> RateGate:
        """The per-credential rate limiter shared by every process through Redis."""
        from shared.limiter import make_rate_gate

        return make_rate_gate(self.redis if self.settings.limiter.enabled else None, self.settings.limiter)

    def harvest_for(self, conn: Connection) -> HarvestClient:
        """A Harvest client on ``conn``'s credential, without ``sub`` (reads); ``.with_sub(id)`` writes."""
        from shared.connections import reader_for

        return reader_for(
            conn, self.settings, http_client=self.http, token_cache=self.token_cache, limiter=self.limiter
        )

    def lookups_for(self, conn: Connection, reader: HarvestClient | None = None) -> Lookups:
        """Cached lookups (jobs, pools, options, tags) of ``conn``, shared through Redis."""
        from shared.lookups import Lookups

        return Lookups(
            reader or self.harvest_for(conn),
            int(conn.id),  # type: ignore[arg-type]
            self.redis,
            self.settings.cache_ttl_s,
        )

    def close(self) -> None:
        """Release what was built (connections, pools); safe to call more than once."""
        for name in ("limiter", "token_cache"):
            self.__dict__.pop(name, None)
        for name, closer in (("http", "close"), ("redis", "close"), ("engine", "dispose")):
            obj = self.__dict__.pop(name, None)
            if obj is not None:
                getattr(obj, closer)()

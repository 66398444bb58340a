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
        from shared.harvest.client import build_http_client

        return build_http_client(self.settings)

    def close(self) -> None:
        """Release what was built (connections, pools); safe to call more than once."""
        for name, closer in (("http", "close"), ("redis", "close"), ("engine", "dispose")):
            obj = self.__dict__.pop(name, None)
            if obj is not None:
                getattr(obj, closer)()

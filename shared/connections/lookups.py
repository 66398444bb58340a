"""Greenhouse lookups shared by producer and workers: open jobs, pools with stages, options, tags.

Read through the credential's service account (list endpoints need a Site Admin ``sub``, so readers
carry none) and cached per connection for ``ttl_s`` seconds: in Redis when a client is given (JSON
values with a TTL, so every process sees the same answer), else in this process. Keys:
``ghx:lookups:<connection_id>:<name>``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, Field, TypeAdapter

from shared.harvest.models import CustomFieldOption, Job, ProspectPool, ProspectPoolStage, Tag
from shared.profiles.mapping import OptionIndex, normalise_name

if TYPE_CHECKING:
    import redis

    from shared.harvest.client import HarvestClient

log = logging.getLogger(__name__)

KEY_PREFIX = "ghx:lookups"
NAMES = ("open_jobs", "pools", "options", "tags")

T = TypeVar("T")


class PoolWithStages(BaseModel):
    """A prospect pool and its stages (sorted by ``sort_order``)."""

    pool: ProspectPool
    stages: list[ProspectPoolStage] = Field(default_factory=list)

    @property
    def id(self) -> int:
        """The pool's id."""
        return self.pool.id

    @property
    def name(self) -> str:
        """The pool's name."""
        return self.pool.name

    def stage(self, stage_id: int) -> ProspectPoolStage | None:
        """The stage of this pool with that id, else ``None``."""
        return next((s for s in self.stages if s.id == stage_id), None)


class OptionLists(BaseModel):
    """Custom field options per key (``degree``, ``discipline``, ``school_name``)."""

    degree: list[CustomFieldOption] = Field(default_factory=list)
    discipline: list[CustomFieldOption] = Field(default_factory=list)
    school_name: list[CustomFieldOption] = Field(default_factory=list)

    def index(self) -> OptionIndex:
        """The name -> id index :func:`shared.profiles.mapping.map_profile` resolves educations with."""
        return OptionIndex.build(degree=self.degree, discipline=self.discipline, school_name=self.school_name)


_JOBS = TypeAdapter(list[Job])
_POOLS = TypeAdapter(list[PoolWithStages])
_OPTIONS = TypeAdapter(OptionLists)
_TAGS = TypeAdapter(list[Tag])


class Lookups:
    """Cached reads of one connection's Greenhouse lookups.

    ``reader`` must be a client without ``sub`` (the service account). ``cache=None`` keeps answers in
    this object for ``ttl_s``; ``ttl_s <= 0`` reads Greenhouse every time. Harvest errors propagate.
    """

    def __init__(
        self,
        reader: HarvestClient,
        connection_id: int,
        cache: redis.Redis | None,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.connection_id = connection_id
        self.cache = cache
        self.ttl_s = ttl_s
        self._clock = clock
        self._local: dict[str, tuple[float, object]] = {}
        """Without Redis: name -> (expiry on ``clock``, the value in JSON form, re-validated on each hit)."""

    def _key(self, name: str) -> str:
        return f"{KEY_PREFIX}:{self.connection_id}:{name}"

    def _cached(self, name: str, adapter: TypeAdapter[T], fetch: Callable[[], T]) -> T:
        if self.ttl_s <= 0:
            return fetch()
        if self.cache is None:
            hit = self._local.get(name)
            if hit is not None and hit[0] > self._clock():
                return adapter.validate_python(hit[1])
            value = fetch()
            self._local[name] = (self._clock() + self.ttl_s, adapter.dump_python(value, mode="json"))
            return value
        import redis as redis_lib

        try:
            raw = self.cache.get(self._key(name))
        except redis_lib.RedisError as exc:  # a cache outage must not stop exports: read Greenhouse
            log.warning("lookup cache unavailable (%s); reading %s from Greenhouse", type(exc).__name__, name)
            return fetch()
        if raw is not None:
            try:
                return adapter.validate_json(raw)
            except ValueError:
                log.warning("discarding unreadable cached lookup %s", self._key(name))
        value = fetch()
        try:
            self.cache.set(self._key(name), adapter.dump_json(value), px=max(1, int(self.ttl_s * 1000)))
        except redis_lib.RedisError as exc:
            log.warning("could not cache lookup %s (%s)", name, type(exc).__name__)
        return value

    def open_jobs(self) -> list[Job]:
        """Jobs whose status is ``open`` (as far as the service account can see them)."""

        def fetch() -> list[Job]:
            return [j for j in self.reader.list_jobs(status="open") if (j.status or "open") == "open"]

        return self._cached("open_jobs", _JOBS, fetch)

    def job(self, job_id: int) -> Job | None:
        """The job with this id whatever its status (not cached: used to explain a refusal), else None."""
        return next((j for j in self.reader.list_jobs(status=None) if j.id == job_id), None)

    def pools(self) -> list[PoolWithStages]:
        """Prospect pools, each with its stages."""

        def fetch() -> list[PoolWithStages]:
            pools = list(self.reader.list_prospect_pools())
            stages = list(self.reader.list_prospect_pool_stages([p.id for p in pools])) if pools else []
            by_pool: dict[int, list[ProspectPoolStage]] = {}
            for stage in stages:
                by_pool.setdefault(stage.prospect_pool_id, []).append(stage)
            return [
                PoolWithStages(
                    pool=p,
                    stages=sorted(by_pool.get(p.id, []), key=lambda s: (s.sort_order or 0, s.id)),
                )
                for p in pools
            ]

        return self._cached("pools", _POOLS, fetch)

    def options(self) -> OptionLists:
        """Degree, discipline and school name options."""

        def fetch() -> OptionLists:
            return OptionLists(
                degree=list(self.reader.list_custom_field_options("degree")),
                discipline=list(self.reader.list_custom_field_options("discipline")),
                school_name=list(self.reader.list_custom_field_options("school_name")),
            )

        return self._cached("options", _OPTIONS, fetch)

    def tags(self) -> list[Tag]:
        """Candidate tags defined in Greenhouse."""
        return self._cached("tags", _TAGS, lambda: list(self.reader.list_tags()))

    def tag_ids(self) -> dict[str, int]:
        """Tag ids by normalised name (:func:`shared.profiles.mapping.normalise_name`); the first wins."""
        out: dict[str, int] = {}
        for tag in self.tags():
            out.setdefault(normalise_name(tag.name), tag.id)
        return out

    def invalidate(self, *names: str) -> None:
        """Forget the cached lookups ``names`` (``"tags"`` after a tag was created), or all of them."""
        names = names or tuple(NAMES)
        for name in names:
            self._local.pop(name, None)
        if self.cache is not None:
            self.cache.delete(*(self._key(n) for n in names))

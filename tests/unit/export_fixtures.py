"""Helpers for the export-flow tests: settings, a sandbox with a movable clock, resources, deps, batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import httpx
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from shared.connections.crypto import generate_key
from shared.connections.service import connect
from shared.harvest.sandbox import Sandbox, SandboxConfig
from shared.harvest.sandbox import seed as s
from shared.profiles.model import Profile
from shared.queue import names
from shared.resources import Resources
from shared.settings import ExportSettings, HarvestSettings, LimiterSettings, ResumeSettings, Settings
from shared.store import batches as store_batches
from shared.store import items
from shared.store.models import Batch, TargetKind
from shared.store.records import ConnectionRecord, ItemRecord
from workers.export import ExportDeps, export_item
from workers.outcome import Outcome

SANDBOX_T0 = 1_800_000_000.0
WORKER_T0 = datetime.fromtimestamp(SANDBOX_T0, tz=UTC)
"""The worker's clock starts where the sandbox's does: creation times compare across them."""


class Clock:
    """A clock tests move by hand: ``now`` for the sandbox (epoch seconds), ``dt`` for the worker."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def now(self) -> float:
        return SANDBOX_T0 + self.offset_s

    def dt(self) -> datetime:
        return WORKER_T0 + timedelta(seconds=self.offset_s)

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds


def make_settings(database_url: str, *, resume: ResumeSettings | None = None, **export: Any) -> Settings:
    """Test settings: fresh secret key, no quick retries, limiter off, export (and resume) overrides."""
    return Settings(
        # mypy builds Settings.__init__ from the fields only: it cannot see pydantic-settings' init options
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        harvest_url="http://sandbox.test",
        harvest_token_url="http://sandbox.test/token",
        secret_key=SecretStr(generate_key()),
        harvest=HarvestSettings(quick_retries=0),
        limiter=LimiterSettings(enabled=False),
        broker_url="memory://",
        redis_url="redis://127.0.0.1:1/0",
        export=ExportSettings(**export),
        resume=resume or ResumeSettings(),
    )


@dataclass
class Env:
    """One wired export world: sandbox, store, connection and the export collaborators."""

    sandbox: Sandbox
    clock: Clock
    settings: Settings
    res: Resources
    deps: ExportDeps
    conn: ConnectionRecord
    http: httpx.Client
    batches: list[str] = field(default_factory=list)

    @property
    def engine(self) -> Engine:
        return self.res.engine

    def batch(
        self,
        profiles: list[Profile],
        *,
        kind: TargetKind = TargetKind.JOB,
        job_id: int | None = s.OPEN_JOB_ID,
        pool_id: int | None = None,
        stage_id: int | None = None,
        include_exported: bool = False,
        new_record: bool = False,
        dummy_emails: bool = False,
    ) -> store_batches.BatchCreated:
        """Record a batch of ``profiles`` for this connection (as the producer does)."""
        batch = Batch(
            id="",
            connection_id=self.conn.id,
            target_kind=kind,
            job_id=job_id,
            pool_id=pool_id,
            stage_id=stage_id,
            user_email=self.conn.user_email,
            user_id=self.conn.user_id,
            include_exported=include_exported,
            new_record=new_record,
            dummy_emails=dummy_emails,
        )
        return store_batches.create_batch(
            self.engine, batch, [store_batches.NewItem(p.id, p.snapshot()) for p in profiles]
        )

    def export(self, item_id: int) -> Outcome:
        return export_item(self.deps, item_id)

    def item(self, item_id: int) -> ItemRecord:
        """The stored item ``item_id`` (which must exist)."""
        item = items.get_item(self.engine, item_id)
        assert item is not None, f"no item {item_id}"
        return item

    def candidates(self) -> list[dict[str, Any]]:
        """Sandbox candidates other than the seeded existing one."""
        return [c for c in self.sandbox.state_snapshot()["candidates"] if c["id"] != s.EXISTING_CANDIDATE_ID]

    def candidate(self, cid: int) -> dict[str, Any]:
        return next(c for c in self.sandbox.state_snapshot()["candidates"] if c["id"] == cid)

    def writes(self) -> int:
        """How many write requests (POST/PUT/PATCH/DELETE on /v3) the sandbox answered."""
        reqs = self.sandbox.stats()["requests"]
        return sum(
            sum(counts.values())
            for route, counts in reqs.items()
            if route.split(" ")[0] in ("POST", "PUT", "PATCH", "DELETE") and "/v3/" in route
        )


def make_env(
    database_url: str,
    *,
    sandbox_config: dict[str, Any] | None = None,
    resume: ResumeSettings | None = None,
    **export: Any,
) -> Env:
    """Sandbox + SQLite store + a connection ``acme`` (pools enabled) + deps built as in production."""
    clock = Clock()
    config = {"rate_limit": 10_000, **(sandbox_config or {})}
    sandbox = Sandbox(SandboxConfig(**config), clock=clock.now, sleep=lambda _s: None)
    settings = make_settings(database_url, resume=resume, **export)
    # a worker's resources: waits go back to the queue, never slept through
    res = Resources(settings, http_transport=sandbox.transport(), redis_client=fakeredis.FakeRedis(), patient=False)
    http = res.http
    conn = connect(
        settings,
        res.engine,
        name="acme",
        client_id=s.CLIENT_ID,
        client_secret=SecretStr(s.CLIENT_SECRET),
        user_email=s.RECRUITER_EMAIL,
        enable_pools=True,
        http_client=http,
    ).connection
    deps = ExportDeps(res=res, owner="test-worker", jitter=lambda lo, hi: hi, now=clock.dt)
    return Env(sandbox, clock, settings, res, deps, conn, http)


def profile(pid: str = "p-1", **over: Any) -> Profile:
    """A profile with every mapped field filled (override any)."""
    data: dict[str, Any] = {
        "id": pid,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "emails": [f"ada.{pid}@example.com"],
        "phones": ["+1 555 0100"],
        "company": "Analytical Engines",
        "title": "Principal Engineer",
        "location": "London, UK",
        "skills": ["Python", "Go"],
        "social_media": ["https://linkedin.com/in/ada"],
        "urls": ["https://ada.dev"],
        "employments": [{"company_name": "Babbage & Co", "title": "Engineer", "start_date": "2015-01-01"}],
        "educations": [
            {
                "school": "Siena College",
                "degree": "Bachelor's Degree",
                "discipline": "Computer Science",
                "start_date": "2008-09-01",
                "end_date": "2012-06-01",
            }
        ],
        "tags": ["Backend", "Rust Fans"],
        "summary": "Builds calculating machines.",
    }
    data.update(over)
    return Profile.model_validate(data)


def drain_broker(env: Env) -> int:
    """Remove every message the test left on the in-memory broker's export queue (the ``memory://``
    transport is shared by the whole process: another test's count of messages must not see ours)."""
    n = 0
    with env.res.celery.connection_for_read() as conn:
        queue = conn.SimpleQueue(names.EXPORT_QUEUE)
        while True:
            try:
                queue.get(block=False).ack()
            except queue.Empty:
                break
            n += 1
        queue.close()
    return n

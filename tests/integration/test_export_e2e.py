"""End to end: real Celery workers in separate processes on the real Redis, the real PostgreSQL store,
the Harvest sandbox over HTTP. 200 profiles, half prospects into a pool stage, half to an open job."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from producer import api
from producer.demo import sample_profiles, worker_command
from shared.connections import service as connections
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from shared.resources import Resources
from shared.store import publication
from tests.integration.workers_env import broker_db, stop_processes, worker_settings

N = 200
RATE_LIMIT = 600
WINDOW_S = 10.0
BROKER_DB = 9


@contextmanager
def running_system(
    redis_url: str,
    database_url: str,
    *,
    broker_url: str | None = None,
    sandbox_config: dict[str, Any] | None = None,
    **overrides: Any,
) -> Iterator[System]:
    """Sandbox over HTTP, the real Redis for the limiter and caches (and as broker unless ``broker_url``),
    the given store, two worker processes."""
    redis_db, redis_client = broker_db(redis_url, BROKER_DB)
    sandbox = Sandbox(SandboxConfig(**{"rate_limit": RATE_LIMIT, "window_s": WINDOW_S, **(sandbox_config or {})}))
    with SandboxServer(sandbox) as server:
        settings = worker_settings(
            redis_db, database_url, server, broker_url=broker_url,
            limiter={"requests": RATE_LIMIT, "window_s": WINDOW_S}, **overrides,
        )  # fmt: skip
        res = Resources(settings)
        _ = res.engine  # migrate once, before the workers start
        system = System(res, sandbox, {**os.environ, **settings.to_env()})
        system.start_worker()
        system.start_worker()
        try:
            yield system
        finally:
            system.stop()
            res.close()
            redis_client.flushdb()
            redis_client.close()


@dataclass
class System:
    res: Resources
    sandbox: Sandbox
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> None:
        # its own session, so a test can kill the worker with its pool children, as a lost host would be
        self.workers.append(
            subprocess.Popen(
                worker_command(2),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def kill_worker(self, n: int) -> None:
        os.killpg(self.workers[n].pid, signal.SIGKILL)
        self.workers[n].wait(timeout=30)

    def stop(self) -> None:
        stop_processes(self.workers)


@pytest.fixture
def system(redis_url: str, postgres_schema_url: str) -> Iterator[System]:
    with running_system(redis_url, postgres_schema_url) as system:
        yield system


def wait_done(res: Resources, batch_id: str, timeout_s: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        doc = api.batch_status(res, batch_id)
        if doc["done"]:
            return doc
        assert time.monotonic() < deadline, f"batch did not finish: {doc['counts']}"
        time.sleep(0.5)


def by_email(snapshot: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for cand in snapshot["candidates"]:
        for e in cand["email_addresses"]:
            out.setdefault(e["value"].lower(), []).append(cand)
    return out


def test_export_200_profiles_through_real_workers(system: System) -> None:
    res, sandbox = system.res, system.sandbox
    connections.connect(
        res.settings, res.engine, name="e2e", client_id=seed.CLIENT_ID,
        client_secret=SecretStr(seed.CLIENT_SECRET), user_email=seed.RECRUITER_EMAIL,
        enable_pools=True, http_client=res.http,
    )  # fmt: skip
    profiles = sample_profiles(N, existing_email=seed.EXISTING_EMAIL, prefix="e2e")
    half = N // 2
    targets = [api.ExportTarget.prospect(seed.POOL_ID, seed.STAGE_ID), api.ExportTarget.job(seed.OPEN_JOB_ID)]
    parts = [profiles[:half], profiles[half:]]
    batches = [
        api.export_profiles(res, connection_name="e2e", profiles=p, target=t)
        for p, t in zip(parts, targets, strict=True)
    ]
    assert [b.enqueued for b in batches] == [half, N - half]
    docs = [wait_done(res, b.batch_id) for b in batches]

    # the store: every item exported with its Greenhouse ids
    for doc in docs:
        assert doc["counts"] == {"exported": doc["total"]}
        for it in doc["items"]:
            assert it["greenhouse_candidate_id"] and it["greenhouse_application_id"], it

    # Greenhouse: each profile exactly once, with every mapped field
    snap = sandbox.state_snapshot()
    people = by_email(snap)
    tag_names = {t["id"]: t["name"] for t in snap["candidate_tags"]}
    assert len(snap["candidates"]) == N  # 199 new records + the seeded person the third profile matched
    for i, prof in enumerate(profiles):
        matches = people[prof.emails[0].lower()]
        assert len(matches) == 1, f"{prof.id}: {len(matches)} records"
        cand = matches[0]
        apps = cand["applications"]
        if i == 2:  # the person already in Greenhouse: an application on that record, no new one
            assert cand["id"] == seed.EXISTING_CANDIDATE_ID
            assert any(a["prospect"] and a["prospect_pool_id"] == seed.POOL_ID for a in apps)
            continue
        assert (cand["first_name"], cand["last_name"]) == (prof.first_name, prof.last_name)
        assert (cand["company"], cand["title"]) == (prof.company, prof.title)
        assert [p["value"] for p in cand["phone_numbers"]] == prof.phones
        assert [a["value"] for a in cand["addresses"]] == [prof.location]
        assert [w["value"] for w in cand["website_addresses"]] == prof.urls
        assert [s["value"] for s in cand["social_media_addresses"]] == prof.social_media
        assert len(cand["employments"]) == 1 and cand["employments"][0]["company_name"] == prof.company
        assert len(cand["notes"]) == 1 and "Skills:" in cand["notes"][0]["body"], (prof.id, cand["notes"])
        assert {tag_names[t["candidate_tag_id"]] for t in cand["applied_tags"]} == set(prof.tags)
        school_known = prof.educations[0].school in seed.SCHOOL_OPTIONS
        assert len(cand["educations"]) == 1
        edu = cand["educations"][0]
        assert (edu["school_name_custom_field_option_id"] is not None) == school_known
        assert len(apps) == 1
        app = apps[0]
        assert app["source_id"] == seed.SOURCE_ID
        if i < half:
            assert app["prospect"] and app["prospect_pool_id"] == seed.POOL_ID
            assert app["prospect_pool_stage_id"] == seed.STAGE_ID
        else:
            assert not app["prospect"] and app["job_id"] == seed.OPEN_JOB_ID

    # the same export again: everything skipped, nothing enqueued
    again = [
        api.export_profiles(res, connection_name="e2e", profiles=p, target=t)
        for p, t in zip(parts, targets, strict=True)
    ]
    assert [(b.enqueued, b.skipped) for b in again] == [(0, half), (0, N - half)]

    # with --include-exported to another job: a new application on each existing record
    more = api.export_profiles(
        res, connection_name="e2e", profiles=profiles, target=api.ExportTarget.job(seed.OPEN_JOB_2_ID),
        include_exported=True,
    )  # fmt: skip
    assert more.enqueued == N
    doc = wait_done(res, more.batch_id)
    assert doc["counts"] == {"exported": N}
    snap = sandbox.state_snapshot()
    assert len(snap["candidates"]) == N
    people = by_email(snap)
    for prof in profiles:
        (cand,) = people[prof.emails[0].lower()]
        assert sum(a["job_id"] == seed.OPEN_JOB_2_ID for a in cand["applications"]) == 1, prof.id

    # the shared limiter kept every worker process under Harvest's limit
    stats = sandbox.stats()
    assert stats["rate_limited"] == 0, stats["rate_limited"]
    assert max(stats["max_in_window"].values()) <= RATE_LIMIT
    assert publication.expired_leases(res.engine) == [] and publication.unpublished_items(res.engine, 0) == []


def test_faults_and_a_killed_worker_never_lose_or_duplicate_a_candidate(
    redis_url: str, postgres_schema_url: str
) -> None:
    """Harvest answering 500 before or after writing, dropping connections after writing, new records
    unreadable for a while, and a worker host killed mid-batch: every candidate lands exactly once."""
    n = 60
    with running_system(
        redis_url,
        postgres_schema_url,
        sandbox_config={"visibility_delay_s": 1.0, "seed": 7},
        visibility_timeout_s=20,
        export={  # short windows so the test waits seconds where production waits minutes
            "reconcile_window_s": 6.0, "reconcile_interval_s": 1.0, "in_progress_retry_s": 1.0,
            "retry_backoff_s": 0.5, "retry_backoff_max_s": 2.0, "max_attempts": 50, "lease_s": 5.0,
            "heartbeat_s": 1.0, "requeue_after_s": 5.0, "recovery_interval_s": 2.0,
        },
    ) as system:  # fmt: skip
        res, sandbox = system.res, system.sandbox
        connections.connect(
            res.settings, res.engine, name="chaos", client_id=seed.CLIENT_ID,
            client_secret=SecretStr(seed.CLIENT_SECRET), user_email=seed.RECRUITER_EMAIL, enable_pools=True,
            http_client=res.http,
        )  # fmt: skip
        sandbox.config.fault_rate = 0.15  # from now on: connect's own checks are not the subject here
        profiles = sample_profiles(n, prefix="chaos")
        batch = api.export_profiles(res, connection_name="chaos", profiles=profiles,
                                    target=api.ExportTarget.job(seed.OPEN_JOB_ID))  # fmt: skip
        deadline = time.monotonic() + 240
        killed = False
        while True:
            doc = api.batch_status(res, batch.batch_id)
            finished = doc["counts"].get("exported", 0)
            if not killed and finished >= n // 4:
                system.kill_worker(0)  # mid-batch: its running and prefetched tasks die with it
                system.start_worker()
                killed = True
            if doc["done"]:
                break
            assert time.monotonic() < deadline, f"batch did not finish: {doc['counts']}"
            time.sleep(1.0)  # nobody recovers by hand: the workers do

        assert killed
        assert doc["counts"] == {"exported": n}, [(i["candidate_id"], i["error"]) for i in doc["items"]]
        stats = sandbox.stats()
        assert stats["faults"].get("error_after", 0) + stats["faults"].get("drop_after", 0) > 0, stats["faults"]
        people = by_email(sandbox.state_snapshot())
        for prof in profiles:
            records = people.get(prof.emails[0].lower(), [])
            assert len(records) == 1, f"{prof.id}: {len(records)} records"
            (cand,) = records
            assert len(cand["applications"]) == 1, prof.id
            assert len(cand["educations"]) == 1 and len(cand["employments"]) == 1, prof.id
            assert len(cand["notes"]) <= 1, prof.id  # a note whose answer was lost is never sent twice
            tag_ids = [t["candidate_tag_id"] for t in cand["applied_tags"]]
            assert len(tag_ids) == len(set(tag_ids)) == len(prof.tags), prof.id


def test_rabbitmq_as_the_broker(redis_url: str, rabbitmq_url: str, sqlite_url: str) -> None:
    """Any Celery broker works: RabbitMQ carries the tasks, Redis only the shared limiter; SQLite store."""
    with running_system(redis_url, sqlite_url, broker_url=rabbitmq_url) as system:
        res, sandbox = system.res, system.sandbox
        connections.connect(
            res.settings, res.engine, name="amqp", client_id=seed.CLIENT_ID,
            client_secret=SecretStr(seed.CLIENT_SECRET), user_email=seed.RECRUITER_EMAIL, http_client=res.http,
        )  # fmt: skip
        profiles = sample_profiles(20, prefix="amqp")
        batch = api.export_profiles(res, connection_name="amqp", profiles=profiles,
                                    target=api.ExportTarget.job(seed.OPEN_JOB_ID))  # fmt: skip
        doc = wait_done(res, batch.batch_id, timeout_s=120)
        assert doc["counts"] == {"exported": 20}
        people = by_email(sandbox.state_snapshot())
        assert all(len(people[p.emails[0].lower()]) == 1 for p in profiles)
        # RabbitMQ keeps its queues: no epoch to lose, recovery never publishes anything a second time
        assert [it["publications"] for it in doc["items"]] == [1] * 20

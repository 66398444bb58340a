"""The task wrapper's outcome -> ack / retry mapping (workers/tasks.py ``export_item_task``) through a real
Celery worker process started as ``ghexport worker`` starts it, on the real Redis (its own database), the
real PostgreSQL store and the Harvest sandbox over HTTP.

Checked by what can be observed from outside: the item rows, the sandbox's traffic and records, the
broker's queue and unacked set, and the worker's own count of task executions (``inspect stats``)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from producer import api
from producer.demo import sample_profiles, worker_command
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from shared.queue import names
from shared.queue.messages import ExportItemMessage
from shared.resources import Resources
from shared.store import batches
from tests.integration.workers_env import broker_db, connect_sandbox, running, worker_settings

BROKER_DB = 11
"""This file's Redis database (test_export_e2e.py uses 9, the limiter tests 0): flushed before and after."""
WRITE_METHODS = ("POST ", "PUT ", "PATCH ", "DELETE ")
WAIT_S = 30.0


@dataclass
class Worker:
    """One worker process (concurrency 1) and everything it talks to."""

    res: Resources
    sandbox: Sandbox
    broker: redis.Redis
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def executions(self) -> int:
        """How many export tasks the worker has started so far (its own counter, ``inspect stats``)."""
        replies = self.res.celery.control.inspect(timeout=5.0, limit=1).stats() or {}
        assert len(replies) == 1, f"expected one worker to answer, got {list(replies)}\n{self.log_text()}"
        (stats,) = replies.values()
        return int(stats["total"].get(names.EXPORT_ITEM_TASK, 0))

    def broker_idle(self) -> bool:
        """No message waiting in the export queue and none delivered but unacknowledged (nor held for a
        countdown: the Redis transport keeps those in ``unacked`` too)."""
        waiting = sum(int(self.broker.llen(k)) for k in self.broker.scan_iter(f"{names.EXPORT_QUEUE}*"))
        return waiting == 0 and int(self.broker.hlen("unacked")) == 0

    def wait_for(self, what: str, check: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert self.process.poll() is None, f"the worker exited ({self.process.returncode})\n{self.log_text()}"
            assert time.monotonic() < deadline, f"timed out waiting for: {what}\n{self.log_text()}"
            time.sleep(0.1)

    def settle(self, executions: int) -> None:
        """Wait until the worker has run ``executions`` tasks in all and acked every message (stable for
        half a second: a message is briefly in neither the queue nor ``unacked`` while being delivered)."""

        def settled() -> bool:
            if self.executions() != executions:
                return False
            for _ in range(5):
                if not self.broker_idle():
                    return False
                time.sleep(0.1)
            return True

        self.wait_for(f"{executions} executions and an idle broker", settled)

    def send_raw(self, argument: Any) -> None:
        """Publish an export task whose argument is ``argument`` as is (a redelivery, or garbage)."""
        self.res.celery.send_task(names.EXPORT_ITEM_TASK, args=[argument], queue=names.EXPORT_QUEUE)

    def item(self, batch_id: str) -> Any:
        (item,) = batches.batch_items(self.res.engine, batch_id)
        return item

    def export_one(self, prefix: str) -> str:
        profiles = sample_profiles(1, prefix=prefix)
        target = api.ExportTarget.job(seed.OPEN_JOB_ID)
        return api.export_profiles(self.res, connection_name="w", profiles=profiles, target=target).batch_id


def writes(requests: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The write requests of the sandbox's ``stats()["requests"]`` (route -> status -> count); ``/token``
    is not a write to Greenhouse."""
    return {route: c for route, c in requests.items() if route.startswith(WRITE_METHODS) and route != "POST /token"}


@pytest.fixture
def worker(redis_url: str, postgres_schema_url: str, tmp_path: Path) -> Iterator[Worker]:
    db_url, broker = broker_db(redis_url, BROKER_DB)
    sandbox = Sandbox(SandboxConfig(rate_limit=10_000, window_s=10.0))
    with SandboxServer(sandbox) as server:
        settings = worker_settings(
            db_url, postgres_schema_url, server, embedded_dir=tmp_path / "embedded",
            harvest={"quick_retries": 0},  # every 500 on a read is one task outcome
            # a short recovery turn: its read-back of new records is done before a test counts requests
            export={"retry_backoff_s": 0.5, "retry_backoff_max_s": 1.0, "recovery_interval_s": 1.0},
        )  # fmt: skip
        res = Resources(settings)
        connect_sandbox(res, "w")
        try:
            with running(worker_command(1, "INFO"), settings, tmp_path) as (process, log):
                yield Worker(res, sandbox, broker, process, log)
        finally:
            res.close()
            broker.flushdb()
            broker.close()


def test_a_finished_export_is_acked_once(worker: Worker) -> None:
    batch_id = worker.export_one("fin")
    worker.wait_for("the item exported", lambda: worker.item(batch_id).status == "exported")
    worker.settle(executions=1)
    time.sleep(1.0)  # a redelivery or a retry would show up by now
    assert worker.executions() == 1 and worker.broker_idle()
    item = worker.item(batch_id)
    assert (item.status, item.attempts, item.error) == ("exported", 1, None)
    assert item.greenhouse_candidate_id and item.greenhouse_application_id
    assert writes(worker.sandbox.stats()["requests"])["POST /v3/candidates"]["201"] == 1  # connect probed with a 422


def test_retry_later_comes_back_and_finishes_with_the_attempts_recorded(worker: Worker) -> None:
    # the email lookup before the create answers 500 twice: two RetryLater (server_error) outcomes
    worker.sandbox.inject_fault("error_before", method="GET", path="/v3/candidates", count=2)
    batch_id = worker.export_one("retry")
    worker.wait_for("the item exported after two retries", lambda: worker.item(batch_id).status == "exported")
    worker.settle(executions=3)
    item = worker.item(batch_id)
    assert (item.status, item.attempts, item.error, item.error_cause) == ("exported", 3, None, None)
    stats = worker.sandbox.stats()
    assert stats["requests"]["GET /v3/candidates"]["500"] == 2
    assert writes(stats["requests"])["POST /v3/candidates"]["201"] == 1
    emails = [e["value"] for c in worker.sandbox.state_snapshot()["candidates"] for e in c["email_addresses"]]
    assert emails.count("retry.0@example.org") == 1


def test_a_message_for_a_finished_item_is_acked_without_a_harvest_call(worker: Worker) -> None:
    batch_id = worker.export_one("done")
    worker.wait_for("the item exported", lambda: worker.item(batch_id).status == "exported")
    # the workers' read-back of the new record (one GET of its own) is over before requests are counted
    worker.wait_for("the record read back", lambda: worker.item(batch_id).visible_at is not None)
    worker.settle(executions=1)
    before_item = worker.item(batch_id)
    before_stats = worker.sandbox.stats()
    before_record = worker.sandbox.state_snapshot()["candidates"]

    worker.send_raw(ExportItemMessage(item_id=before_item.id).to_task_args())  # the broker redelivers it
    worker.settle(executions=2)
    time.sleep(1.0)  # a retry of the NotClaimed message would run again by now
    assert worker.executions() == 2 and worker.broker_idle()
    assert worker.sandbox.stats()["total_requests"] == before_stats["total_requests"]  # not even a read
    assert worker.sandbox.state_snapshot()["candidates"] == before_record
    after_item = worker.item(batch_id)
    # not claimed: the row is untouched (but for the sync turn's schedule, which may land meanwhile)
    schedule = {"sync_deadline_at", "sync_check_at"}
    assert after_item.model_dump(exclude=schedule) == before_item.model_dump(exclude=schedule)


def test_an_unreadable_message_is_dropped_and_the_worker_exports_the_next_item(worker: Worker) -> None:
    bad = [{"v": 1, "item_id": "not-a-number"}, {"v": 2, "item_id": 1}, {"v": 1, "item_id": 1, "x": 1}, "garbage"]
    for argument in bad:
        worker.send_raw(argument)
    batch_id = worker.export_one("next")  # queued behind the bad messages
    worker.wait_for("the next item exported", lambda: worker.item(batch_id).status == "exported")
    worker.settle(executions=len(bad) + 1)
    time.sleep(1.0)
    assert worker.executions() == len(bad) + 1 and worker.broker_idle()
    assert worker.process.poll() is None
    assert worker.item(batch_id).attempts == 1
    log = worker.log_text()
    assert log.count("dropping an unreadable export message") == len(bad), log
    assert "Traceback" not in log, log

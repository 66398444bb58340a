"""A cluster as an operator runs it, for the self-healing tests: the Harvest sandbox over HTTP, Redis, a
result store, and workers started with ``ghexport worker`` exactly as the README says (no ``--beat``, no
``recover`` by anyone). A test breaks a part of it and watches the system heal by itself; at the end,
:func:`tally` counts what reached Greenhouse and prints it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producer import api
from producer.demo import sample_profiles
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from shared.profiles.model import Profile
from shared.resources import Resources
from shared.store import batches
from shared.store.records import ItemRecord
from tests.integration.workers_env import connect_sandbox, stop_processes, worker_settings

GHEXPORT = str(Path(sys.executable).with_name("ghexport"))
"""The console script the README's commands run."""


@dataclass
class Cluster:
    """What :func:`cluster` started; workers are added and killed by the test."""

    res: Resources
    sandbox: Sandbox
    env: dict[str, str]
    logdir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        """``ghexport worker [args]`` in its own session (a host the test can kill whole)."""
        log = open(self.logdir / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115 (closed by the child)
        with log:
            process = subprocess.Popen(
                [GHEXPORT, "worker", *args], env=self.env, cwd=self.logdir, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.workers.append(process)
        return process

    def kill_worker(self, n: int) -> set[int]:
        """SIGKILL worker ``n`` with its pool (a lost host); returns the pids that died."""
        pgid = self.workers[n].pid
        pids = {pid for pid in _pids() if _pgid(pid) == pgid}
        os.killpg(pgid, signal.SIGKILL)
        self.workers[n].wait(timeout=30)
        return pids

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logdir.glob("worker-*.log")))

    def export(self, profiles: Sequence[Profile], target: api.ExportTarget | None = None) -> str:
        result = api.export_profiles(
            self.res, connection_name="heal", profiles=profiles, target=target or api.ExportTarget.job(seed.OPEN_JOB_ID)
        )
        return result.batch_id

    def status(self, batch_id: str) -> dict[str, Any] | None:
        """The batch's status document, or None while the store does not answer."""
        try:
            return api.batch_status(self.res, batch_id)
        except Exception:  # the test may have stopped the store
            return None

    def stop(self) -> None:
        stop_processes(self.workers)


@contextmanager
def cluster(
    redis_url: str,
    database_url: str,
    logdir: Path,
    *,
    sandbox: dict[str, Any] | None = None,
    **overrides: Any,
) -> Iterator[Cluster]:
    """The sandbox (``sandbox``: :class:`SandboxConfig` fields), Redis at ``redis_url`` as broker, limiter
    and caches, the store at ``database_url``, a connection named ``heal``; ``overrides`` are settings."""
    box = Sandbox(SandboxConfig(**(sandbox or {})))
    with SandboxServer(box) as server:
        settings = worker_settings(redis_url, database_url, server, **overrides)
        res = Resources(settings)
        connect_sandbox(res, "heal")
        system = Cluster(res, box, {**os.environ, **settings.to_env()}, logdir)
        try:
            yield system
        finally:
            system.stop()
            res.close()


def profiles(n: int, prefix: str, *, without_email_every: int = 0) -> list[Profile]:
    """``n`` sample profiles; every ``without_email_every``-th has no email (0: all have one)."""
    out = sample_profiles(n, prefix=prefix)
    if without_email_every:
        out = [
            p.model_copy(update={"emails": []}) if i % without_email_every == without_email_every - 1 else p
            for i, p in enumerate(out)
        ]
    return out


def wait_until_done(system: Cluster, batch_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    doc: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        doc = system.status(batch_id) or doc
        if doc is not None and doc["done"]:
            return doc
        time.sleep(0.5)
    raise AssertionError(f"batch not done after {timeout_s:.0f} s: {doc['counts'] if doc else 'no status'}")


def exported(system: Cluster, batch_id: str) -> int:
    doc = system.status(batch_id)
    return 0 if doc is None else doc["counts"].get("exported", 0)


@dataclass
class Tally:
    """What reached Greenhouse for the test's profiles."""

    sent: int
    records: int
    duplicates: list[str]
    lost: list[str]
    publications: Counter[int]

    def line(self) -> str:
        pubs = ", ".join(f"{k}: {v}" for k, v in sorted(self.publications.items()))
        return (
            f"candidates sent {self.sent}, records in Greenhouse {self.records}, duplicates {len(self.duplicates)}, "
            f"lost {len(self.lost)}, publications per item {{{pubs}}}"
        )


def tally(system: Cluster, sent: Sequence[Profile], batch_ids: Sequence[str]) -> Tally:
    """Count each profile's records in Greenhouse (by its unique profile link) and the items' publications;
    prints the summary line."""
    records: Counter[str] = Counter()
    for cand in system.sandbox.state_snapshot()["candidates"]:
        for link in cand.get("social_media_addresses", []):
            records[link["value"]] += 1
    links = {p.id: p.social_media[0] for p in sent}
    items = [it for b in batch_ids for it in batches.batch_items(system.res.engine, b)]
    result = Tally(
        sent=len(sent),
        records=sum(records[link] for link in links.values()),
        duplicates=[pid for pid, link in links.items() if records[link] > 1],
        lost=[pid for pid, link in links.items() if records[link] == 0],
        publications=Counter(it.publications for it in items),
    )
    print(result.line())
    return result


def batch_items(system: Cluster, batch_id: str) -> list[ItemRecord]:
    return batches.batch_items(system.res.engine, batch_id)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None

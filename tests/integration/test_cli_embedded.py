"""The ``ghexport`` console script as operators run it, on the embedded default (no Redis, no
PostgreSQL needed): connect, export with bad lines, a worker, status, retry; and the demo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.connections.crypto import generate_key
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from shared.queue.embedded import stop_embedded

GHEXPORT = str(Path(sys.executable).with_name("ghexport"))
MIXED = Path(__file__).parents[1] / "data" / "profiles_mixed.jsonl"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[dict[str, str], Sandbox]]:
    sandbox = Sandbox(SandboxConfig(rate_limit=10_000, window_s=10))
    with SandboxServer(sandbox) as server:
        env = {
            **os.environ,
            "GHX_DATABASE_URL": f"sqlite:///{tmp_path}/ghexport.db",
            "GHX_EMBEDDED_DIR": str(tmp_path / "embedded"),
            "GHX_SECRET_KEY": generate_key(),
            "GHX_HARVEST_URL": server.harvest_url,
            "GHX_HARVEST_TOKEN_URL": server.token_url,
            "GHX_CLIENT_SECRET": seed.CLIENT_SECRET,
        }
        env.pop("GHX_BROKER_URL", None)
        env.pop("GHX_REDIS_URL", None)
        try:
            yield env, sandbox
        finally:
            stop_embedded(tmp_path / "embedded")


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GHEXPORT, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_operator_flow_on_the_embedded_default(env: tuple[dict[str, str], Sandbox], tmp_path: Path) -> None:
    e, sandbox = env
    assert shutil.which(GHEXPORT), "the console script is installed"
    r = run(e, "connect", "--name", "acme", "--client-id", seed.CLIENT_ID, "--user-email", seed.RECRUITER_EMAIL,
            "--enable-pools")  # fmt: skip
    assert r.returncode == 0, r.stderr

    r = run(e, "export", "--connection", "acme", "--file", str(MIXED), "--job", str(seed.CLOSED_JOB_ID))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"ghexport: job {seed.CLOSED_JOB_ID} is not open (status closed)"]

    r = run(e, "export", "--connection", "acme", "--file", str(MIXED), "--job", str(seed.OPEN_JOB_ID), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["enqueued"] == 3 and doc["skipped"] == 0
    assert sorted(x["line"] for x in doc["rejected"]) == [2, 3, 4, 6, 9]  # each bad line, by number

    worker = subprocess.Popen([GHEXPORT, "worker", "--concurrency", "2", "--loglevel", "WARNING"], env=e,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        r = run(e, "export", "--connection", "acme", "--file", str(MIXED), "--prospect", "--pool",
                str(seed.POOL_ID), "--include-exported", "--wait", "--json")  # fmt: skip
        assert r.returncode == 0, r.stderr
        second = json.loads(r.stdout)["batch_id"]
        r = run(e, "status", doc["batch_id"], "--json")
        status = json.loads(r.stdout)
        while status["counts"].get("queued") or status["counts"].get("sending"):
            status = json.loads(run(e, "status", doc["batch_id"], "--json").stdout)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    assert status["total"] == 3 and status["counts"] == {"exported": 3}
    for it in status["items"]:
        assert set(it) >= {"candidate_id", "status", "greenhouse_candidate_id", "greenhouse_application_id", "error"}
        assert it["greenhouse_candidate_id"] and it["greenhouse_application_id"]
    prospects = json.loads(run(e, "status", second, "--json").stdout)
    assert prospects["counts"] == {"exported": 3}
    records = [c for c in sandbox.state_snapshot()["candidates"] if c["id"] != seed.EXISTING_CANDIDATE_ID]
    assert len(records) == 3
    assert all(len(c["applications"]) == 2 for c in records)  # the job, then the prospect pool

    r = run(e, "retry", "--all-failed", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["enqueued"] == 0
    r = run(e, "status", "no-such-batch")
    assert r.returncode == 1 and r.stderr.strip() == "ghexport: no batch no-such-batch"


def test_demo_exports_every_candidate(tmp_path: Path) -> None:
    e = {k: v for k, v in os.environ.items() if not k.startswith("GHX_")}
    r = subprocess.run([GHEXPORT, "demo", "--candidates", "8", "--json"], env=e, cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["exported"] == 8 and summary["counts"] == {"exported": 8}
    assert summary["linked_to_existing"] == 1  # the third profile's email is already in Greenhouse
    assert summary["greenhouse_records"] == 8  # 7 new + the existing person, no duplicate
    assert summary["resumes"] == 8  # every application got its resume PDF (the default field settings)
    assert sum(summary["left_out"].values()) >= 1, summary  # the samples hold a school Greenhouse lacks
    assert list(tmp_path.iterdir()) == [], "the demo leaves nothing behind in the working directory"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "--connection", "x"], "ghexport: Missing option '--file'. (see: ghexport export --help)"),
        (["nosuch"], "ghexport: No such command 'nosuch'. (see: ghexport --help)"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], message: str) -> None:
    r = subprocess.run([GHEXPORT, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [message]

"""``ghexport connect | connections | disconnect | jobs | pools | keygen`` through typer's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Iterator

import fakeredis
import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner, Result

import producer.cli_base as cli
from producer.cli import app, register_commands
from shared.harvest.sandbox import Sandbox
from shared.harvest.sandbox.seed import (
    CLIENT_ID,
    CLIENT_SECRET,
    CLOSED_JOB_ID,
    OPEN_JOB_2_ID,
    OPEN_JOB_ID,
    POOL_2_ID,
    POOL_2_STAGE_ID,
    POOL_ID,
    RECRUITER_EMAIL,
    RECRUITER_USER_ID,
    STAGE_2_ID,
    STAGE_ID,
)
from shared.resources import Resources
from shared.store.db import open_store
from tests.connections_helpers import http_for, make_sandbox, make_settings

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _commands() -> None:
    if not any(c.name == "connect" for c in app.registered_commands):
        register_commands()


@pytest.fixture
def sandbox() -> Sandbox:
    return make_sandbox(rate_limit=10_000)


@pytest.fixture
def res(sqlite_url: str, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Resources]:
    """Process resources wired to the sandbox (MockTransport), fakeredis and a SQLite store."""
    resources = Resources(
        make_settings(sqlite_url),
        engine=open_store(sqlite_url),
        http_client=http_for(sandbox),
        redis_client=fakeredis.FakeRedis(),
    )
    monkeypatch.setattr(cli, "_resources", resources)
    monkeypatch.delenv("GHX_CLIENT_SECRET", raising=False)
    monkeypatch.setattr(cli.console, "width", 250)  # tables unwrapped, so cells can be asserted
    yield resources
    resources.close()


CONNECT = ["connect", "--name", "acme", "--client-id", CLIENT_ID, "--user-email", RECRUITER_EMAIL]


def _connect(*extra: str, secret: str = CLIENT_SECRET) -> Result:
    return runner.invoke(app, [*CONNECT, "--client-secret", secret, *extra])


def _fails_with_one_line(result: Result, text: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ghexport: ") and text in lines[0], lines[0]
    assert result.stdout == ""


def test_connect_prints_what_it_stored(res: Resources) -> None:
    result = _connect("--enable-pools")
    assert result.exit_code == 0, result.output
    assert f"connected acme as {RECRUITER_EMAIL} (id {RECRUITER_USER_ID})" in result.stdout
    assert CLIENT_SECRET not in result.output


def test_connect_json_with_verification(res: Resources, sandbox: Sandbox) -> None:
    result = _connect("--verify-prospect", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["created"] is True
    assert doc["connection"]["user_id"] == RECRUITER_USER_ID
    cid = doc["verified_candidate_id"]
    assert cid in {c["id"] for c in sandbox.state_snapshot()["candidates"]}
    assert any(m.startswith("All good") and str(cid) in m for m in doc["messages"])
    assert CLIENT_SECRET not in result.output


def test_client_secret_from_the_environment(res: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHX_CLIENT_SECRET", CLIENT_SECRET)
    result = runner.invoke(app, [*CONNECT, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["connection"]["name"] == "acme"


def test_connect_wrong_secret_fails_with_one_line(res: Resources) -> None:
    _fails_with_one_line(_connect(secret="nope"), f"refused the client id {CLIENT_ID}")


def test_connect_case_mismatch_fails_with_did_you_mean(res: Resources) -> None:
    result = runner.invoke(app, [*CONNECT[:-1], "RECRUITER.ONE@sandbox.example", "--client-secret", CLIENT_SECRET])
    _fails_with_one_line(result, "did you mean")


def test_connect_verify_closed_job_fails(res: Resources) -> None:
    _fails_with_one_line(
        _connect("--verify-job", str(CLOSED_JOB_ID)), f"job {CLOSED_JOB_ID} is not open (status closed)"
    )


@pytest.mark.parametrize("policy", ["link", "create", "skip"])
def test_connect_stores_the_duplicate_policy(res: Resources, policy: str) -> None:
    result = _connect("--on-duplicate", policy, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["connection"]["duplicate_policy"] == policy


def test_connect_refuses_an_unknown_duplicate_policy(res: Resources) -> None:
    _fails_with_one_line(_connect("--on-duplicate", "merge"), "unknown duplicate policy 'merge'")


def test_connect_refuses_both_verifications(res: Resources) -> None:
    _fails_with_one_line(_connect("--verify-prospect", "--verify-job", str(OPEN_JOB_ID)), "either --verify-prospect")


def test_connect_without_secret_key_says_keygen(res: Resources) -> None:
    res.settings.secret_key = None
    _fails_with_one_line(_connect(), "ghexport keygen")


def test_connections_lists_without_secrets(res: Resources) -> None:
    assert _connect("--prospects-only").exit_code == 0
    result = runner.invoke(app, ["connections", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)["connections"]
    assert (row["name"], row["client_id"], row["user_email"], row["user_id"]) == (
        "acme",
        CLIENT_ID,
        RECRUITER_EMAIL,
        RECRUITER_USER_ID,
    )
    assert row["prospects_only"] is True and row["pools_enabled"] is False
    assert row["source_name"] == "SeekOut" and row["created_at"] and row["updated_at"]
    assert "secret" not in json.dumps(row).lower()
    table = runner.invoke(app, ["connections"])
    assert table.exit_code == 0 and "acme" in table.stdout and "prospects only" in table.stdout
    assert CLIENT_SECRET not in table.stdout


def test_jobs_lists_open_jobs_only(res: Resources) -> None:
    assert _connect().exit_code == 0
    result = runner.invoke(app, ["jobs", "--connection", "acme", "--json"])
    assert result.exit_code == 0, result.output
    assert [j["id"] for j in json.loads(result.stdout)["jobs"]] == [OPEN_JOB_ID, OPEN_JOB_2_ID]
    assert res.redis.exists("ghx:lookups:1:open_jobs")  # cached for producer and workers
    table = runner.invoke(app, ["jobs", "--connection", "acme"])
    assert table.exit_code == 0 and str(OPEN_JOB_ID) in table.stdout
    assert str(CLOSED_JOB_ID) not in table.stdout


def test_pools_lists_pools_with_stages(res: Resources) -> None:
    assert _connect("--enable-pools").exit_code == 0
    result = runner.invoke(app, ["pools", "--connection", "acme", "--json"])
    assert result.exit_code == 0, result.output
    pools = {p["id"]: [s["id"] for s in p["stages"]] for p in json.loads(result.stdout)["pools"]}
    assert pools == {POOL_ID: [STAGE_ID, STAGE_2_ID], POOL_2_ID: [POOL_2_STAGE_ID]}
    assert runner.invoke(app, ["pools", "--connection", "acme"]).exit_code == 0


def test_disconnect_then_the_connection_is_gone(res: Resources) -> None:
    assert _connect().exit_code == 0
    result = runner.invoke(app, ["disconnect", "acme", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "acme", "removed": True, "items_failed": 0}
    _fails_with_one_line(runner.invoke(app, ["jobs", "--connection", "acme"]), "connection acme was removed")
    _fails_with_one_line(runner.invoke(app, ["disconnect", "acme"]), "connection acme")
    assert json.loads(runner.invoke(app, ["connections", "--json"]).stdout) == {"connections": []}


def test_unknown_connection_fails(res: Resources) -> None:
    _fails_with_one_line(runner.invoke(app, ["pools", "--connection", "ghost"]), "ghost does not exist")


def test_keygen_prints_a_fernet_key() -> None:
    result = runner.invoke(app, ["keygen"])
    assert result.exit_code == 0
    Fernet(result.stdout.strip().encode())

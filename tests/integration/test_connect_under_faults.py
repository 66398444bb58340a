"""``ghexport connect`` is patient: transient faults, an outage that opens the credential's circuit, and a
rate limit spent by the previous connect are waited out (said on stderr), not fatal.

The sandbox serves over loopback HTTP; the limiter and the circuit breaker run on the real Redis (database
5, flushed), so their Lua runs on Redis' own Lua 5.1; the store is SQLite in ``tmp_path``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr
from typer.testing import CliRunner

import producer.cli_base as cli
from producer.cli import app, register_commands
from shared.connections.crypto import generate_key
from shared.connections.service import connect, list_connections
from shared.errors import CircuitOpenError, ServerError
from shared.harvest.breaker import RedisCircuitBreaker
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from shared.resources import Resources
from shared.settings import BreakerSettings, HarvestSettings, LimiterSettings, Settings

DB = 5
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _commands() -> None:
    if not any(c.name == "connect" for c in app.registered_commands):
        register_commands()


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[str]:
    """Database 5 of the real Redis, flushed before and after."""
    url = redis_url.rsplit("/", 1)[0] + f"/{DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def settings_for(server: SandboxServer, redis_db: str, tmp_path: Path, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "broker_url": "memory://",
        "redis_url": redis_db,
        "database_url": f"sqlite:///{tmp_path}/store.db",
        "harvest_url": server.harvest_url,
        "harvest_token_url": server.token_url,
        "secret_key": SecretStr(generate_key()),
        "harvest": HarvestSettings(command_retry_max_wait_s=0.2),  # patient, but a test needs no long waits
    }
    values.update(over)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Waits:
    """An ``on_wait`` that keeps the reasons and prints them as the CLI does."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def __call__(self, seconds: float, reason: str) -> None:
        self.reasons.append(reason)
        cli.say_wait(seconds, reason)


def connect_cli(res: Resources, monkeypatch: pytest.MonkeyPatch, name: str, client_id: str, secret: str) -> Any:
    monkeypatch.setattr(cli, "_resources", res)
    return runner.invoke(
        app,
        ["connect", "--name", name, "--client-id", client_id, "--client-secret", secret,
         "--user-email", seed.RECRUITER_EMAIL],
    )  # fmt: skip


def test_connect_succeeds_with_a_fifth_of_reads_failing(
    redis_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = Sandbox(SandboxConfig(rate_limit=10_000, read_fault_rate=0.2, slow_s=0.2, seed=7))
    with SandboxServer(sandbox) as server:
        res = Resources(settings_for(server, redis_db, tmp_path), on_wait=cli.say_wait)
        try:
            for n in range(3):
                result = connect_cli(res, monkeypatch, f"acme{n}", seed.CLIENT_ID, seed.CLIENT_SECRET)
                assert result.exit_code == 0, result.output
                assert f"connected acme{n} as {seed.RECRUITER_EMAIL}" in result.stdout
            faults = sandbox.stats()["faults"]
            assert sum(faults.values()) - faults.get("slow", 0) >= 3, faults  # the connects really met faults
            assert [c.name for c in list_connections(res.engine)] == ["acme0", "acme1", "acme2"]
        finally:
            res.close()


def test_connect_survives_scripted_faults_and_an_outage_that_opens_the_circuit(
    redis_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = Sandbox(SandboxConfig(rate_limit=10_000))
    sandbox.inject_fault("error_before", method="POST", path="/token", count=1)
    sandbox.inject_fault("error_before", method="POST", path="/v3/candidates", count=1)  # a scope probe
    sandbox.inject_fault("drop_before", method="GET", path="/v3/sources", count=1)
    sandbox.inject_fault("error_before", method="GET", path="/v3/users", count=2)
    sandbox.inject_fault("error_before", method="GET", path="/v3/jobs", count=4)  # 3 open the circuit
    with SandboxServer(sandbox) as server:
        conf = settings_for(server, redis_db, tmp_path, breaker=BreakerSettings(failures=3, open_s=0.8, max_open_s=2))
        waits = Waits()
        res = Resources(conf, on_wait=waits)
        try:
            with caplog.at_level(logging.INFO, logger="ghexport.harvest"):
                result = connect(
                    conf, res.engine, name="acme", client_id=seed.CLIENT_ID,
                    client_secret=SecretStr(seed.CLIENT_SECRET), user_email=seed.RECRUITER_EMAIL,
                    **res.harvest_options(),
                )  # fmt: skip
            assert result.user.id == seed.RECRUITER_USER_ID
            assert sum(sandbox.stats()["faults"].values()) == 9  # every scripted fault was met
            pauses = [w for w in waits.reasons if re.match(r"Greenhouse failed \d times in a row .*; waiting", w)]
            assert pauses, waits.reasons  # the circuit's pause after the failed probe (1.6 s) was announced
            logs = [r.getMessage() for r in caplog.records]
            assert sum("circuit open" in m for m in logs) == 1
            assert logs.count(f"Greenhouse answers again for {seed.CLIENT_ID}: circuit closed") == 1
            assert res.breaker.state(seed.CLIENT_ID).state == "closed" and res.breaker.states() == {}
        finally:
            res.close()


def test_two_connects_in_a_row_share_a_small_limit_and_the_second_waits(
    redis_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = Sandbox(SandboxConfig(rate_limit=10_000))
    # a connect makes about 33 requests (30 scope probes, the user, the source): the first fits in 40, the second not
    sandbox.add_credential("low", "low-secret", seed.ALL_SCOPES, rate_limit=40, window_s=6.0)
    with SandboxServer(sandbox) as server:
        conf = settings_for(server, redis_db, tmp_path, limiter=LimiterSettings(requests=40, window_s=6.0))
        first, second = Waits(), Waits()
        res = Resources(conf, on_wait=first)
        try:
            result = connect_cli(res, monkeypatch, "one", "low", "low-secret")
            assert result.exit_code == 0, result.output
            res.on_wait = second  # as a second `ghexport connect` right after the first would
            result = connect_cli(res, monkeypatch, "two", "low", "low-secret")
            assert result.exit_code == 0, result.output
            assert "for the credential's rate-limit budget" in result.stderr  # the operator is told why
        finally:
            res.close()
    budget = [w for w in second.reasons if w.endswith("for the credential's rate-limit budget")]
    assert budget, second.reasons
    low = sandbox.stats()["credentials"]["low"]
    assert low["rate_limited"] == 0, low  # waited for, never refused


def test_a_worker_would_not_wait(redis_db: str, tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(rate_limit=10_000))
    sandbox.inject_fault("error_before", method="GET", path="/v3/users", count=10)
    with SandboxServer(sandbox) as server:
        conf = settings_for(server, redis_db, tmp_path, breaker=BreakerSettings(failures=3, open_s=30))
        res = Resources(conf, patient=False)
        args: dict[str, Any] = {
            "name": "acme", "client_id": seed.CLIENT_ID, "client_secret": SecretStr(seed.CLIENT_SECRET),
            "user_email": seed.RECRUITER_EMAIL, **res.harvest_options(),
        }  # fmt: skip
        try:
            with pytest.raises(ServerError) as info:
                connect(conf, res.engine, **args)  # quick retries only: 3 tries, 3 failures
            assert info.value.tries is None
            assert res.breaker.blocked(seed.CLIENT_ID)
            assert list(res.breaker.states()) == [seed.CLIENT_ID]
            with pytest.raises(CircuitOpenError):
                connect(conf, res.engine, **args)  # not even the token is asked for
            assert sandbox.stats()["faults"] == {"error_before": 3}
        finally:
            res.close()


def test_breaker_scripts_on_real_redis(redis_db: str) -> None:
    import time

    client = redis.Redis.from_url(redis_db)
    a = RedisCircuitBreaker(client, BreakerSettings(failures=2, open_s=0.2, max_open_s=0.3), probe_ttl_s=0.3)
    b = RedisCircuitBreaker(client, BreakerSettings(failures=2, open_s=0.2, max_open_s=0.3), probe_ttl_s=0.3)
    for _ in range(2):
        a.before_send("k")
        a.record("k", False)
    state = b.state("k")
    assert state.state == "open" and state.failures == 2 and state.pause_s == pytest.approx(0.2)
    with pytest.raises(CircuitOpenError):
        b.before_send("k")
    time.sleep(0.25)
    a.before_send("k")  # the probe
    with pytest.raises(CircuitOpenError) as info:
        b.before_send("k")
    assert info.value.retry_after_s <= 1.0
    a.record("k", False)
    assert b.state("k").pause_s == pytest.approx(0.3)  # doubled, capped
    time.sleep(0.35)
    b.before_send("k")
    time.sleep(0.35)  # b's probe never answers: it expires
    a.before_send("k")
    a.record("k", True)
    assert b.state("k").state == "closed" and b.states() == {}
    client.close()

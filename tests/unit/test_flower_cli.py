"""``ghexport flower`` through typer's CliRunner, Flower itself replaced by a recorder: refused beyond loopback
without credentials, started on loopback without them, and the command line and environment it is given."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from producer import cli_base, cli_ops
from producer.cli import app, register_commands
from shared.settings import Settings

runner = CliRunner()
BROKER = "redis://127.0.0.1:6379/2"  # never connected to: the command only passes it on


@pytest.fixture(scope="module", autouse=True)
def _commands() -> None:
    if not any(c.name == "flower" for c in app.registered_commands):
        register_commands()


pytestmark = pytest.mark.usefixtures("keep_signal_handlers")


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """What Flower would have been started with (nothing is started); the command's resources are the
    environment's, forgotten afterwards."""
    calls: list[dict[str, Any]] = []

    def record(cmd: Sequence[str], env: Mapping[str, str]) -> int:
        calls.append({"cmd": list(cmd), "env": dict(env)})
        return 0

    monkeypatch.setattr(cli_ops, "run_flower", record)
    monkeypatch.setenv("GHX_BROKER_URL", BROKER)
    cli_base.close_resources()
    yield calls
    cli_base.close_resources()


def flower(*args: str) -> Result:
    return runner.invoke(app, ["flower", *args])


def one_line_failure(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ghexport: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.1.2.3", "flower.internal", ""])
def test_refuses_beyond_loopback_without_credentials(started: list[dict[str, Any]], address: str) -> None:
    line = one_line_failure(flower("--address", address))
    assert "GHX_FLOWER_BASIC_AUTH" in line and "without authentication" in line
    assert started == []


def test_starts_on_loopback_without_credentials(started: list[dict[str, Any]]) -> None:
    result = flower()  # default address: 127.0.0.1
    assert result.exit_code == 0, result.output
    (call,) = started
    assert call["cmd"][-2:] == ["--address=127.0.0.1", "--port=5555"]
    assert "FLOWER_BASIC_AUTH" not in call["env"]
    assert "no authentication" in result.stderr


def test_an_empty_setting_means_no_credentials(started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHX_FLOWER_BASIC_AUTH", "")
    assert "without authentication" in one_line_failure(flower("--address", "0.0.0.0"))
    result = flower("--address", "::1")
    assert result.exit_code == 0, result.output
    assert "FLOWER_BASIC_AUTH" not in started[0]["env"] and started[0]["cmd"][-2] == "--address=::1"


def test_the_command_line_and_environment_carry_the_credentials_out_of_sight(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GHX_FLOWER_BASIC_AUTH", "ops:s3cret-pw,viewer:an0ther")
    monkeypatch.setenv("GHX_SECRET_KEY", "fernet-key-not-needed-by-flower")
    monkeypatch.setenv("GHX_DATABASE_URL", "postgresql+psycopg://ghx:db-pw@db/ghx")
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "stale:value")  # an inherited one is replaced, never merged
    result = flower("--address", "0.0.0.0", "--port", "5601")
    assert result.exit_code == 0, result.output
    (call,) = started
    cmd, env = call["cmd"], call["env"]
    assert cmd[1:] == ["-m", "celery", "-A", "workers.app", "flower", "--address=0.0.0.0", "--port=5601"]
    assert not any("s3cret-pw" in part or "redis://" in part for part in cmd)  # nothing secret for `ps` to show
    assert env["FLOWER_BASIC_AUTH"] == "ops:s3cret-pw,viewer:an0ther"
    assert env["GHX_BROKER_URL"] == BROKER
    assert not {"GHX_SECRET_KEY", "GHX_FLOWER_BASIC_AUTH", "GHX_DATABASE_URL"} & set(env)
    assert "s3cret-pw" not in result.output


def test_the_embedded_broker_is_resolved_like_the_worker_s(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    class FakeResources:
        settings = Settings()
        broker_url = "redis+socket:///tmp/ghx-test/redis.sock"

        def close(self) -> None:
            pass

    cli_base.use_resources(FakeResources())  # type: ignore[arg-type]  # only settings and broker_url are read
    assert flower().exit_code == 0
    assert started[0]["env"]["GHX_BROKER_URL"] == FakeResources.broker_url


@pytest.mark.parametrize("value", ["ops", "ops:", ":pw", "ops:pw,viewer"])
def test_credentials_no_one_could_log_in_with_are_refused(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("GHX_FLOWER_BASIC_AUTH", value)
    line = one_line_failure(flower("--address", "0.0.0.0"))
    assert "invalid setting GHX_FLOWER_BASIC_AUTH" in line
    assert started == []


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.5", False),
        ("localhost.example.org", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert cli_ops.is_loopback(address) is loopback


def test_check_auth_never_echoes_the_value() -> None:
    with pytest.raises(cli_base.CliError) as err:
        cli_ops.check_auth("0.0.0.0", SecretStr("onlyuser-s3cret"))
    assert "s3cret" not in str(err.value)

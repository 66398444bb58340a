"""Tests never see a developer's ``GHX_*`` variables or a ``.env`` file (the autouse fixture of
tests/conftest.py): ``Settings()`` inside a test is the documented defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).parents[2]

# What a developer's shell and a `.env` in the directory pytest starts from would set. Names are matched
# case-insensitively by pydantic-settings, so a lower-case variable counts too.
LEAKY_ENV = {
    "GHX_BROKER_URL": "redis://leaked-from-the-environment:1/0",
    "GHX_EXPORT__MAX_ATTEMPTS": "99",
    "ghx_cache_ttl_s": "1.5",
}
LEAKY_DOTENV = "GHX_DATABASE_URL=sqlite:////leaked-from-dotenv.db\nGHX_HARVEST__TIMEOUT_S=1.25\n"


def defaults() -> Settings:
    """Every field at its declared default (``model_construct`` reads no environment and no file)."""
    return Settings.model_construct()


def test_settings_are_the_defaults_inside_a_test() -> None:
    """Run by the next test in a polluted environment; on its own it holds as well."""
    assert [name for name in os.environ if name.upper().startswith("GHX_")] == []
    assert not Path(".env").exists()
    assert Settings().model_dump() == defaults().model_dump()


def test_a_dotenv_written_during_a_test_is_not_read() -> None:
    Path(".env").write_text(LEAKY_DOTENV)  # the test's own empty working directory
    assert Settings().model_dump() == defaults().model_dump()


def test_developer_environment_and_dotenv_do_not_reach_settings_in_tests(tmp_path: Path) -> None:
    """pytest started from a directory holding a ``.env``, in a shell exporting ``GHX_*`` variables: the
    settings inside the test are still the defaults."""
    (tmp_path / ".env").write_text(LEAKY_DOTENV)
    env = {**os.environ, **LEAKY_ENV}

    # the control: outside pytest the same shell and directory do change the settings
    probe = "from shared.settings import Settings; s = Settings(); print(s.broker_url, s.export.max_attempts, "
    probe += "s.cache_ttl_s, s.database_url, s.harvest.timeout_s)"
    seen = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert seen.stdout.split() == [
        "redis://leaked-from-the-environment:1/0", "99", "1.5", "sqlite:////leaked-from-dotenv.db", "1.25"
    ], seen.stderr  # fmt: skip

    inner = f"{Path(__file__).resolve()}::test_settings_are_the_defaults_inside_a_test"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir", str(ROOT),
         "-c", str(ROOT / "pyproject.toml"), inner],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout, run.stdout


def test_to_env_rebuilds_every_setting_in_a_child_process(tmp_path: Path) -> None:
    """Workers started by the demo and the tests get their settings from ``Settings.to_env()``: every
    value, lists and nested models included, must read back the same (a list written with ``str()`` was
    refused by pydantic-settings and every worker died at start)."""
    settings = Settings(
        resume={"font_dirs": ["/opt/fonts one", "~/fonts"], "max_bytes": 123_456},
        export={"max_attempts": 7},
        cache_ttl_s=2.5,
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GHX_")}
    env.update(settings.to_env())
    probe = "import sys; from shared.settings import Settings; sys.stdout.write(Settings().model_dump_json())"
    seen = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert seen.returncode == 0, seen.stderr
    assert Settings.model_validate_json(seen.stdout).model_dump() == settings.model_dump()

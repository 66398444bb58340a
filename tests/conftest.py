"""Shared fixtures: real services for integration tests, skip on a laptop without them, fail under CI=true.

Every test runs with no ``GHX_*`` variable in its environment and in an empty working directory with no
``.env`` (:func:`isolated_settings_env`), so a developer's shell or a ``.env`` in the checkout never changes
an outcome; tests that start processes pass them an explicit environment. Every test under
``tests/integration/`` carries the ``integration`` marker (:func:`pytest_collection_modifyitems`), so
``pytest -m "not integration"`` runs the unit tests alone.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

# Fixtures private_redis / private_postgres: a Redis and a PostgreSQL of a test's own, to kill and restart.
pytest_plugins = ["tests.integration.private_services"]

INTEGRATION_DIR = Path(__file__).parent / "integration"
SETTINGS_ENV_PREFIX = "GHX_"

# Read once at import, before the autouse fixture below clears every GHX_* variable for the tests.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

REDIS_URL = os.environ.get("GHX_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("GHX_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
POSTGRES_URL = os.environ.get("GHX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected from ``tests/integration/`` as ``integration`` (by folder, not per file)."""
    for item in items:
        if item.path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


def clear_settings_env(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    """Hide every input of :class:`shared.settings.Settings` but its defaults and explicit arguments.

    Deletes every ``GHX_*`` variable (any case: pydantic-settings matches names case-insensitively), moves
    to ``workdir`` (a child process that inherits the working directory finds no ``.env`` either) and
    stops ``Settings()`` from reading a ``.env`` file at all. Undone by ``monkeypatch`` after the test.
    """
    from shared.settings import Settings

    for name in list(os.environ):
        if name.upper().startswith(SETTINGS_ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(workdir)
    monkeypatch.setitem(Settings.model_config, "env_file", None)


@pytest.fixture(autouse=True)
def isolated_settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test: no ``GHX_*`` variable, no ``.env``; an empty working directory of its own."""
    clear_settings_env(monkeypatch, tmp_path_factory.mktemp("cwd"))


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), 1.0):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> None:
    """Skip with a clear reason when a service is absent; under ``CI=true`` fail instead."""
    if _reachable(url, default_port):
        return
    reason = f"{name} is not reachable at {url} (set GHX_TEST_{name.upper()}_URL or start it)"
    if IN_CI:
        pytest.fail(f"CI=true and {reason}: real-service tests must not be skipped in CI")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis used by integration tests."""
    require_service("redis", REDIS_URL, 6379)
    return REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    """A real Redis client on a fresh key prefix-free DB state (the test flushes what it writes)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """URL of the real RabbitMQ (guest/guest), a broker other than Redis."""
    require_service("rabbitmq", RABBITMQ_URL, 5672)
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the real PostgreSQL (trust auth, database ``test``)."""
    require_service("postgres", POSTGRES_URL, 5432)
    return POSTGRES_URL


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a fresh schema, dropped afterwards."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_url else "?"
    yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    """A fresh SQLite file database."""
    return f"sqlite:///{tmp_path}/ghexport-test.db"


@pytest.fixture
def keep_signal_handlers() -> Iterator[None]:
    """Put back the process's SIGTERM, SIGQUIT and SIGINT handlers after a test that installs its own."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)

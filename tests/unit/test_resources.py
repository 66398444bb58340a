"""The one place that wires a process: seams, lazy construction, close(), and error translation."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import httpx
import kombu.exceptions
import pytest
import redis
import sqlalchemy.exc

from shared.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    ExporterError,
    StoreUnavailableError,
    UserError,
)
from shared.queue.celery_app import make_celery
from shared.resources import Resources, translate_error
from shared.settings import Settings


def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' init-only option, not a field
        database_url=f"sqlite:///{tmp_path}/r.db",
        broker_url="memory://",
        redis_url="redis://127.0.0.1:1/0",
    )


def test_nothing_is_built_until_used(tmp_path: Path) -> None:
    res = Resources(settings(tmp_path))
    assert not {"engine", "redis", "http", "celery", "limiter"} & set(vars(res))
    assert not (tmp_path / "r.db").exists()
    res.close()


def test_close_releases_what_it_built_and_leaves_what_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given_redis = fakeredis.FakeRedis()
    given_http = httpx.Client()
    res = Resources(settings(tmp_path), redis_client=given_redis, http_client=given_http)
    assert res.redis is given_redis and res.http is given_http
    engine, app = res.engine, res.celery
    closed: list[str] = []
    monkeypatch.setattr(engine, "dispose", lambda: closed.append("engine"))
    monkeypatch.setattr(app, "close", lambda: closed.append("celery"))
    monkeypatch.setattr(given_redis, "close", lambda: closed.append("given redis"))
    res.close()
    assert sorted(closed) == ["celery", "engine"]
    assert not given_http.is_closed  # the caller's client stays open
    assert "celery" not in vars(res) and "engine" not in vars(res)
    res.close()  # twice is fine, and closes nothing again
    assert sorted(closed) == ["celery", "engine"]
    given_http.close()


def test_a_given_transport_serves_every_harvest_call(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={})

    with Resources(settings(tmp_path), http_transport=httpx.MockTransport(handler)) as res:
        res.http.get("https://harvest.example/v3/ping")
        assert res.http.headers["User-Agent"] == res.settings.harvest.user_agent
    assert seen == ["https://harvest.example/v3/ping"]


def test_a_given_celery_app_is_used_for_publishing(tmp_path: Path) -> None:
    app = make_celery(settings(tmp_path), "memory://")
    with Resources(settings(tmp_path), celery_app=app) as res:
        assert res.celery is app
        assert res.publish([]) == 0


@pytest.mark.parametrize(
    ("exc", "expected", "message"),
    [
        (sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused\nDETAIL")),
         StoreUnavailableError, "result store error: connection refused"),
        (redis.ConnectionError("Error 111 connecting"), BrokerUnavailableError,
         "cannot reach Redis/the broker: Error 111 connecting"),
        (kombu.exceptions.OperationalError(""), BrokerUnavailableError,
         "cannot reach Redis/the broker: OperationalError"),
        (ConfigurationError("GHX_SECRET_KEY is not set"), ConfigurationError, "GHX_SECRET_KEY is not set"),
        (ValueError("a bug"), None, None),
    ],
)  # fmt: skip
def test_translate_error(exc: Exception, expected: type[ExporterError] | None, message: str | None) -> None:
    got = translate_error(exc)
    if expected is None:
        assert got is None
    else:
        assert isinstance(got, expected) and str(got) == message


def test_every_user_error_is_an_exporter_error() -> None:
    assert issubclass(UserError, ExporterError)
    assert not issubclass(StoreUnavailableError, UserError)

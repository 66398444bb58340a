"""What the export task hands Celery when it retries, which Flower shows (``exception`` and ``traceback`` of a
retried task): the machine-readable cause, never the text of the error being handled, which may quote the
store or Harvest and through them candidate data. Celery's ``retry()`` raises inside the ``except`` block
and so would chain that error into the traceback; the task must not let it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from billiard.einfo import ExceptionInfo
from celery.exceptions import Retry

from shared.errors import StoreUnavailableError
from shared.settings import Settings

PII = "zephyrine.q@example.org"


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    """``workers.tasks`` with a broker URL that is never connected to, its runtime's collaborators faked, and
    ``retry`` recorded (Celery's own would publish)."""
    monkeypatch.setenv("GHX_BROKER_URL", "redis://127.0.0.1:1/0")  # importing the app connects nowhere
    monkeypatch.setenv("GHX_DATABASE_URL", f"sqlite:///{tmp_path}/unused.db")
    module = sys.modules.get("workers.tasks") or importlib.import_module("workers.tasks")
    store = SimpleNamespace(down=lambda reason: None, up=lambda: None)
    monkeypatch.setattr(module.runtime, "deps", lambda: SimpleNamespace(store=store, settings=Settings()))

    def retry(*, countdown: float | None = None, exc: BaseException | None = None, throw: bool = True) -> Retry:
        reason = Retry(exc=exc, when=countdown)
        if throw:
            raise reason
        return reason

    monkeypatch.setattr(module.export_item_task, "retry", retry)
    return module


def run_failing(tasks: ModuleType, monkeypatch: pytest.MonkeyPatch, error: Exception) -> str:
    """Run the task once with ``export_item`` raising ``error``; the traceback Celery would send Flower."""

    def boom(*_: Any) -> None:
        raise error

    monkeypatch.setattr(tasks, "export_item", boom)
    with pytest.raises(Retry) as caught:
        tasks.export_item_task.run({"v": 1, "item_id": 7})
    text: str = ExceptionInfo((caught.type, caught.value, caught.tb)).traceback
    return text


def test_an_unexpected_error_retries_with_its_type_only(tasks: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    traceback = run_failing(tasks, monkeypatch, ValueError(f"no record matches {PII}"))
    assert "RetryCause('internal_error: ValueError')" in traceback
    assert PII not in traceback and "During handling" not in traceback, traceback


def test_an_unavailable_store_retries_as_unavailable(tasks: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    traceback = run_failing(tasks, monkeypatch, StoreUnavailableError(f"the store did not answer ({PII})"))
    assert "RetryCause('unavailable')" in traceback
    assert PII not in traceback and "During handling" not in traceback, traceback

"""``ghexport worker`` starts the Celery worker again when it dies on its own (Celery gives up on some broker
failures by itself), and stops for good when asked to."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from producer import cli_run

pytestmark = pytest.mark.usefixtures("keep_signal_handlers")


def failing_until(tmp_path: Path, failures: int) -> list[str]:
    """A command that exits 1 its first ``failures`` runs, then 0; each run appends a line to ``runs``."""
    script = (
        "import sys, pathlib\n"
        f"p = pathlib.Path({str(tmp_path / 'runs')!r})\n"
        "n = len(p.read_text().splitlines()) if p.exists() else 0\n"
        "p.write_text('run\\n' * (n + 1))\n"
        f"sys.exit(1 if n < {failures} else 0)\n"
    )
    return [sys.executable, "-c", script]


def runs(tmp_path: Path) -> int:
    return len((tmp_path / "runs").read_text().splitlines())


def test_a_worker_that_dies_is_started_again(tmp_path: Path) -> None:
    assert cli_run.supervise(failing_until(tmp_path, 2), pause_s=0.01) == 0
    assert runs(tmp_path) == 3


def test_a_worker_that_keeps_dying_is_given_up(tmp_path: Path) -> None:
    assert cli_run.supervise(failing_until(tmp_path, 100), pause_s=0.01) == 1
    assert runs(tmp_path) == cli_run.RESTARTS_PER_MINUTE + 1


def test_sigterm_stops_the_worker_for_good(tmp_path: Path) -> None:
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    code = cli_run.supervise([sys.executable, "-c", "import time; time.sleep(30)"], pause_s=0.01)
    assert code == -signal.SIGTERM  # passed on to the worker, which died of it; not started again

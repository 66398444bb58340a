"""Every test under tests/integration/ carries the ``integration`` marker by folder (tests/conftest.py), so
``pytest -m "not integration"`` runs the unit tests alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
REPORT = "integration-marker:"

# Two integration tests whose files set no marker of their own, and one whose file does (the e2e file).
KNOWN_INTEGRATION = [
    "tests/integration/test_store_schema_pg.py::test_migrations_match_the_models_on_postgresql",
    "tests/integration/test_sandbox_server.py::test_token_list_create_and_drop_over_loopback",
    "tests/integration/test_export_e2e.py::test_export_200_profiles_through_real_workers",
]


def pytest_collection_finish(session: pytest.Session) -> None:
    """A hook only when this module is loaded as a plugin (``-p``) by :func:`collected_markers`."""
    for item in session.items:
        print(REPORT, item.nodeid, item.get_closest_marker("integration") is not None)


def collected_markers() -> dict[str, bool]:
    """Every test of the suite -> whether it carries ``integration`` (one collection, nothing run)."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.unit.test_integration_marker",
         "--collect-only", "-q", "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), str(ROOT / "tests")],
        env=dict(os.environ), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    marks = {}
    for line in run.stdout.splitlines():
        if line.startswith(REPORT):
            nodeid, marked = line.removeprefix(REPORT).strip().rsplit(" ", 1)  # ids may hold spaces
            marks[nodeid] = marked == "True"
    assert marks, run.stdout + run.stderr
    return marks


def test_integration_marker_follows_the_folder() -> None:
    marks = collected_markers()
    for known in KNOWN_INTEGRATION:
        assert marks.get(known) is True, f"{known}: {marks.get(known, 'not collected')}"
    assert f"tests/unit/{Path(__file__).name}::test_integration_marker_follows_the_folder" in marks
    wrong = [n for n, marked in marks.items() if marked != n.startswith("tests/integration/")]
    assert wrong == [], "integration marker must be set exactly on tests/integration/"
    assert any(not marked for marked in marks.values())  # -m "not integration" keeps the unit tests


def test_this_unit_test_has_no_integration_marker(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("integration") is None

"""The architecture contracts (import-linter, ``[tool.importlinter]`` in pyproject.toml) hold, and bite.

``scripts/test`` runs ``lint-imports`` on the tree; here each contract is shown to fail on a deliberate
back-import written into a copy of the packages, so a contract that silently stopped checking anything
(a renamed module, a typo in a layer) turns this test red.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGES = ("producer", "workers", "shared")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# (module to edit, import line added at its end, name of the contract that must break)
BACK_IMPORTS = [
    ("shared/errors.py", "import producer.api", "producer -> shared <- workers"),
    ("shared/store/items.py", "import shared.resources", "shared: monitoring > wiring > connections"),
    ("shared/profiles/mapping.py", "import shared.connections.lookups", "shared: monitoring > wiring > connections"),
    ("shared/harvest/models.py", "import shared.harvest.client", "shared.harvest: sandbox | client"),
    ("shared/harvest/sandbox/state.py", "import shared.harvest.models", "the sandbox is a fake server"),
    ("shared/queue/publishing.py", "import shared.harvest.sandbox", "production paths never import the sandbox"),
    ("shared/store/models.py", "import shared.harvest.models", "the store knows nothing of Harvest"),
    ("shared/profiles/model.py", "import shared.harvest.client", "profiles are pure mapping"),
    ("workers/outcome.py", "import workers.tasks", "workers: tasks > app"),
    ("producer/api.py", "import producer.cli_base", "producer: cli > cli_run"),
    ("shared/connections/checks.py", "import shared.connections.service", "no two sibling modules"),
]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` on the packages under ``root`` with the repo's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the three packages and pyproject.toml, which each case edits and restores."""
    root = tmp_path_factory.mktemp("arch")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_contracts_hold_on_the_tree(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), BACK_IMPORTS, ids=[c[0] for c in BACK_IMPORTS])
def test_a_back_import_breaks_its_contract(tree: Path, module: str, line: str, contract: str) -> None:
    path = tree / module
    original = path.read_text(encoding="utf-8")
    path.write_text(original + f"\n{line}  # deliberate back-import\n", encoding="utf-8")
    try:
        result = lint_imports(tree)
    finally:
        path.write_text(original, encoding="utf-8")
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout


WRITES = ("sa.update(", "sa.insert(", "sa.delete(", "session.add(", "Session(", ".execute(sa.text(")
"""What writes a table: a Core statement, the ORM session, raw SQL."""


def writers_outside_the_store(root: Path) -> list[str]:
    """``path:line`` of every statement of :data:`WRITES` outside ``shared/store`` (the sandbox keeps no table)."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(("shared/store/", "shared/harvest/sandbox/")):
                continue
            for n, text in enumerate(path.read_text().splitlines(), 1):
                if any(w in text for w in WRITES):
                    found.append(f"{rel}:{n}")
    return found


def test_the_store_is_the_only_writer_of_its_tables(tmp_path: Path) -> None:
    """Every state change goes through ``shared/store`` (where its callback is written in the same transaction);
    the check itself bites on a write added elsewhere."""
    assert writers_outside_the_store(ROOT) == []
    copy = tmp_path / "copy"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, copy / package)
    with open(copy / "shared/queue/pacing.py", "a") as f:
        f.write("\n# sa.update(Item).values(status='failed')\n")
    assert writers_outside_the_store(copy) == [
        f"shared/queue/pacing.py:{len((copy / 'shared/queue/pacing.py').read_text().splitlines())}"
    ]

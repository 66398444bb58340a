"""The README's curl examples of the HTTP API run as written, against a live ``ghexport api`` on the embedded
default with the sandbox as Greenhouse: every request answers 2xx (``curl -f``), and what they did is there."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from tests.integration.live_api import live_api

README = Path(__file__).parents[2] / "README.md"


def readme_http_examples() -> str:
    """The bash block of the README's section "The HTTP API"."""
    text = README.read_text()
    section = text[text.index("### The HTTP API") :]
    found = re.search(r"```bash\n(.*?)```", section, re.S)
    assert found, "the README's HTTP API section has a bash block"
    return found.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_examples_run(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(rate_limit=200, window_s=10))
    with SandboxServer(sandbox) as server, live_api(tmp_path, server) as api:
        env = {
            **api.env,
            "API": api.url,
            "CLIENT_ID": seed.CLIENT_ID,
            "CLIENT_SECRET": seed.CLIENT_SECRET,
            "USER_EMAIL": seed.RECRUITER_EMAIL,
            "JOB_ID": str(seed.OPEN_JOB_ID),
        }
        script = "set -euo pipefail\n" + readme_http_examples()
        done = subprocess.run(
            ["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
    docs = json_documents(done.stdout)
    created = [d for d in docs if "batch_id" in d and "replayed" in d]
    assert len(created) == 1 and created[0]["enqueued"] == 1 and not created[0]["replayed"]  # the JSON export
    statuses = [d for d in docs if d.get("profile_id") == "p-1001"]
    assert statuses and statuses[0]["connection"] == "main" and statuses[0]["exports"], statuses
    batch = next(d for d in docs if "items" in d and "counts" in d)
    assert [r["id"] for r in batch["rejected"]] == ["p-1003"] and batch["rejected"][0]["field"] == "last_name"
    assert [it["candidate_id"] for it in batch["items"]] == ["p-1002"]  # the contract names the profile so
    registered = next(d for d in docs if d.get("url") == "https://platform.example/hooks")
    assert registered["secret"].startswith("whsec_")


def json_documents(out: str) -> list[dict[str, object]]:
    """The JSON objects curl printed one after another (with no newline between them)."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    while (i := out.find("{", i)) != -1:
        doc, i = decoder.raw_decode(out, i)
        docs.append(doc)
    return docs

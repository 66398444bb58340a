"""A live ``ghexport api`` for tests that talk to it over HTTP as its users do: on the embedded default (SQLite
and the embedded broker in a folder of the test's own, as on a laptop), the sandbox as Greenhouse, and the
operator's CLI with the same settings (tenants, API keys)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.connections.crypto import generate_key
from shared.harvest.sandbox import SandboxServer

GHEXPORT = str(Path(sys.executable).with_name("ghexport"))


@dataclass(frozen=True)
class LiveApi:
    url: str
    env: dict[str, str]
    """The operator's shell: PATH with ``ghexport``, and the API's ``GHX_*`` settings."""

    def cli(self, *args: str) -> str:
        done = subprocess.run([GHEXPORT, *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def tenant_key(self, tenant: str) -> str:
        """A new tenant and an API key of it (``ghexport tenants create``, ``ghexport api-keys create``)."""
        self.cli("tenants", "create", tenant)
        return str(json.loads(self.cli("api-keys", "create", "--tenant", tenant, "--json"))["key"])


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_ready(url: str) -> bool:
    """Whether the API at ``url`` answers ``/v1/ready`` with 200 (its store and broker answer)."""
    try:
        return httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def live_api(tmp_path: Path, sandbox: SandboxServer) -> Iterator[LiveApi]:
    """``ghexport api`` on a free port, started as the README says, stopped on exit."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GHX_")},
        "PATH": f"{Path(GHEXPORT).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GHX_EMBEDDED_DIR": str(tmp_path / "embedded"),
        "GHX_DATABASE_URL": f"sqlite:///{tmp_path / 'ghexport.db'}",
        "GHX_SECRET_KEY": generate_key(),
        "GHX_HARVEST_URL": sandbox.harvest_url,
        "GHX_HARVEST_TOKEN_URL": sandbox.token_url,
        "GHX_API__PORT": str(port),
    }
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [GHEXPORT, "api"], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not api_ready(url):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.3)
        yield LiveApi(url, env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

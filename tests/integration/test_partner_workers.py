"""Partner connections through real processes: ``ghexport connect --partner`` serving its loopback redirect
while the test plays the customer's browser, two ``ghexport worker`` processes started as the README starts
them, a Redis of the test's own, PostgreSQL (a schema of the test's own) and the Harvest sandbox over HTTP.
Nobody runs ``recover`` or ``retry``.

The sandbox runs unlike the defaults: access tokens live 20 s and refresh tokens 60 s unused (Greenhouse: an
hour and a day), its own limit and window, latency and a visibility delay.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa

from producer import api
from producer.demo import sample_profiles
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer
from shared.harvest.sandbox import seed as s
from shared.resources import Resources
from shared.store import batches, grants
from shared.store.models import Connection, ItemStatus
from tests.integration.cluster import GHEXPORT, Cluster
from tests.integration.private_services import PrivateRedis
from tests.integration.workers_env import worker_settings

ACCESS_TTL_S = 20.0
REFRESH_TTL_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Partner:
    """The cluster, its sandbox and the partner client's redirect URI."""

    system: Cluster
    sandbox: Sandbox
    server: SandboxServer
    redirect_uri: str

    @property
    def res(self) -> Resources:
        return self.system.res

    def cli(self, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [GHEXPORT, *args], env=self.system.env, cwd=self.system.logdir, capture_output=True, text=True,
            timeout=timeout_s, check=False,
        )  # fmt: skip

    def connect(self, name: str, browser: Callable[[str], None], *extra: str) -> subprocess.CompletedProcess[str]:
        """``ghexport connect --partner --json``; ``browser(authorize_url)`` plays the customer once the command
        printed the URL. Returns the finished command."""
        command = [
            GHEXPORT, "connect", "--partner", "--name", name, "--client-id", s.PARTNER_CLIENT_ID,
            "--client-secret", s.PARTNER_CLIENT_SECRET, "--user-email", s.RECRUITER_EMAIL,
            "--redirect-uri", self.redirect_uri, "--json", *extra,
        ]  # fmt: skip
        process = subprocess.Popen(
            command, env=self.system.env, cwd=self.system.logdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        first = process.stdout.readline()
        try:
            url = json.loads(first)["authorize_url"]
        except (ValueError, KeyError):
            process.kill()
            raise AssertionError(f"no authorize_url line: {first!r} {process.communicate()}") from None
        browser(url)
        out, err = process.communicate(timeout=120)
        return subprocess.CompletedProcess(command, process.returncode, first + out, err)


def consent(
    *, org_id: int | None = None, deny: bool = False, state: str | None = None, code_from: list[str] | None = None
) -> Callable[[str], None]:
    """A customer's browser: opens the authorize URL, consents (as the Site Admin, with a service account),
    follows the redirect to the command's loopback address. ``state`` replaces the redirect's state, ``code_from``
    keeps (empty list) or replays (one code) the code."""

    def browse(url: str) -> None:
        with httpx.Client(timeout=30) as browser:
            page = browser.get(url)
            assert page.status_code == 200 and "<form" in page.text, page.text[:300]
            form = {"user_id": str(s.ADMIN_USER_ID), "consent_as": "service_account"}
            form["decision"] = "deny" if deny else "allow"
            if org_id is not None:
                form["organization_id"] = str(org_id)
            answer = browser.post(url, data=form)
            assert answer.status_code == 302, answer.text[:300]
            location = urlsplit(answer.headers["location"])
            params = dict(parse_qsl(location.query))
            if state is not None:
                params["state"] = state
            if code_from is not None:
                if code_from:
                    params["code"] = code_from[0]
                else:
                    code_from.append(params["code"])
            back = browser.get(urlunsplit(location._replace(query=str(httpx.QueryParams(params)))))
            assert back.status_code == 200, back.text

    return browse


@contextmanager
def partner_cluster(redis_url: str, database_url: str, logdir: Path, **sandbox: Any) -> Iterator[Partner]:
    config = {
        "rate_limit": 40, "window_s": 12, "latency_ms": 5, "visibility_delay_s": 1.0, "seed": 7,
        "token_ttl_s": ACCESS_TTL_S, "refresh_token_ttl_s": REFRESH_TTL_S, **sandbox,
    }  # fmt: skip
    box = Sandbox(SandboxConfig(**config))
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    box.add_partner_client(s.PARTNER_CLIENT_ID, s.PARTNER_CLIENT_SECRET, s.ALL_SCOPES, [redirect_uri])
    with SandboxServer(box) as server:
        settings = worker_settings(
            redis_url, database_url, server,
            harvest_authorize_url=server.authorize_url, harvest_introspect_url=server.introspect_url,
            partner={"refresh_every_s": 20.0, "check_every_s": 4.0},
            export={"recovery_interval_s": 3.0, "reconcile_interval_s": 2.0},
        )  # fmt: skip
        res = Resources(settings)
        res.engine  # noqa: B018 (migrate the store before any process uses it)
        system = Cluster(res, box, {**os.environ, **settings.to_env()}, logdir)
        try:
            yield Partner(system, box, server, redirect_uri)
        finally:
            system.stop()
            res.close()


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, system: Cluster) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        for worker in system.workers:
            assert worker.poll() is None, f"a worker exited while waiting for {what}\n{system.logs()[-6000:]}"
        time.sleep(0.2)
    raise AssertionError(f"not seen within {timeout_s:.0f} s: {what}\n{system.logs()[-6000:]}")


def done(p: Partner, batch_id: str, timeout_s: float) -> dict[str, Any]:
    docs: list[dict[str, Any]] = []

    def check() -> bool:
        docs[:] = [api.batch_status(p.res, batch_id)]
        return bool(docs[0]["done"])

    wait_for(f"batch {batch_id} done", check, timeout_s, p.system)
    return docs[0]


def grant_of(p: Partner, name: str) -> grants.GrantRecord:
    conn = next(c for c in api_connections(p) if c.name == name)
    return grants.grant_states(p.res.engine)[conn.id]


def api_connections(p: Partner) -> list[Any]:
    from shared.connections.service import list_connections

    return list_connections(p.res.engine)


def exported_people(p: Partner, org_id: int | None = None) -> list[dict[str, Any]]:
    """The candidates the exports created (the seeded ones left out)."""
    return [c for c in p.sandbox.state_snapshot(org_id)["candidates"] if c["id"] >= s.FIRST_RUNTIME_ID]


def export(p: Partner, n: int, prefix: str, name: str = "acme") -> str:
    profiles = sample_profiles(n, prefix=prefix)
    return api.export_profiles(
        p.res, connection_name=name, profiles=profiles, target=api.ExportTarget.prospect()
    ).batch_id


@pytest.mark.timeout(600)  # three idle minutes are part of it
def test_a_partner_connection_exports_stays_alive_idle_and_waits_out_a_revocation(
    private_redis: PrivateRedis, postgres_schema_url: str, tmp_path: Path
) -> None:
    with partner_cluster(private_redis.url(0), postgres_schema_url, tmp_path) as p:
        connected = p.connect("acme", consent())
        assert connected.returncode == 0, connected.stderr
        summary = json.loads(connected.stdout.splitlines()[-1])["connection"]
        assert summary["kind"] == "partner" and summary["state"] == "connected"
        assert summary["organization"] == {"id": s.ORG_ID, "name": s.ORG_NAME}
        assert summary["acting_as"]["user_id"] == s.SERVICE_ACCOUNT_USER_ID
        p.system.start_worker()
        p.system.start_worker()

        # 20 prospects, written as the service account, each owned by the recruiter (exact email)
        first = export(p, 20, "partner-a")
        doc = done(p, first, timeout_s=120)
        assert doc["counts"] == {"exported": 20}, [(i["candidate_id"], i["error"]) for i in doc["items"]]
        apps = [a for c in exported_people(p) for a in c["applications"]]
        assert len(apps) == 20 and {a["prospect_owner_id"] for a in apps} == {s.RECRUITER_USER_ID}

        # three idle minutes: access tokens live 20 s and refresh tokens 60 s; the workers keep it alive
        time.sleep(180)
        second = export(p, 20, "partner-b")
        jobs = [p.cli("jobs", "--connection", "acme", "--json") for _ in range(3)]  # a command needs a token too
        assert all(j.returncode == 0 for j in jobs), [j.stderr for j in jobs]
        doc = done(p, second, timeout_s=120)
        assert doc["counts"] == {"exported": 20}, [(i["candidate_id"], i["error"]) for i in doc["items"]]
        oauth = p.sandbox.oauth_stats()
        grant = grant_of(p, "acme")
        assert (oauth.refresh_reused, oauth.refresh_expired) == (0, 0), oauth
        assert oauth.refreshes >= 180 / REFRESH_TTL_S  # it was kept alive by refreshes
        assert oauth.refreshes == grant.generation - 1, (oauth, grant)  # one refresh per rotation, no wasted one

        # revoked by the customer: a new batch waits, neither failing nor spending attempts
        p.sandbox.revoke_consent(s.PARTNER_CLIENT_ID, s.ORG_ID)
        third = export(p, 10, "partner-c")

        def waiting() -> bool:
            items = batches.batch_items(p.res.engine, third)
            return all(i.status is ItemStatus.QUEUED and i.error_cause == "needs_reauth" for i in items)

        wait_for("the new batch waiting for a consent", waiting, 60, p.system)
        listed = p.cli("connections", "--json")
        assert listed.returncode == 0, listed.stderr
        state = {c["name"]: c for c in json.loads(listed.stdout)["connections"]}["acme"]
        assert state["state"] == "needs_reauth" and state["state_since"], state
        assert "invalid_grant" in state["state_reason"], state
        time.sleep(5)  # the held items stay put
        items = batches.batch_items(p.res.engine, third)
        assert {i.status for i in items} == {ItemStatus.QUEUED} and {i.attempts for i in items} == {0}
        assert "needs a new consent" in p.system.logs()

        # the customer consents again: the waiting batch finishes by itself
        again = p.connect("acme", consent())
        assert again.returncode == 0, again.stderr
        doc = done(p, third, timeout_s=120)
        assert doc["counts"] == {"exported": 10}, [(i["candidate_id"], i["error"]) for i in doc["items"]]
        assert {i.attempts for i in batches.batch_items(p.res.engine, third)} <= {0, 1}
        links = [link["value"] for c in exported_people(p) for link in c.get("social_media_addresses", [])]
        assert len(links) == len(set(links)) == 50  # no duplicate record
        assert p.system.logs().count("needs a new consent:") >= 1


@pytest.mark.parametrize("case", ["denied", "wrong_state", "code_twice", "expired_code"])
def test_a_failed_consent_is_one_line_and_stores_nothing(
    private_redis: PrivateRedis, postgres_schema_url: str, tmp_path: Path, case: str
) -> None:
    with partner_cluster(private_redis.url(0), postgres_schema_url, tmp_path, auth_code_ttl_s=1.0) as p:
        if case == "code_twice":
            codes: list[str] = []
            first = p.connect("first", consent(code_from=codes))
            assert first.returncode == 0, first.stderr
            browser = consent(code_from=codes)
        elif case == "denied":
            browser = consent(deny=True)
        elif case == "wrong_state":
            browser = consent(state="forged-state-value")
        else:
            browser = _late_redirect()
        result = p.connect("acme", browser)
        with p.res.engine.connect() as conn:
            names = conn.execute(sa.select(Connection.name)).scalars().all()
    lines = [line for line in result.stderr.splitlines() if line.startswith("ghexport:")]  # the rest: JSON logs
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    expected = {
        "denied": "the consent was denied (access_denied",
        "wrong_state": "matches no connect in progress",
        "code_twice": "refused the authorization code (invalid_grant",
        "expired_code": "refused the authorization code (invalid_grant",
    }[case]
    assert expected in lines[0], lines[0]
    assert "acme" not in names


def _late_redirect() -> Callable[[str], None]:
    """A browser whose redirect back reaches the command after the code expired: it consents, waits, then
    follows the redirect."""

    def browse(url: str) -> None:
        with httpx.Client(timeout=30) as browser:
            assert browser.get(url).status_code == 200
            form = {"user_id": str(s.ADMIN_USER_ID), "consent_as": "service_account", "decision": "allow"}
            answer = browser.post(url, data=form)
            assert answer.status_code == 302
            time.sleep(2.5)  # the code lives 1 s in this sandbox
            assert browser.get(answer.headers["location"]).status_code == 200

    return browse

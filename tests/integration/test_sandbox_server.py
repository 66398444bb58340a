"""The sandbox over real loopback HTTP: token, list with a Link header, create, and a dropped connection.

Needs no external service, so it never skips.
"""

from __future__ import annotations

import httpx
import pytest

from shared.harvest.sandbox import Sandbox, SandboxServer
from shared.harvest.sandbox import seed as s


def test_token_list_create_and_drop_over_loopback() -> None:
    sandbox = Sandbox()
    with SandboxServer(sandbox) as server, httpx.Client(base_url=server.harvest_url, timeout=5) as client:
        assert server.url.startswith("http://127.0.0.1:") and server.token_url == server.url + "/token"
        minted = client.post(
            server.token_url,
            auth=(s.CLIENT_ID, s.CLIENT_SECRET),
            params={"grant_type": "client_credentials", "sub": s.ADMIN_USER_ID},
        )
        assert minted.status_code == 200, minted.text
        headers = {"Authorization": f"Bearer {minted.json()['access_token']}"}

        users = client.get("/v3/users", params={"per_page": 2}, headers=headers)
        assert users.status_code == 200 and len(users.json()) == 2
        assert users.headers["X-RateLimit-Limit"] == "50"
        next_url = users.links["next"]["url"]
        assert next_url.startswith(f"{server.url}/v3/users?cursor=")
        assert len(client.get(next_url, headers=headers).json()) == 2

        body = {"first_name": "Ada", "last_name": "Quinn", "application": {"job_id": s.OPEN_JOB_ID}}
        created = client.post("/v3/candidates", json=body, headers=headers)
        assert created.status_code == 201
        assert created.json()["application"]["candidate_id"] == created.json()["candidate"]["id"]

        sandbox.inject_fault("drop_after")
        with pytest.raises(httpx.RemoteProtocolError):  # the socket closes with no response bytes
            client.post("/v3/candidates", json=body, headers=headers)
        assert len(sandbox.state_snapshot()["candidates"]) == 3  # seeded + created + the dropped write

        # The server keeps serving after a drop; admin routes work over HTTP too.
        assert client.get("/v3/jobs", params={"status": "open"}, headers=headers).status_code == 200
        stats = client.get("/_sandbox/stats").json()
        assert stats["requests"]["POST /v3/candidates"] == {"201": 1, "dropped": 1}

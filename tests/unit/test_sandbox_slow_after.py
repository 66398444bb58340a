"""The ``slow_after`` fault: the write is applied and counted, then the answer waits ``slow_s``.

It lets a test kill a client after its write landed and before it heard the answer (a worker killed between
an upload and saving its id). The sleep is injected, so nothing here waits.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest

from shared.harvest.sandbox import Sandbox, SandboxConfig
from shared.harvest.sandbox import seed as s
from shared.harvest.sandbox.faults import FAULT_KINDS, RANDOM_KINDS, READ_RANDOM_KINDS
from tests.unit.test_sandbox_support import Api, make_env

PDF = base64.b64encode(b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n").decode()


def _application(api: Api) -> int:
    created = api.post(
        "/v3/candidates", {"first_name": "Ada", "last_name": "Quinn", "application": {"job_id": s.OPEN_JOB_ID}}
    )
    assert created.status_code == 201, created.text
    return int(created.json()["application"]["id"])


def _upload_body(app_id: int) -> dict[str, Any]:
    return {"application_id": app_id, "filename": "Ada Quinn.pdf", "type": "resume", "content": PDF}


def _lock_is_free(sandbox: Sandbox) -> bool:
    """Whether another thread could take the sandbox's lock now (its RLock is re-entrant for this thread)."""
    free: list[bool] = []

    def probe() -> None:
        got = sandbox.state.lock.acquire(blocking=False)
        if got:
            sandbox.state.lock.release()
        free.append(got)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return free[0]


def test_slow_after_applies_the_write_then_sleeps_then_answers() -> None:
    events: list[str] = []
    with make_env(slow_s=20.0) as env:
        api = Api(env)
        app_id = _application(api)
        seen_during_sleep: dict[str, Any] = {}

        def sleep(seconds: float) -> None:
            events.append(f"sleep {seconds:g}")
            sandbox = env.sandbox
            seen_during_sleep["attachments"] = [dict(a) for a in sandbox.state.attachments.values()]
            seen_during_sleep["posts"] = sandbox.stats()["requests"].get("POST /v3/attachments")
            seen_during_sleep["lock_free"] = _lock_is_free(sandbox)

        env.sandbox._sleep = sleep  # the env's recording sleep, swapped for one that looks at the state
        env.sandbox.inject_fault("slow_after", method="POST", path="/v3/attachments")
        response = api.post("/v3/attachments", _upload_body(app_id))
        events.append("answer")

        assert events == ["sleep 20", "answer"]  # one sleep of slow_s, and the answer only after it
        assert response.status_code == 201, response.text  # a normal answer, with the normal body
        attachment = response.json()
        assert attachment["filename"] == "Ada Quinn.pdf" and attachment["application_id"] == app_id
        landed = seen_during_sleep["attachments"]
        assert [a["id"] for a in landed] == [attachment["id"]]  # the upload had landed before the sleep began
        assert seen_during_sleep["posts"] == {"201": 1}  # and was counted in the stats
        assert seen_during_sleep["lock_free"]  # other requests are served meanwhile
        assert env.sandbox.stats()["faults"] == {"slow_after": 1}
        assert env.sandbox.attachment_content(attachment["id"]).startswith(b"%PDF-")

        events.clear()
        again = api.post("/v3/attachments", {**_upload_body(app_id), "filename": "other.pdf"})
        assert again.status_code == 201 and events == []  # count=1: the next upload is not slowed
        assert env.sandbox.stats()["requests"]["POST /v3/attachments"] == {"201": 2}


def test_slow_after_on_a_refused_write_still_answers_the_refusal_late() -> None:
    with make_env(slow_s=3.0) as env:
        api = Api(env)
        env.sandbox.inject_fault("slow_after", method="POST", path="/v3/attachments")
        refused = api.post("/v3/attachments", {"application_id": 999, "filename": "x.pdf", "type": "resume"})
        assert refused.status_code == 422
        assert env.sleeps == [3.0]
        assert env.sandbox.state.attachments == {}


def test_slow_after_is_injectable_over_the_admin_route_and_not_a_random_kind() -> None:
    assert "slow_after" in FAULT_KINDS
    assert "slow_after" not in RANDOM_KINDS and "slow_after" not in READ_RANDOM_KINDS  # opt in only
    with make_env(slow_s=7.5) as env:
        api = Api(env)
        app_id = _application(api)
        body = {"kind": "slow_after", "method": "POST", "path": "/v3/attachments", "count": 1}
        assert env.client.post("/_sandbox/faults", json=body).status_code == 201  # what SandboxServer serves
        assert api.post("/v3/attachments", _upload_body(app_id)).status_code == 201
        assert env.sleeps == [7.5]
        bad = env.client.post("/_sandbox/faults", json={**body, "kind": "slow_later"})
        assert bad.status_code == 400 and "slow_after" in bad.json()["message"]  # the error lists the kinds


def test_slow_after_as_a_chosen_random_write_kind() -> None:
    with make_env(fault_rate=1.0, fault_kinds=("slow_after",), slow_s=1.0) as env:
        api = Api(env)
        before = len(env.sandbox.state.candidates)
        _application(api)  # a write: slowed after it landed, answered normally (201)
        assert env.sleeps == [1.0]
        assert len(env.sandbox.state.candidates) == before + 1


@pytest.mark.parametrize("slow_s", [-1.0, float("inf")])
def test_slow_s_is_checked_for_slow_after_too(slow_s: float) -> None:
    with pytest.raises(ValueError, match="slow_s"):
        Sandbox(SandboxConfig(slow_s=slow_s, fault_kinds=("slow_after",)))

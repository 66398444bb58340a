"""The sandbox's Greenhouse webhooks: signed ``delete_candidate`` on delete and merge, ``merge_candidate``,
retries, delivery from a background thread, and the admin routes."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from shared.harvest.sandbox import Sandbox, SandboxConfig
from shared.harvest.sandbox import seed as s
from tests.unit.test_sandbox_support import BASE_URL, Api, Env, FakeClock

HOOK_URL = "https://receiver.test/hooks"
SECRET = "s3cret-key"
FAST = (0.01, 0.01, 0.01)


@dataclass
class Receiver:
    """A webhook receiver behind an ``httpx.MockTransport``: records each request (raw body, headers, thread,
    whether the sandbox lock was free) and answers ``answers`` in turn, then 200."""

    sandbox_lock: Any = None
    answers: list[int | Exception] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        free = self.sandbox_lock.acquire(blocking=False)
        if free:
            self.sandbox_lock.release()
        self.seen.append(
            {
                "body": request.content,
                "headers": dict(request.headers),
                "thread": threading.current_thread(),
                "lock_free": free,
            }
        )
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def make_sandbox(receiver: Receiver) -> Iterator[Callable[..., Env]]:
    made: list[Env] = []

    def factory(**config: Any) -> Env:
        clock = FakeClock()
        hooks = httpx.Client(transport=httpx.MockTransport(receiver.handle))
        config.setdefault("webhook_retry_delays_s", FAST)
        sandbox = Sandbox(SandboxConfig(**config), clock=clock, sleep=lambda _s: None, webhook_client=hooks)
        receiver.sandbox_lock = sandbox.state.lock
        env = Env(sandbox, clock, httpx.Client(transport=sandbox.transport(), base_url=BASE_URL))
        made.append(env)
        return env

    yield factory
    for env in made:
        env.sandbox.close()
        env.client.close()


@pytest.fixture
def env(make_sandbox: Callable[..., Env]) -> Env:
    return make_sandbox()


def create(api: Api, first_name: str = "Ada", email: str = "ada@example.com") -> tuple[int, int]:
    """A new candidate with an application on the open job: (candidate id, application id)."""
    body = {
        "first_name": first_name,
        "last_name": "Quinn",
        "email_addresses": [{"value": email, "type": "personal"}],
        "application": {"job_id": s.OPEN_JOB_ID},
    }
    response = api.post("/v3/candidates", body)
    assert response.status_code == 201, response.text
    return response.json()["candidate"]["id"], response.json()["application"]["id"]


def verify(seen: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    """Check the delivery's signature as a receiver must (over the raw bytes) and return the parsed body."""
    algorithm, _, digest = seen["headers"]["signature"].partition(" ")
    assert algorithm == "sha256"
    expected = hmac.new(secret.encode(), seen["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(digest, expected)
    body: dict[str, Any] = json.loads(seen["body"])
    return body


def test_delete_fires_a_signed_delete_candidate_from_a_background_thread(env: Env, receiver: Receiver) -> None:
    api = Api(env)
    hook_id = env.sandbox.add_webhook("delete_candidate", HOOK_URL, SECRET)
    cid, app_id = create(api)

    assert api.delete(f"/v3/candidates/{cid}").status_code == 204
    assert env.sandbox.wait_for_webhooks(5)

    (seen,) = receiver.seen
    body = verify(seen)
    assert body["action"] == "delete_candidate"
    person = body["payload"]["person"]
    assert person["id"] == cid and person["deleted_application_ids"] == [app_id]
    assert person["first_name"] == "Ada" and person["is_private"] is False
    assert seen["headers"]["greenhouse-event-id"]
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["thread"] is not threading.current_thread()
    assert seen["lock_free"], "delivered while the sandbox lock was held"
    (delivery,) = env.sandbox.webhook_deliveries()
    assert delivery["state"] == "delivered" and delivery["webhook_id"] == hook_id
    assert delivery["event_id"] == seen["headers"]["greenhouse-event-id"]
    assert delivery["attempts"] == [{"status": 200, "error": None}]


def test_no_webhook_configured_sends_nothing(env: Env, receiver: Receiver) -> None:
    api = Api(env)
    cid, _ = create(api)
    assert api.delete(f"/v3/candidates/{cid}").status_code == 204
    assert env.sandbox.wait_for_webhooks(1)
    assert receiver.seen == [] and env.sandbox.webhook_deliveries() == []


def test_merge_moves_applications_and_fires_delete_candidate_for_the_removed_record(
    env: Env, receiver: Receiver
) -> None:
    api = Api(env)
    env.sandbox.add_webhook("delete_candidate", HOOK_URL, SECRET)
    keep, keep_app = create(api, "Keep", "keep@example.com")
    gone, gone_app = create(api, "Gone", "gone@example.com")

    env.sandbox.merge(keep, gone)
    assert env.sandbox.wait_for_webhooks(5)

    snapshot = {c["id"]: c for c in env.sandbox.state_snapshot()["candidates"]}
    assert gone not in snapshot
    assert sorted(a["id"] for a in snapshot[keep]["applications"]) == sorted([keep_app, gone_app])
    assert {e["value"] for e in snapshot[keep]["email_addresses"]} == {"keep@example.com", "gone@example.com"}
    (seen,) = receiver.seen
    body = verify(seen)
    assert body["action"] == "delete_candidate"
    assert body["payload"]["person"]["id"] == gone
    assert body["payload"]["person"]["deleted_application_ids"] == []  # they moved to the survivor


def test_merge_through_harvest_fires_too(env: Env, receiver: Receiver) -> None:
    api = Api(env)
    env.sandbox.add_webhook("delete_candidate", HOOK_URL, SECRET)
    keep, _ = create(api, "Keep", "keep@example.com")
    gone, _ = create(api, "Gone", "gone@example.com")
    assert api.post(f"/v3/candidates/{keep}/merge", {"secondary_candidate_id": gone}).status_code == 200
    assert env.sandbox.wait_for_webhooks(5)
    assert [verify(seen)["payload"]["person"]["id"] for seen in receiver.seen] == [gone]


def test_a_merge_candidate_webhook_replaces_delete_candidate_on_merge(env: Env, receiver: Receiver) -> None:
    api = Api(env)
    env.sandbox.add_webhook("delete_candidate", HOOK_URL, SECRET)
    env.sandbox.add_webhook("merge_candidate", HOOK_URL + "/merge", "other-secret")
    keep, _ = create(api, "Keep", "keep@example.com")
    gone, _ = create(api, "Gone", "gone@example.com")

    env.sandbox.merge(keep, gone)
    assert env.sandbox.wait_for_webhooks(5)

    (seen,) = receiver.seen
    body = verify(seen, "other-secret")
    assert body["action"] == "merge_candidate"
    assert body["payload"]["person"]["id"] == gone and body["payload"]["person"]["new_candidate_id"] == keep


def test_control_removal_fires_delete_candidate(env: Env, receiver: Receiver) -> None:
    api = Api(env)
    env.sandbox.add_webhook("delete_candidate", HOOK_URL, SECRET)
    cid, app_id = create(api)
    env.sandbox.remove_candidate(cid)
    assert env.sandbox.wait_for_webhooks(5)
    (seen,) = receiver.seen
    person = verify(seen)["payload"]["person"]
    assert (person["id"], person["deleted_application_ids"]) == (cid, [app_id])


def test_failed_deliveries_are_retried_with_the_same_event_id(env: Env, receiver: Receiver) -> None:
    api = Api(env)
    env.sandbox.add_webhook("delete_candidate", HOOK_URL, SECRET)
    receiver.answers = [500, httpx.ConnectError("refused"), 204]  # Greenhouse: anything but 200 failed
    cid, _ = create(api)
    assert api.delete(f"/v3/candidates/{cid}").status_code == 204
    assert env.sandbox.wait_for_webhooks(5)

    assert len(receiver.seen) == 4
    assert len({seen["headers"]["greenhouse-event-id"] for seen in receiver.seen}) == 1
    assert len({seen["body"] for seen in receiver.seen}) == 1
    (delivery,) = env.sandbox.webhook_deliveries()
    assert delivery["state"] == "delivered"
    assert [a["status"] for a in delivery["attempts"]] == [500, None, 204, 200]
    assert "ConnectError" in delivery["attempts"][1]["error"]


def test_a_receiver_that_never_answers_200_is_given_up_after_the_retries(
    make_sandbox: Callable[..., Env], receiver: Receiver
) -> None:
    env = make_sandbox(webhook_retry_delays_s=(0.01, 0.01))
    api = Api(env)
    env.sandbox.add_webhook("delete_candidate", HOOK_URL, SECRET)
    receiver.answers = [503] * 10
    cid, _ = create(api)
    assert api.delete(f"/v3/candidates/{cid}").status_code == 204
    assert env.sandbox.wait_for_webhooks(5)
    (delivery,) = env.sandbox.webhook_deliveries()
    assert delivery["state"] == "failed" and len(delivery["attempts"]) == 3


def test_the_body_escapes_like_greenhouse_and_the_signature_covers_the_raw_bytes(env: Env, receiver: Receiver) -> None:
    api = Api(env)
    env.sandbox.add_webhook("delete_candidate", HOOK_URL, SECRET)
    cid, _ = create(api, "<b>Zoë & co</b>")
    assert api.delete(f"/v3/candidates/{cid}").status_code == 204
    assert env.sandbox.wait_for_webhooks(5)
    (seen,) = receiver.seen
    assert b"\\u003cb\\u003eZo\\u00eb \\u0026 co" in seen["body"]
    assert verify(seen)["payload"]["person"]["first_name"] == "<b>Zoë & co</b>"
    reserialized = json.dumps(json.loads(seen["body"])).encode()
    assert hmac.new(SECRET.encode(), reserialized, hashlib.sha256).hexdigest() not in seen["headers"]["signature"]


def test_webhooks_belong_to_one_organization(env: Env, receiver: Receiver) -> None:
    env.sandbox.add_organization(77, "Other Co")
    env.sandbox.add_webhook("delete_candidate", HOOK_URL, SECRET, org_id=77)
    api = Api(env)
    cid, _ = create(api)
    assert api.delete(f"/v3/candidates/{cid}").status_code == 204  # in the default organization
    assert env.sandbox.wait_for_webhooks(1)
    assert receiver.seen == []


@pytest.mark.parametrize(
    ("action", "url", "secret"),
    [
        ("update_candidate", HOOK_URL, SECRET),
        ("delete_candidate", "ftp://x", SECRET),
        ("delete_candidate", HOOK_URL, ""),
    ],
)
def test_add_webhook_refuses_what_the_sandbox_cannot_fire(env: Env, action: str, url: str, secret: str) -> None:
    with pytest.raises(ValueError):
        env.sandbox.add_webhook(action, url, secret)


def test_merge_control_refuses_unknown_or_identical_ids(env: Env) -> None:
    with pytest.raises(KeyError):
        env.sandbox.merge(s.EXISTING_CANDIDATE_ID, 999)
    with pytest.raises(ValueError):
        env.sandbox.merge(s.EXISTING_CANDIDATE_ID, s.EXISTING_CANDIDATE_ID)


def test_admin_routes_configure_merge_and_list(env: Env, receiver: Receiver) -> None:
    api = Api(env)
    hook = {"action": "delete_candidate", "url": HOOK_URL, "secret_key": SECRET}
    added = env.client.post("/_sandbox/webhooks", json=hook)
    assert added.status_code == 201 and isinstance(added.json()["id"], int)
    keep, _ = create(api, "Keep", "keep@example.com")
    gone, _ = create(api, "Gone", "gone@example.com")
    assert env.client.post("/_sandbox/merge", json={"keep_id": keep, "remove_id": gone}).status_code == 200
    assert env.sandbox.wait_for_webhooks(5)
    (delivery,) = env.client.get("/_sandbox/webhooks").json()["deliveries"]
    assert delivery["payload"]["person"]["id"] == gone and delivery["state"] == "delivered"
    assert env.client.post("/_sandbox/merge", json={"keep_id": "x", "remove_id": gone}).status_code == 400
    assert env.client.post("/_sandbox/webhooks", json={**hook, "action": "nope"}).status_code == 400


@pytest.mark.parametrize(
    "config",
    [{"webhook_retry_delays_s": (-1.0,)}, {"webhook_retry_delays_s": (float("inf"),)}, {"webhook_timeout_s": 0}],
)
def test_bad_webhook_settings_are_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Sandbox(SandboxConfig(**config))

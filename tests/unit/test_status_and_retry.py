"""Status for the platform and retry by cause, through the producer API on SQLite: every export of one
profile, the sync counts of a batch, and operator retries that respect permanent causes and keep history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from producer import api
from shared.connections.service import disconnect
from shared.errors import (
    KNOWN_CAUSES,
    PERMANENT_CAUSES,
    TRANSIENT_CAUSES,
    ConnectionNotFoundError,
    HarvestError,
    PermanentError,
    RetryableError,
    UserError,
    retry_refusal,
)
from shared.harvest.sandbox import seed as s
from shared.store.models import utcnow
from tests.unit.export_fixtures import Env, drain_broker, make_env
from tests.unit.retry_fixtures import export, fail, ids, set_items


@pytest.fixture
def env(sqlite_url: str) -> Iterator[Env]:
    env = make_env(sqlite_url)
    yield env
    drain_broker(env)
    env.res.close()


# --- the cause classification ----------------------------------------------------------------------


def _descendants(cls: type[HarvestError]) -> list[type[HarvestError]]:
    return [d for sub in cls.__subclasses__() for d in (sub, *_descendants(sub))]


def test_every_harvest_error_cause_is_classified_by_its_branch() -> None:
    branches = {RetryableError, PermanentError}  # no cause of their own: never raised as such
    errors = {c for c in _descendants(HarvestError) if c not in branches and not c.__name__.startswith("_")}
    assert len(errors) >= 12
    for cls in errors:
        err = cls.__new__(cls)  # a cause is a property of the class: no constructor arguments needed
        permanent = issubclass(cls, PermanentError)
        assert (err.cause in PERMANENT_CAUSES) is permanent, cls
        assert (err.cause in TRANSIENT_CAUSES) is not permanent, cls
    assert PERMANENT_CAUSES.isdisjoint(TRANSIENT_CAUSES) and "connection_removed" in KNOWN_CAUSES


@pytest.mark.parametrize(
    ("cause", "force", "refusal"),
    [
        ("timeout", False, None),
        ("invalid", False, "permanent"),
        ("invalid", True, None),
        ("invalid_profile", False, "permanent"),
        ("connection_removed", False, "connection_removed"),
        ("connection_removed", True, "connection_removed"),
        (None, False, None),
        ("from_an_older_release", False, None),
    ],
)
def test_retry_refusal_table(cause: str | None, force: bool, refusal: str | None) -> None:
    assert retry_refusal(cause, force=force) == refusal


# --- per-profile status ----------------------------------------------------------------------------


def test_profile_status_lists_every_export_newest_first(env: Env) -> None:
    job_batch = export(env, ["p-1"])
    (job_item,) = ids(env, job_batch)
    env.export(job_item)
    synced_at = utcnow()
    set_items(env, [job_item], status="synced", synced_at=synced_at, sync_checks=2)
    prospect_batch = export(env, ["p-1"], api.ExportTarget.prospect(s.POOL_ID, s.STAGE_ID), include_exported=True)
    (prospect_item,) = ids(env, prospect_batch)
    env.export(prospect_item)
    deadline = utcnow() + timedelta(hours=4)
    set_items(env, [prospect_item], sync_deadline_at=deadline, sync_detail="tags missing")

    doc = api.profile_status(env.res, "acme", "p-1")
    assert json.loads(json.dumps(doc)) == doc, "JSON-ready: plain values only"
    first, second = doc["exports"]
    assert [first["batch_id"], second["batch_id"]] == [prospect_batch, job_batch]
    assert first["target"] == {"kind": "prospect", "job_id": None, "pool_id": s.POOL_ID, "stage_id": s.STAGE_ID}
    assert second["target"]["kind"] == "job" and second["target"]["job_id"] == s.OPEN_JOB_ID
    assert [first["status"], second["status"]] == ["exported", "synced"]
    assert second["synced_at"] == synced_at.isoformat() and second["sync_checks"] == 2
    assert first["sync_deadline_at"] == deadline.isoformat() and first["sync_detail"] == "tags missing"
    assert {first["user_email"], second["user_email"]} == {s.RECRUITER_EMAIL}
    stored = env.item(job_item)
    assert stored.greenhouse_candidate_id is not None and stored.greenhouse_application_id is not None
    assert second["greenhouse_application_id"] == stored.greenhouse_application_id
    # the prospect went onto the record the job export created: one person, one candidate id
    assert first["greenhouse_candidate_id"] == second["greenhouse_candidate_id"] == stored.greenhouse_candidate_id
    assert second["exported_at"] is not None and second["created_at"] <= first["created_at"]
    assert doc["exported"] is True and doc["greenhouse_candidate_id"] == stored.greenhouse_candidate_id
    assert (doc["status"], doc["sync_state"], doc["in_progress"]) == ("exported", "pending", False)


def test_profile_status_of_unexported_and_failed_profiles(env: Env) -> None:
    nothing = api.profile_status(env.res, "acme", "p-never")
    assert nothing["exports"] == [] and nothing["exported"] is False and nothing["status"] is None
    batch = export(env, ["p-2"])
    in_flight = api.profile_status(env.res, "acme", "p-2")
    assert in_flight["in_progress"] is True and in_flight["status"] == "queued" and not in_flight["exported"]
    fail(env, ids(env, batch), "invalid")
    failed = api.profile_status(env.res, "acme", "p-2")
    assert failed["exported"] is False and failed["greenhouse_candidate_id"] is None
    assert failed["exports"][0]["error_cause"] == "invalid" and failed["status"] == "failed"
    with pytest.raises(ConnectionNotFoundError, match="connection nope does not exist"):
        api.profile_status(env.res, "nope", "p-2")


# --- sync counts in the batch status --------------------------------------------------------------


def test_batch_status_counts_sync(env: Env) -> None:
    batch = export(env, ["p-1", "p-2", "p-3", "p-4", "p-5"])
    a, b, c, d, _ = ids(env, batch)
    set_items(env, [a, b], status="exported")
    set_items(env, [c], status="synced", synced_at=utcnow())
    set_items(env, [d], status="sync_overdue", sync_detail="application not found")
    doc = api.batch_status(env.res, batch)
    assert doc["sync"] == {"pending": 2, "synced": 1, "overdue": 1}
    assert doc["counts"] == {"exported": 2, "synced": 1, "sync_overdue": 1, "queued": 1} and not doc["done"]
    by_id = dict(zip(ids(env, batch), doc["items"], strict=True))
    assert by_id[c]["synced_at"] is not None and by_id[a]["synced_at"] is None
    assert by_id[d]["sync_detail"] == "application not found"
    assert {"candidate_id", "status", "greenhouse_candidate_id", "error", "publications"} <= set(by_id[a])
    head = api.batch_progress(env.res, batch)  # what live views poll: the same head, no items
    assert head == {k: doc[k] for k in ("batch_id", "total", "counts", "sync", "done")}


# --- retry ------------------------------------------------------------------------------------------


def test_retry_by_batch_keeps_history_and_resets_attempts(env: Env) -> None:
    mine, other = export(env, ["p-1", "p-2"]), export(env, ["p-3"])
    fail(env, ids(env, mine), "timeout", attempts=5)
    fail(env, ids(env, other), "server_error")
    before = {i: env.item(i) for i in ids(env, mine)}

    result = api.retry_failed(env.res, mine)
    assert (result.enqueued, result.left) == (2, {})
    for item_id, old in before.items():
        now = env.item(item_id)
        assert (now.status, now.attempts, now.error, now.error_cause) == ("queued", 0, None, None)
        assert now.publications == old.publications + 1 and now.enqueued_at is not None
        assert now.history == [
            {
                "at": old.updated_at.isoformat(),
                "status": "failed",
                "attempts": 5,
                "cause": "timeout",
                "error": "it went wrong: timeout",
            }
        ]
    assert [env.item(i).status for i in ids(env, other)] == ["failed"]

    fail(env, ids(env, mine)[:1], "rate_limited", attempts=1)  # a second round appends, oldest first
    assert api.retry_failed(env.res, mine).enqueued == 1
    assert [h["cause"] for h in env.item(ids(env, mine)[0]).history] == ["timeout", "rate_limited"]


def test_retry_everything_or_one_cause(env: Env) -> None:
    first, second = export(env, ["p-1", "p-2"]), export(env, ["p-3", "p-4"])
    (a, b), (c, d) = ids(env, first), ids(env, second)
    fail(env, [a, c], "timeout")
    fail(env, [b], "server_error")
    fail(env, [d], "invalid")

    by_cause = api.retry_failed(env.res, cause="timeout")
    assert (by_cause.enqueued, by_cause.left) == (2, {})
    assert [env.item(i).status for i in (a, b, c, d)] == ["queued", "failed", "queued", "failed"]

    assert api.retry_failed(env.res, second, cause="server_error").enqueued == 0  # b is in the other batch
    everything = api.retry_failed(env.res)
    assert (everything.enqueued, everything.left) == (1, {"invalid": 1})
    assert env.item(b).status == "queued" and env.item(d).status == "failed"


def test_permanent_causes_need_force(env: Env) -> None:
    batch = export(env, ["p-1", "p-2", "p-3", "p-4"])
    a, b, c, d = ids(env, batch)
    fail(env, [a, b], "invalid")
    fail(env, [c], "forbidden")
    fail(env, [d], "timeout")

    refused = api.retry_failed(env.res, batch, cause="invalid")
    assert (refused.enqueued, refused.left) == (0, {"invalid": 2})
    assert env.item(a).status == "failed" and env.item(a).history == []
    plain = api.retry_failed(env.res, batch)
    assert (plain.enqueued, plain.left) == (1, {"invalid": 2, "forbidden": 1})
    forced = api.retry_failed(env.res, batch, force=True)
    assert (forced.enqueued, forced.left) == (3, {})
    assert forced.as_json() == {"batch_id": batch, "cause": None, "force": True, "enqueued": 3, "left": {}}
    assert [env.item(i).history[-1]["cause"] for i in (a, b, c)] == ["invalid", "invalid", "forbidden"]


def test_connection_removed_is_never_retried(env: Env) -> None:
    batch = export(env, ["p-1", "p-2"])
    a, b = ids(env, batch)
    fail(env, [a], "connection_removed")
    fail(env, [b], "timeout")
    result = api.retry_failed(env.res, batch, force=True)
    assert (result.enqueued, result.left) == (1, {"connection_removed": 1})
    assert env.item(a).status == "failed"

    fail(env, [b], "timeout")
    disconnect(env.engine, "acme")  # b's own cause is transient, but its connection is gone now
    for kw in ({}, {"cause": "timeout"}, {"cause": "connection_removed"}):
        gone = api.retry_failed(env.res, batch, force=True, **kw)
        assert gone.enqueued == 0 and sum(gone.left.values()) >= 1 and set(gone.left) == {"connection_removed"}
    assert [env.item(i).status for i in (a, b)] == ["failed", "failed"]


def test_unknown_cause_lists_the_causes_present(env: Env) -> None:
    batch = export(env, ["p-1", "p-2", "p-3"])
    a, b, _ = ids(env, batch)
    fail(env, [a], "timeout")
    fail(env, [b], "ambiguous_match")
    with pytest.raises(
        UserError, match="unknown cause nonsense; the failed items in the store have: ambiguous_match, timeout"
    ):
        api.retry_failed(env.res, cause="nonsense")
    assert api.retry_failed(env.res, cause="throttled").enqueued == 0, "a known cause with no failures: nothing to do"
    with pytest.raises(UserError, match="no batch nope"):
        api.retry_failed(env.res, "nope")

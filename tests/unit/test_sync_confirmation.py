"""Sync confirmation (``workers.sync``) against the sandbox: exported items are read back until they show
what was sent (``synced``), or end ``sync_overdue`` with what differs when their window closes; read-backs
wait for the credential's exports and spend a bounded share of its budget."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.harvest.sandbox import seed as s
from shared.profiles.model import Profile
from shared.settings import SyncSettings
from shared.store import items as store_items
from shared.store.models import ItemStatus, TargetKind, utcnow
from tests.unit.export_fixtures import Env, make_env, profile
from workers.outcome import Finished
from workers.sync import SyncReport, confirm_due

CFG = SyncSettings(peak_window_s=3600, offpeak_window_s=3600, check_every_s=0)


@pytest.fixture
def env(sqlite_url: str) -> Iterator[Env]:
    env = make_env(sqlite_url)
    yield env
    env.res.close()


def small(pid: str, **over: Any) -> Profile:
    """A profile with names and one email only: cheap to export."""
    return Profile.model_validate(
        {"id": pid, "first_name": "Zoë", "last_name": f"Ng {pid}", "emails": [f"{pid}@x.org"], **over}
    )


def exported(env: Env, profiles: list[Profile], **batch: Any) -> list[int]:
    ids = env.batch(profiles, **batch).to_enqueue
    for item_id in ids:
        assert env.export(item_id) == Finished(ItemStatus.EXPORTED)
    return ids


def turn(env: Env, *, after_s: float = 0.0, cfg: SyncSettings = CFG) -> SyncReport:
    at = utcnow() + timedelta(seconds=after_s)
    return confirm_due(env.res, cfg, clock=lambda: at)


def reads(env: Env) -> int:
    """GET requests on /v3 the sandbox answered so far."""
    return sum(sum(c.values()) for r, c in env.sandbox.stats()["requests"].items() if r.startswith("GET /v3/"))


def test_exported_items_are_read_back_and_become_synced(env: Env) -> None:
    job_items = exported(env, [profile("p-1"), small("p-2")])
    pool_items = exported(
        env, [small("p-3")], kind=TargetKind.PROSPECT, job_id=None, pool_id=s.POOL_ID, stage_id=s.STAGE_ID
    )
    before = reads(env)
    report = turn(env)
    assert (report.synced, report.overdue, report.checked) == (3, 0, 3)
    assert reads(env) - before == 2  # one chunk of one connection: the candidates, then their applications
    for item_id in job_items + pool_items:
        item = env.item(item_id)
        assert item.status == ItemStatus.SYNCED
        assert item.synced_at is not None and item.exported_at is not None and item.synced_at >= item.exported_at
        assert item.sync_checks == 1 and item.sync_detail is None
        assert item.sync_deadline_at is not None
        assert item.visible_at is not None
    assert turn(env).checked == 0  # settled items are not read again


def test_nothing_is_read_before_an_item_is_due(env: Env) -> None:
    exported(env, [small("p-1")])
    before = reads(env)
    cfg = CFG.model_copy(update={"check_every_s": 600})
    report = turn(env, cfg=cfg)
    assert report.scheduled == 1 and report.checked == 0 and reads(env) == before
    item = env.item(1)
    assert item.status == ItemStatus.EXPORTED and item.sync_check_at is not None
    assert turn(env, after_s=601, cfg=cfg).synced == 1


def test_a_record_changed_behind_our_back_is_overdue_when_its_window_closes(env: Env) -> None:
    [item_id] = exported(env, [small("p-1")])
    cid = env.item(item_id).greenhouse_candidate_id
    assert cid is not None
    env.sandbox.edit_candidate(cid, {"first_name": "Someone", "email_addresses": []})
    first = turn(env)
    assert (first.synced, first.overdue) == (0, 0)
    item = env.item(item_id)
    assert item.status == ItemStatus.EXPORTED  # still inside its window: read again later
    assert item.sync_detail == "first_name differs; 1 of 1 emails missing (#1)"
    assert "Someone" not in (item.sync_detail or "") and "p-1@x.org" not in (item.sync_detail or "")
    late = turn(env, after_s=3601)
    assert late.overdue == 1
    item = env.item(item_id)
    assert item.status == ItemStatus.SYNC_OVERDUE and item.sync_checks == 2
    assert item.sync_detail == "first_name differs; 1 of 1 emails missing (#1)"


def test_a_record_that_never_becomes_readable_is_overdue_with_that_reason(env: Env) -> None:
    [item_id] = exported(env, [small("p-1")])
    cid = env.item(item_id).greenhouse_candidate_id
    assert cid is not None
    env.sandbox.remove_candidate(cid)
    assert turn(env).overdue == 0
    assert env.item(item_id).sync_detail == "record not readable yet"
    assert turn(env, after_s=4000).overdue == 1
    item = env.item(item_id)
    assert item.status == ItemStatus.SYNC_OVERDUE and item.sync_detail == "record not readable yet"


def test_an_application_moved_to_another_stage_is_named_by_ids(env: Env) -> None:
    [item_id] = exported(
        env, [small("p-1")], kind=TargetKind.PROSPECT, job_id=None, pool_id=s.POOL_ID, stage_id=s.STAGE_ID
    )
    app_id = env.item(item_id).greenhouse_application_id
    assert app_id is not None
    with env.sandbox.state.lock:
        env.sandbox.state.applications[app_id]["prospect_pool_stage_id"] = 999
    turn(env, after_s=4000)
    item = env.item(item_id)
    assert item.status == ItemStatus.SYNC_OVERDUE
    assert item.sync_detail == f"application {app_id}: pool stage 999 shown, {s.STAGE_ID} expected"


def test_a_person_found_by_email_is_confirmed_by_its_application_not_its_name(env: Env) -> None:
    [item_id] = exported(env, [small("p-1", emails=[s.EXISTING_EMAIL])])
    item = env.item(item_id)
    assert item.linked_existing and item.greenhouse_candidate_id == s.EXISTING_CANDIDATE_ID
    assert turn(env).synced == 1


def test_read_backs_wait_while_the_credential_has_exports_to_do(env: Env) -> None:
    exported(env, [small("p-1")])
    waiting = env.batch([small("p-2")]).to_enqueue  # queued, not exported yet
    before = reads(env)
    report = turn(env)
    assert (report.checked, report.deferred) == (0, 1) and reads(env) == before
    assert env.export(waiting[0]) == Finished(ItemStatus.EXPORTED)
    assert turn(env).synced == 2


def test_a_turn_spends_at_most_its_share_of_the_budget(env: Env) -> None:
    exported(env, [small(f"p-{n}") for n in range(60)])
    cfg = CFG.model_copy(update={"budget_share": 0.04})  # 2 of the 50 requests: one chunk of fifty items
    before = reads(env)
    report = turn(env, cfg=cfg)
    assert (report.synced, report.deferred) == (50, 10)
    assert reads(env) - before == 2
    assert turn(env, cfg=cfg).synced == 10


def test_greenhouse_failing_at_the_window_close_ends_overdue_with_the_cause(env: Env) -> None:
    [early, late] = exported(env, [small("p-1"), small("p-2")])
    deadline = env.item(early).exported_at
    assert deadline is not None
    env.sandbox.outage(3600)
    report = turn(env)  # inside the window: left for a later turn
    assert (report.overdue, report.deferred) == (0, 2)
    assert env.item(early).status == ItemStatus.EXPORTED
    report = turn(env, after_s=4000)
    assert report.overdue == 2
    item = env.item(late)
    assert item.status == ItemStatus.SYNC_OVERDUE
    assert item.sync_detail == "could not be read back before the window closed: server_error"


def test_the_window_is_set_from_the_export_time(env: Env) -> None:
    [item_id] = exported(env, [small("p-1")])
    cfg = CFG.model_copy(update={"check_every_s": 600})
    turn(env, cfg=cfg)
    item = env.item(item_id)
    assert item.exported_at is not None and item.sync_deadline_at is not None and item.sync_check_at is not None
    assert item.sync_deadline_at - item.exported_at == timedelta(seconds=3600)
    assert item.sync_check_at - item.exported_at == timedelta(seconds=600)
    assert isinstance(item.sync_deadline_at, datetime)
    assert store_items.get_item(env.engine, item_id) is not None

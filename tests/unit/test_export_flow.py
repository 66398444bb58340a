"""Behaviour of the plain export flow ``export_item`` without Celery: sandbox (MockTransport) + SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col

from shared.connections.service import disconnect
from shared.harvest.sandbox import seed as s
from shared.store import batches as store_batches
from shared.store import items as store_items
from shared.store import people
from shared.store.models import Connection, DuplicatePolicy, Item, ItemStatus, TargetKind, utcnow
from tests.unit.export_fixtures import Env, make_env, profile
from workers.outcome import Finished, NotClaimed, RetryLater

EXPORTED = Finished(ItemStatus.EXPORTED)
FAILED = Finished(ItemStatus.FAILED)


@pytest.fixture
def new_env(sqlite_url: str) -> Iterator[Callable[..., Env]]:
    made: list[Env] = []

    def factory(**kw: Any) -> Env:
        env = make_env(sqlite_url, **kw)
        made.append(env)
        return env

    yield factory
    for env in made:
        env.res.close()


@pytest.fixture
def env(new_env: Callable[..., Env]) -> Env:
    return new_env()


def only(env: Env) -> dict[str, Any]:
    cands = env.candidates()
    assert len(cands) == 1, f"expected exactly one new record, got {[c['id'] for c in cands]}"
    return cands[0]


# --- 1, 2: the happy paths --------------------------------------------------------------------------


def test_job_export_creates_one_complete_record(env: Env) -> None:
    created = env.batch([profile()])
    (item_id,) = created.to_enqueue

    assert env.export(item_id) == EXPORTED

    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.status == ItemStatus.EXPORTED
    cand = only(env)
    assert item.greenhouse_candidate_id == cand["id"]
    assert cand["first_name"] == "Ada" and cand["last_name"] == "Lovelace"
    assert [e["value"] for e in cand["email_addresses"]] == ["ada.p-1@example.com"]
    assert [p["value"] for p in cand["phone_numbers"]] == ["+1 555 0100"]
    assert [a["value"] for a in cand["addresses"]] == ["London, UK"]
    assert [w["value"] for w in cand["website_addresses"]] == ["https://ada.dev"]
    assert [m["value"] for m in cand["social_media_addresses"]] == ["https://linkedin.com/in/ada"]
    assert cand["company"] == "Analytical Engines" and cand["title"] == "Principal Engineer"

    (app,) = cand["applications"]
    assert item.greenhouse_application_id == app["id"]
    assert app["job_id"] == s.OPEN_JOB_ID and app["prospect"] is False
    assert app["source_id"] == s.SOURCE_ID
    assert app["referrer_id"] == s.RECRUITER_USER_ID

    (edu,) = cand["educations"]
    assert edu["school_name_custom_field_option_id"] == s.SCHOOL_OPTIONS["Siena College"]
    assert edu["degree_custom_field_option_id"] == s.DEGREE_OPTIONS["Bachelor's Degree"]
    assert edu["discipline_custom_field_option_id"] == s.DISCIPLINE_OPTIONS["Computer Science"]
    (emp,) = cand["employments"]
    assert emp["company_name"] == "Babbage & Co" and emp["title"] == "Engineer"

    assert sorted(cand["tags"]) == ["Backend", "Rust Fans"]
    tags = env.sandbox.state_snapshot()["candidate_tags"]
    assert [t["name"] for t in tags].count("Rust Fans") == 1
    assert s.BACKEND_TAG_ID in {t["candidate_tag_id"] for t in cand["applied_tags"]}

    (note,) = cand["notes"]
    assert "Builds calculating machines." in note["body"] and "Skills: Python, Go" in note["body"]
    assert item.progress.note_id == note["id"]


def test_new_tag_is_created_once_across_profiles(env: Env) -> None:
    created = env.batch([profile("p-1"), profile("p-2")])
    for item_id in created.to_enqueue:
        assert env.export(item_id) == EXPORTED

    tags = env.sandbox.state_snapshot()["candidate_tags"]
    assert [t["name"] for t in tags].count("Rust Fans") == 1
    assert all(sorted(c["tags"]) == ["Backend", "Rust Fans"] for c in env.candidates())


def test_prospect_export_with_pool_and_stage(env: Env) -> None:
    created = env.batch([profile()], kind=TargetKind.PROSPECT, job_id=None, pool_id=s.POOL_ID, stage_id=s.STAGE_2_ID)
    (item_id,) = created.to_enqueue

    assert env.export(item_id) == EXPORTED

    (app,) = only(env)["applications"]
    assert app["prospect"] is True
    assert app["prospect_pool_id"] == s.POOL_ID and app["prospect_pool_stage_id"] == s.STAGE_2_ID
    assert app["prospect_owner_id"] == s.RECRUITER_USER_ID
    assert env.item(item_id).greenhouse_application_id == app["id"]


# --- 3: redelivery ----------------------------------------------------------------------------------


def test_redelivery_of_an_exported_item_does_nothing(env: Env) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    assert env.export(item_id) == EXPORTED
    before_stats, before = env.sandbox.stats()["total_requests"], env.candidates()

    outcome = env.export(item_id)

    assert isinstance(outcome, NotClaimed)
    assert env.sandbox.stats()["total_requests"] == before_stats
    assert env.candidates() == before
    assert env.item(item_id).attempts == 1


# --- 4: unknown create outcomes ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["error_after", "drop_after"])
def test_create_landed_but_answer_lost_is_adopted_not_repeated(env: Env, kind: str) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault(kind, method="POST", path="/v3/candidates")

    first = env.export(item_id)

    assert isinstance(first, RetryLater)
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.status == ItemStatus.QUEUED and item.create_sent_at is not None
    landed = only(env)

    assert env.export(item_id) == EXPORTED

    cand = only(env)
    assert cand["id"] == landed["id"]
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.greenhouse_candidate_id == landed["id"]
    (app,) = cand["applications"]  # the application came with the create; not added twice
    assert item.greenhouse_application_id == app["id"]
    assert len(cand["notes"]) == 1 and len(cand["educations"]) == 1


def test_unknown_outcome_waits_for_visibility_then_adopts(new_env: Callable[..., Env]) -> None:
    env = new_env(sandbox_config={"visibility_delay_s": 60.0})
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault("error_after", method="POST", path="/v3/candidates")

    assert isinstance(env.export(item_id), RetryLater)
    attempts = env.item(item_id).attempts
    creates = env.sandbox.stats()["requests"]["POST /v3/candidates"]

    env.clock.advance(10)
    waiting = env.export(item_id)

    assert isinstance(waiting, RetryLater)
    assert waiting.countdown_s == env.settings.export.reconcile_interval_s
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.status == ItemStatus.QUEUED and item.error_cause == "waiting"
    assert item.attempts == attempts  # waiting is refunded
    assert env.sandbox.stats()["requests"]["POST /v3/candidates"] == creates  # no second create

    env.clock.advance(60)
    assert env.export(item_id) == EXPORTED
    landed = only(env)
    assert env.item(item_id).greenhouse_candidate_id == landed["id"]


def test_create_refused_before_applying_is_created_once_after_the_window(env: Env) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault("error_before", method="POST", path="/v3/candidates")

    assert isinstance(env.export(item_id), RetryLater)
    assert env.candidates() == []
    # a 500 cannot tell "before" from "after": the worker looks up until the sync window passed
    assert isinstance(env.export(item_id), RetryLater)
    assert env.candidates() == []

    env.clock.advance(env.settings.export.reconcile_window_s + 1)
    assert env.export(item_id) == EXPORTED

    cand = only(env)
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.greenhouse_candidate_id == cand["id"]
    assert any("created again" in w for w in item.warnings)


# --- 5: rate limit ----------------------------------------------------------------------------------


def test_rate_limited_export_retries_after_the_announced_wait_without_counting(env: Env) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    env.clock.advance(env.sandbox.config.window_s + 1)  # the connect checks' requests leave the window
    env.sandbox.config.rate_limit = 1

    outcome = env.export(item_id)

    assert isinstance(outcome, RetryLater)
    window = env.sandbox.config.window_s
    assert window - 1 <= outcome.countdown_s <= window + 1  # Retry-After + jitter(0, 1)
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.status == ItemStatus.QUEUED
    assert item.attempts == 0 and item.error_cause == "rate_limited"
    assert env.candidates() == []


# --- 6: permanent errors ----------------------------------------------------------------------------


def test_create_rejected_by_greenhouse_fails_with_the_field_and_releases_the_person(env: Env) -> None:
    (item_id,) = env.batch([profile()], job_id=s.CLOSED_JOB_ID).to_enqueue

    assert env.export(item_id) == FAILED

    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.status == ItemStatus.FAILED
    assert item.error_cause == "invalid"
    assert "job_id" in (item.error or "")
    assert item.create_sent_at is None
    assert env.candidates() == []
    person = people.claim_person(env.engine, env.conn.id, "p-1", 999_999)
    assert person.owner_item_id is None and person.greenhouse_candidate_id is None  # released

    # released: a later batch of the same profile may create the record
    (again,) = env.batch([profile()]).to_enqueue
    assert env.export(again) == EXPORTED
    only(env)


# --- 7: a person already in Greenhouse --------------------------------------------------------------


def test_existing_email_links_an_application_to_the_existing_record(env: Env) -> None:
    prof = profile(emails=[s.EXISTING_EMAIL.upper()])
    (item_id,) = env.batch([prof], job_id=s.OPEN_JOB_2_ID).to_enqueue

    assert env.export(item_id) == EXPORTED

    assert env.candidates() == []
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.linked_existing is True
    assert item.greenhouse_candidate_id == s.EXISTING_CANDIDATE_ID
    assert any(str(s.EXISTING_CANDIDATE_ID) in w for w in item.warnings)
    existing = env.candidate(s.EXISTING_CANDIDATE_ID)
    new = [a for a in existing["applications"] if a["job_id"] == s.OPEN_JOB_2_ID]
    assert len(new) == 1 and item.greenhouse_application_id == new[0]["id"]
    # the person's history is theirs: no educations/employments from our profile, said on the item
    assert existing["educations"] == [] and existing["employments"] == []
    assert any("educations and employments not added" in w for w in item.warnings)
    assert len(existing["notes"]) == 1 and len(existing["applied_tags"]) == len(prof.tags)


def test_existing_email_with_an_application_on_the_job_is_not_applied_twice(env: Env) -> None:
    (item_id,) = env.batch([profile(emails=[s.EXISTING_EMAIL])], job_id=s.OPEN_JOB_ID).to_enqueue

    assert env.export(item_id) == EXPORTED

    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.greenhouse_application_id == s.EXISTING_APPLICATION_ID
    apps = env.candidate(s.EXISTING_CANDIDATE_ID)["applications"]
    assert [a["id"] for a in apps] == [s.EXISTING_APPLICATION_ID]


def set_policy(env: Env, policy: DuplicatePolicy) -> None:
    with Session(env.engine) as session:
        row = session.get(Connection, env.conn.id)
        assert row is not None
        row.duplicate_policy = policy
        session.add(row)
        session.commit()


def test_existing_email_with_skip_policy_ends_skipped(env: Env) -> None:
    set_policy(env, DuplicatePolicy.SKIP)
    (item_id,) = env.batch([profile(emails=[s.EXISTING_EMAIL])], job_id=s.OPEN_JOB_2_ID).to_enqueue
    writes = env.writes()

    assert env.export(item_id) == Finished(ItemStatus.SKIPPED)

    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.status == ItemStatus.SKIPPED
    assert item.error_cause == "duplicate_in_greenhouse"
    assert env.writes() == writes
    assert len(env.candidate(s.EXISTING_CANDIDATE_ID)["applications"]) == 1


def test_existing_email_with_create_policy_makes_a_new_record(env: Env) -> None:
    set_policy(env, DuplicatePolicy.CREATE)
    (item_id,) = env.batch([profile(emails=[s.EXISTING_EMAIL])]).to_enqueue

    assert env.export(item_id) == EXPORTED

    cand = only(env)
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.greenhouse_candidate_id == cand["id"] and not item.linked_existing


# --- unknown outcome without an email -----------------------------------------------------------------


def test_lost_create_of_a_profile_without_email_is_found_by_name_and_details(env: Env) -> None:
    (item_id,) = env.batch([profile(emails=[])]).to_enqueue
    env.sandbox.inject_fault("drop_after", method="POST", path="/v3/candidates")

    assert isinstance(env.export(item_id), RetryLater)
    assert env.export(item_id) == EXPORTED  # listed among the records created around the send

    cand = only(env)  # the one that landed; never a second
    item = env.item(item_id)
    assert item.greenhouse_candidate_id == cand["id"] and item.visible_at is not None


def test_two_records_matching_a_lost_create_equally_go_to_a_human_with_both_ids(env: Env) -> None:
    twins = env.batch([profile("p-a", emails=[]), profile("p-b", emails=[])]).to_enqueue
    assert [env.export(i) for i in twins] == [EXPORTED, EXPORTED]
    (item_id,) = env.batch([profile("p-c", emails=[])]).to_enqueue
    env.sandbox.inject_fault("drop_before", method="POST", path="/v3/candidates")

    assert isinstance(env.export(item_id), RetryLater)
    assert env.export(item_id) == FAILED

    item = env.item(item_id)
    ids = sorted(c["id"] for c in env.candidates())
    assert item.error_cause == "ambiguous_match" and len(ids) == 2
    assert all(str(i) in (item.error or "") for i in ids)


def measured_readback(env: Env, delay_s: float) -> None:
    """Record that Greenhouse needed ``delay_s`` to show a record another item of the connection created."""
    (other,) = env.batch([profile("p-measured")]).to_enqueue
    sent = env.clock.dt() - timedelta(seconds=delay_s + 60)
    with env.engine.begin() as conn:
        conn.execute(
            sa.update(Item)
            .where(col(Item.id) == other)
            .values(create_sent_at=sent, greenhouse_candidate_id=1, visible_at=sent + timedelta(seconds=delay_s))
        )


def test_an_unknown_create_is_looked_for_a_few_times_the_measured_readback_delay(
    new_env: Callable[..., Env],
) -> None:
    env = new_env(reconcile_floor_s=5.0)
    measured_readback(env, 10.0)
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault("error_before", method="POST", path="/v3/candidates")  # nothing landed

    assert isinstance(env.export(item_id), RetryLater)
    waiting = env.export(item_id)
    assert isinstance(waiting, RetryLater)
    assert "3 x the 10 s Greenhouse needed lately" in (env.item(item_id).error or "")
    env.clock.advance(25)
    assert isinstance(env.export(item_id), RetryLater)  # still inside 3 x 10 s
    assert env.candidates() == []

    env.clock.advance(10)
    assert env.export(item_id) == EXPORTED  # not four hours
    only(env)
    assert any("created again" in w for w in env.item(item_id).warnings)


def test_with_nothing_measured_an_unknown_create_waits_the_whole_sync_window(env: Env) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault("error_before", method="POST", path="/v3/candidates")
    assert isinstance(env.export(item_id), RetryLater)
    assert isinstance(env.export(item_id), RetryLater)
    assert "no read-back delay measured" in (env.item(item_id).error or "")


def test_lost_create_with_a_dummy_email_is_adopted_by_that_email(env: Env) -> None:
    (item_id,) = env.batch([profile(emails=[])], dummy_emails=True).to_enqueue
    env.sandbox.inject_fault("drop_after", method="POST", path="/v3/candidates")

    assert isinstance(env.export(item_id), RetryLater)
    assert env.export(item_id) == EXPORTED

    cand = only(env)
    (email,) = cand["email_addresses"]
    assert email["value"].endswith("@seekout.example.com")
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.greenhouse_candidate_id == cand["id"]
    assert "no email; dummy address used" in item.warnings


# --- 8: exporting the same profiles again -----------------------------------------------------------


def test_profiles_already_exported_are_skipped_unless_include_exported(env: Env) -> None:
    profiles = [profile("p-1"), profile("p-2")]
    for item_id in env.batch(profiles).to_enqueue:
        assert env.export(item_id) == EXPORTED
    first = {c["id"] for c in env.candidates()}

    again = env.batch(profiles)
    assert again.to_enqueue == [] and again.skipped == 2
    items = store_batches.batch_items(env.engine, again.batch_id)
    assert {i.status for i in items} == {ItemStatus.SKIPPED}
    assert {i.greenhouse_candidate_id for i in items} == first

    more = env.batch(profiles, job_id=s.OPEN_JOB_2_ID, include_exported=True)
    assert len(more.to_enqueue) == 2
    for item_id in more.to_enqueue:
        assert env.export(item_id) == EXPORTED

    cands = env.candidates()
    assert {c["id"] for c in cands} == first  # still one record per profile
    for cand in cands:
        assert sorted(a["job_id"] for a in cand["applications"]) == [s.OPEN_JOB_ID, s.OPEN_JOB_2_ID]
        # the first export added the profile's parts; the second adds the application only
        assert (len(cand["educations"]), len(cand["employments"]), len(cand["notes"])) == (1, 1, 1)
    for item in store_batches.batch_items(env.engine, more.batch_id):
        assert item.linked_existing is True and item.greenhouse_candidate_id in first


# --- 9: two batches racing on one profile -----------------------------------------------------------


def test_second_item_waits_for_the_holder_then_links_to_its_record(env: Env) -> None:
    (a,) = env.batch([profile()]).to_enqueue
    (b,) = env.batch([profile()], job_id=s.OPEN_JOB_2_ID).to_enqueue
    # A is claimed and holds the create right (it is mid-flight)
    assert store_items.claim_item(env.engine, a, "other-worker", 300) is not None
    people.claim_person(env.engine, env.conn.id, "p-1", a)

    waiting = env.export(b)

    assert isinstance(waiting, RetryLater) and "another export of this profile" in waiting.reason
    item_b = store_items.get_item(env.engine, b)
    assert item_b is not None and item_b.attempts == 0 and item_b.status == ItemStatus.QUEUED
    assert env.candidates() == []

    # A's worker dies; its lease runs out and A is exported on redelivery
    with env.engine.begin() as c:
        c.execute(sa.update(Item).where(col(Item.id) == a).values(lease_until=utcnow()))
    assert env.export(a) == EXPORTED
    assert env.export(b) == EXPORTED

    cand = only(env)
    item_b = store_items.get_item(env.engine, b)
    assert item_b is not None and item_b.greenhouse_candidate_id == cand["id"] and item_b.linked_existing
    assert sorted(x["job_id"] for x in cand["applications"]) == [s.OPEN_JOB_ID, s.OPEN_JOB_2_ID]


def test_item_taking_over_from_a_holder_that_gave_up_mid_create_adopts_its_record(
    new_env: Callable[..., Env],
) -> None:
    env = new_env(max_attempts=1)
    (a,) = env.batch([profile()]).to_enqueue
    (b,) = env.batch([profile()], job_id=s.OPEN_JOB_2_ID).to_enqueue
    env.sandbox.inject_fault("error_after", method="POST", path="/v3/candidates")

    assert env.export(a) == FAILED  # the create landed, the answer was a 500, and A gave up
    landed = only(env)

    assert env.export(b) == EXPORTED

    cand = only(env)
    assert cand["id"] == landed["id"]
    item_b = store_items.get_item(env.engine, b)
    assert item_b is not None and item_b.greenhouse_candidate_id == landed["id"]
    assert sorted(x["job_id"] for x in cand["applications"]) == [s.OPEN_JOB_ID, s.OPEN_JOB_2_ID]


@pytest.mark.parametrize("kind", ["error_after", "drop_after"])
def test_application_added_to_a_linked_record_is_not_repeated_after_a_lost_answer(env: Env, kind: str) -> None:
    (item_id,) = env.batch([profile(emails=[s.EXISTING_EMAIL])], job_id=s.OPEN_JOB_2_ID).to_enqueue
    env.sandbox.inject_fault(kind, method="POST", path="/v3/applications")

    assert isinstance(env.export(item_id), RetryLater)
    assert env.export(item_id) == EXPORTED

    apps = env.candidate(s.EXISTING_CANDIDATE_ID)["applications"]
    new = [x for x in apps if x["job_id"] == s.OPEN_JOB_2_ID]
    assert len(new) == 1
    assert env.item(item_id).greenhouse_application_id == new[0]["id"]


PARTS = [
    ("/v3/candidate_educations", "educations", 1),
    ("/v3/candidate_employments", "employments", 1),
    ("/v3/applied_candidate_tags", "applied_tags", 2),
    ("/v3/notes", "notes", 1),
]


@pytest.mark.parametrize("kind", ["error_after", "drop_after"])
@pytest.mark.parametrize(("path", "key", "expected"), PARTS)
def test_part_whose_write_landed_but_failed_is_not_sent_twice(
    env: Env, kind: str, path: str, key: str, expected: int
) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault(kind, method="POST", path=path)

    assert isinstance(env.export(item_id), RetryLater)
    assert env.export(item_id) == EXPORTED

    cand = only(env)
    assert len(cand[key]) == expected
    assert len(cand["applications"]) == 1 and len(cand["notes"]) == 1
    assert len(cand["educations"]) == 1 and len(cand["employments"]) == 1


@pytest.mark.parametrize(("path", "key", "expected"), PARTS[:3])
def test_part_refused_before_applying_is_sent_again(env: Env, path: str, key: str, expected: int) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault("error_before", method="POST", path=path)

    assert isinstance(env.export(item_id), RetryLater)
    assert env.export(item_id) == EXPORTED

    assert len(only(env)[key]) == expected


# --- 10: connection removed -------------------------------------------------------------------------


def test_disconnect_fails_queued_items_and_export_does_nothing(env: Env) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue

    assert disconnect(env.engine, "acme") == 1

    assert isinstance(env.export(item_id), NotClaimed)
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.status == ItemStatus.FAILED and item.error == "connection removed"
    assert env.candidates() == []


def test_connection_removed_after_claim_fails_the_item(env: Env) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    with Session(env.engine) as session:  # removed without failing items: the race with disconnect
        row = session.get(Connection, env.conn.id)
        assert row is not None
        row.removed_at = utcnow()
        session.add(row)
        session.commit()

    assert env.export(item_id) == FAILED

    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.error == "connection removed" and item.error_cause == "connection_removed"
    assert env.candidates() == []


# --- 11: giving up ----------------------------------------------------------------------------------


def test_gives_up_after_max_attempts(new_env: Callable[..., Env]) -> None:
    env = new_env(max_attempts=2)
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault("error_before", method="POST", path="/v3/candidates", count=10)

    assert isinstance(env.export(item_id), RetryLater)
    env.clock.advance(env.settings.export.reconcile_window_s + 1)  # nothing found: create again
    outcome = env.export(item_id)

    assert outcome == FAILED
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.status == ItemStatus.FAILED
    assert (item.error or "").startswith("gave up after 2 attempts")
    assert item.error_cause == "server_error"
    assert env.candidates() == []
    assert isinstance(env.export(item_id), NotClaimed)


def test_unexpected_error_counts_attempts_then_fails_the_item(
    new_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = new_env(max_attempts=2)
    (item_id,) = env.batch([profile()]).to_enqueue

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr("workers.export.map_profile", broken)

    first = env.export(item_id)
    assert isinstance(first, RetryLater) and first.cause == "internal_error"
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.status == ItemStatus.QUEUED and item.attempts == 1
    assert env.export(item_id) == FAILED
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.error_cause == "internal_error"
    assert item.error == "gave up after 2 attempts: internal error: RuntimeError"


def test_note_rejected_by_greenhouse_is_a_warning_not_a_failure(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.errors import FieldError, InvalidRequestError
    from shared.harvest.client import HarvestClient

    def reject(self: HarvestClient, body: Any) -> Any:  # the sandbox accepts every note we send
        raise InvalidRequestError("Validation error", status=422, method="POST", path="/v3/notes",
                              field_errors=[FieldError("body", "is too long")])  # fmt: skip

    monkeypatch.setattr(HarvestClient, "create_note", reject)
    (item_id,) = env.batch([profile()]).to_enqueue

    assert env.export(item_id) == EXPORTED
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and any(w.startswith("profile note left out") and "body" in w for w in item.warnings)
    assert only(env)["notes"] == []


def test_new_record_creates_a_second_record_for_an_exported_profile(env: Env) -> None:
    (first,) = env.batch([profile("p-1")]).to_enqueue
    assert env.export(first) == EXPORTED
    (again,) = env.batch([profile("p-1")], include_exported=True, new_record=True).to_enqueue

    assert env.export(again) == EXPORTED

    a, b = store_items.get_item(env.engine, first), store_items.get_item(env.engine, again)
    assert a is not None and b is not None and b.linked_existing is False
    assert a.greenhouse_candidate_id != b.greenhouse_candidate_id
    assert {c["id"] for c in env.candidates()} == {a.greenhouse_candidate_id, b.greenhouse_candidate_id}
    # the ledger still points at the first record: a later plain re-export is skipped, not a third record
    assert env.batch([profile("p-1")]).to_enqueue == []


@pytest.mark.parametrize(("path", "key", "expected"), PARTS[:3])
def test_lost_part_of_a_record_greenhouse_still_creates_waits_instead_of_adding_it_again(
    new_env: Callable[..., Env], path: str, key: str, expected: int
) -> None:
    # Children of a record Greenhouse has not made readable read as empty: that is not "not there".
    env = new_env(sandbox_config={"visibility_delay_s": 60.0})
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault("error_after", method="POST", path=path)
    assert isinstance(env.export(item_id), RetryLater)  # the part landed, its answer was lost

    waiting = env.export(item_id)
    assert isinstance(waiting, RetryLater) and "waiting for Greenhouse to show candidate" in waiting.reason
    assert env.item(item_id).status == ItemStatus.QUEUED

    env.clock.advance(61)
    assert env.export(item_id) == EXPORTED
    assert len(only(env)[key]) == expected


def test_re_export_right_after_the_first_waits_for_the_record_to_be_readable(new_env: Callable[..., Env]) -> None:
    env = new_env(sandbox_config={"visibility_delay_s": 60.0})
    (first,) = env.batch([profile(tags=[])]).to_enqueue
    assert env.export(first) == EXPORTED
    (again,) = env.batch([profile(tags=[])], job_id=s.OPEN_JOB_2_ID, include_exported=True).to_enqueue

    assert isinstance(env.export(again), RetryLater)  # not a failure, not a blind second application
    env.clock.advance(61)
    assert env.export(again) == EXPORTED
    assert sorted(a["job_id"] for a in only(env)["applications"]) == [s.OPEN_JOB_ID, s.OPEN_JOB_2_ID]


def test_a_record_that_never_becomes_readable_fails_after_the_sync_window(new_env: Callable[..., Env]) -> None:
    env = new_env(sandbox_config={"visibility_delay_s": 10 * 3600.0})
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault("error_after", method="POST", path="/v3/candidate_educations")
    assert isinstance(env.export(item_id), RetryLater)  # the education's answer was lost
    assert isinstance(env.export(item_id), RetryLater)  # waiting for the record: the wait starts

    env.clock.advance(env.settings.export.reconcile_window_s - 1)
    assert isinstance(env.export(item_id), RetryLater)
    env.clock.advance(2)
    assert env.export(item_id) == FAILED
    item = store_items.get_item(env.engine, item_id)
    assert item is not None and item.error_cause == "not_found" and "not readable" in (item.error or "")


def test_progress_renews_the_lease(new_env: Callable[..., Env]) -> None:
    env = new_env(lease_s=60.0)
    (item_id,) = env.batch([profile()]).to_enqueue
    claimed = store_items.claim_item(env.engine, item_id, env.deps.owner, lease_s=1.0)
    assert claimed is not None and claimed.lease_until is not None
    first_lease = claimed.lease_until

    env.deps.start_run(claimed).save(warnings=["progress"])

    renewed = store_items.get_item(env.engine, item_id)
    assert renewed is not None and renewed.lease_until is not None
    assert (renewed.lease_until - first_lease).total_seconds() > 50


# --- rows stored by the previous version ----------------------------------------------------------------


def stored_parts(env: Env, item_id: int) -> dict[str, Any]:
    """The item's progress JSON exactly as stored in the column ``parts``."""
    with env.engine.connect() as c:
        parts: dict[str, Any] = c.execute(sa.select(col(Item.parts)).where(col(Item.id) == item_id)).scalar_one()
    return parts


def test_an_item_stored_by_the_previous_version_continues_where_it_stopped(env: Env) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault("error_before", method="POST", path="/v3/candidate_employments")
    assert isinstance(env.export(item_id), RetryLater)  # record (with its application) and education added
    (edu,) = only(env)["educations"]
    # The previous version's layout, key for key: what it stored at this point, plus a note sent without answer.
    legacy: dict[str, Any] = {
        "record": "created",
        "educations_sent": ["1"],
        "educations": {"1": edu["id"]},
        "employments_sent": ["1"],
        "note": None,  # null, not absent: sent with an unknown outcome, so never sent again
    }
    assert stored_parts(env, item_id) == {k: v for k, v in legacy.items() if k != "note"}, "the layout is unchanged"
    with env.engine.begin() as c:
        c.execute(sa.update(Item).where(col(Item.id) == item_id).values(parts=legacy))

    progress = env.item(item_id).progress
    assert progress.note_sent is True and progress.note_id is None
    assert progress.educations.done == {1: edu["id"]} and progress.employments.sent == {1}

    assert env.export(item_id) == EXPORTED

    cand = only(env)
    (emp,) = cand["employments"]
    assert len(cand["educations"]) == 1 and len(cand["applications"]) == 1
    assert cand["notes"] == []
    after = stored_parts(env, item_id)
    (resume,) = cand["attachments"]  # a part the previous version did not have: added, once
    expected = {**legacy, "employments": {"1": emp["id"]}, "resume": {"sent": True, "id": resume["id"]}}
    assert after == {**expected, "tags": after["tags"]}
    assert sorted(after["tags"]) == ["Backend", "Rust Fans"]

"""The per-attempt log line's fields (``workers/outcome.py`` ``attempt_fields``), from outcomes the real export
flow builds (sandbox + SQLite, no Celery): the batch, connection and Greenhouse ids, the outcome and its
cause; never the candidate's name or email."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shared.store.models import ItemStatus
from tests.unit.export_fixtures import Env, make_env, profile
from workers.outcome import NO_IDS, Finished, NotClaimed, Parked, RetryLater, attempt_fields, describe

NAME = {"first_name": "Zephyrine", "last_name": "Quillfeather", "emails": ["zephyrine.q@example.org"]}


@pytest.fixture
def env(sqlite_url: str) -> Iterator[Env]:
    e = make_env(sqlite_url)
    yield e
    e.res.close()


def no_pii(fields: dict[str, object], text: str) -> None:
    dump = json.dumps(fields) + text
    for value in ("Zephyrine", "Quillfeather", "zephyrine.q@example.org"):
        assert value not in dump


def test_an_exported_item_s_line_carries_every_id(env: Env) -> None:
    created = env.batch([profile("p-1", **NAME)])
    (item_id,) = created.to_enqueue
    outcome = env.export(item_id)
    assert outcome == Finished(ItemStatus.EXPORTED)  # ids take no part in equality
    item = env.item(item_id)
    assert item.greenhouse_candidate_id and item.greenhouse_application_id
    fields = attempt_fields(item_id, outcome)
    assert fields == {
        "event": "export_attempt",
        "item_id": item_id,
        "batch_id": created.batch_id,
        "connection_id": env.conn.id,
        "greenhouse_candidate_id": item.greenhouse_candidate_id,
        "greenhouse_application_id": item.greenhouse_application_id,
        "outcome": "exported",
        "cause": None,
    }
    text = describe(outcome)
    assert text == (
        f"exported (batch {created.batch_id}, candidate {item.greenhouse_candidate_id}, "
        f"application {item.greenhouse_application_id})"
    )
    no_pii(fields, text)


def test_a_retry_s_line_carries_its_cause_and_wait_never_harvest_s_text(env: Env) -> None:
    (item_id,) = env.batch([profile("p-2", **NAME)]).to_enqueue
    env.sandbox.inject_fault("error_before", method="GET", path="/v3/candidates")  # the email lookup
    outcome = env.export(item_id)
    assert isinstance(outcome, RetryLater)
    fields = attempt_fields(item_id, outcome)
    assert fields["outcome"] == "retry" and fields["cause"] == outcome.cause and fields["cause"]
    assert fields["retry_in_s"] == round(outcome.countdown_s, 1)
    assert fields["batch_id"] == env.item(item_id).batch_id and fields["greenhouse_candidate_id"] is None
    assert outcome.reason not in json.dumps(fields)  # the stored reason may quote Harvest
    no_pii(fields, describe(outcome))


def test_a_failed_item_s_line_carries_the_failure_cause(sqlite_url: str) -> None:
    env = make_env(sqlite_url, max_attempts=1)
    try:
        (item_id,) = env.batch([profile("p-3", **NAME)]).to_enqueue
        env.sandbox.inject_fault("error_before", method="GET", path="/v3/candidates")
        outcome = env.export(item_id)
        assert isinstance(outcome, Finished) and outcome.status == ItemStatus.FAILED
        fields = attempt_fields(item_id, outcome)
        assert fields["outcome"] == "failed" and fields["cause"] == env.item(item_id).error_cause
        assert describe(outcome).startswith(f"failed: {fields['cause']} (batch ")
    finally:
        env.res.close()


def test_outcomes_built_without_the_item_have_no_ids() -> None:
    for outcome, word in ((NotClaimed("held"), "not_claimed"), (Parked("budget"), "parked")):
        fields = attempt_fields(9, outcome)
        assert fields["outcome"] == word and fields["batch_id"] is None and outcome.ids == NO_IDS
    assert describe(NotClaimed("held")) == "not claimed (finished, or held by another worker)"

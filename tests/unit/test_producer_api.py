"""The producer API: bad lines reported while good ones are exported; targets checked before recording;
one message per item, ids only; operator retry of failed items."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from producer import api
from shared.errors import TargetNotAllowedError
from shared.harvest.sandbox import seed as s
from shared.profiles.model import read_profiles_file
from shared.resources import Resources
from shared.store import batches
from tests.unit.export_fixtures import Env, make_env, profile

MIXED = Path(__file__).parents[1] / "data" / "profiles_mixed.jsonl"


@pytest.fixture
def env(sqlite_url: str) -> Env:
    return make_env(sqlite_url)


def drain(env: Env) -> list[Any]:
    """Every message body waiting on the in-memory broker's export queue (and remove them).

    A body is Celery's protocol-2 tuple ``(args, kwargs, embed)``, or a protocol-1 dict with ``"args"``."""
    app = env.res.celery
    out: list[Any] = []
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue("ghexport.export")
        while True:
            try:
                msg = queue.get(block=False)
            except queue.Empty:
                break
            out.append(msg.payload)
            msg.ack()
        queue.close()
    return out


def test_bad_lines_are_reported_and_good_lines_exported(env: Env) -> None:
    read = read_profiles_file(MIXED)
    result = api.export_profiles(
        env.res, connection_name="acme", profiles=read.profiles, rejected=read.errors,
        target=api.ExportTarget.job(s.OPEN_JOB_ID),
    )  # fmt: skip
    good_ids = [p.id for p in read.profiles]
    assert result.enqueued == len(good_ids) and result.skipped == 0
    assert {(e.line, e.field) for e in result.rejected} == {(e.line, e.field) for e in read.errors}
    assert read.errors, "the mixed file has bad lines"
    doc = api.batch_status(env.res, result.batch_id)
    assert doc["rejected"] == [e.as_dict() for e in read.errors]
    assert [it["candidate_id"] for it in doc["items"]] == good_ids

    messages = drain(env)
    assert len(messages) == len(good_ids)
    for body, item in zip(messages, batches.batch_items(env.engine, result.batch_id), strict=True):
        args = body[0] if isinstance(body, list | tuple) else body["args"]
        assert args == [{"v": 1, "item_id": item.id}], "messages carry the item id only"
    for it in batches.batch_items(env.engine, result.batch_id):
        assert it.enqueued_at is not None
        env.export(it.id)
    assert api.batch_status(env.res, result.batch_id)["counts"] == {"exported": len(good_ids)}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (lambda: api.ExportTarget.job(s.CLOSED_JOB_ID), "is not open"),
        (lambda: api.ExportTarget.prospect(s.POOL_ID, s.POOL_2_STAGE_ID), "stage"),
        (lambda: api.ExportTarget.prospect(None, s.STAGE_ID), "--stage needs --pool"),
    ],
)
def test_targets_are_checked_before_anything_is_recorded(
    env: Env, target: Callable[[], api.ExportTarget], message: str
) -> None:
    with pytest.raises(TargetNotAllowedError, match=message):
        api.export_profiles(env.res, connection_name="acme", profiles=[profile("p-9")], target=target())
    assert drain(env) == []


def test_acting_user_must_match_email_exactly(env: Env) -> None:
    from shared.connections.checks import UserMappingError

    with pytest.raises(UserMappingError, match="exactly"):
        api.export_profiles(
            env.res, connection_name="acme", profiles=[profile("p-9")],
            target=api.ExportTarget.job(s.OPEN_JOB_ID), user_email=s.RECRUITER_EMAIL.upper(),
        )  # fmt: skip
    result = api.export_profiles(
        env.res, connection_name="acme", profiles=[profile("p-9")],
        target=api.ExportTarget.job(s.OPEN_JOB_ID), user_email=s.RECRUITER_LOWER_EMAIL,
    )  # fmt: skip
    batch = batches.get_batch(env.engine, result.batch_id)
    assert batch is not None and batch.user_id == s.RECRUITER_LOWER_USER_ID


def test_retry_failed_requeues_only_failed_items(env: Env) -> None:
    result = api.export_profiles(
        env.res, connection_name="acme", profiles=[profile("p-1"), profile("p-2")],
        target=api.ExportTarget.job(s.OPEN_JOB_ID),
    )  # fmt: skip
    first, second = batches.batch_items(env.engine, result.batch_id)
    env.sandbox.inject_fault("error_before", method="POST", path="/v3/candidates", count=1)
    env.deps.settings.export.max_attempts = 1
    env.export(first.id)
    env.export(second.id)
    assert api.batch_status(env.res, result.batch_id)["counts"] == {"failed": 1, "exported": 1}
    drain(env)
    assert api.retry_failed(env.res, result.batch_id).enqueued == 1
    assert [m[0][0]["item_id"] if isinstance(m, list | tuple) else None for m in drain(env)] == [first.id]


def test_a_broker_outage_after_commit_loses_nothing(env: Env) -> None:
    from shared.errors import PublishFailedError
    from shared.queue.celery_app import make_celery

    broker_down = make_celery(env.settings, "redis://127.0.0.1:1/0")  # nothing listens there
    res_broker_down = Resources(
        env.settings, engine=env.engine, http_client=env.http, redis_client=env.res.redis, celery_app=broker_down
    )
    with pytest.raises(PublishFailedError, match="is recorded, but its tasks could not be published") as failed:
        api.export_profiles(
            res_broker_down, connection_name="acme", profiles=[profile("p-1"), profile("p-2")],
            target=api.ExportTarget.job(s.OPEN_JOB_ID),
        )  # fmt: skip
    batch_id = failed.value.batch_id
    items = batches.batch_items(env.engine, batch_id)
    assert [(i.status, i.enqueued_at) for i in items] == [("queued", None), ("queued", None)]

    res_broker_down.close()  # the broker is back: env.res publishes on the in-memory broker
    assert api.republish_lost(env.res, older_than_s=0) == 2
    assert len(drain(env)) == 2
    assert all(i.enqueued_at is not None for i in batches.batch_items(env.engine, batch_id))


def test_the_status_document_holds_plain_strings(env: Env) -> None:
    result = api.export_profiles(
        env.res, connection_name="acme", profiles=[profile("p-1")], target=api.ExportTarget.job(s.OPEN_JOB_ID)
    )
    doc = api.batch_status(env.res, result.batch_id)
    assert doc["counts"] == {"queued": 1} and doc["target"]["kind"] == "job"
    # str itself, not a str enum: what the platform's backend reads and `status --json` prints
    values = [doc["target"]["kind"], *doc["counts"], doc["items"][0]["status"]]
    assert [type(v) for v in values] == [str, str, str]

"""Sync confirmation with real worker processes started as the README starts them (``ghexport worker``,
no extra flag), real Redis and PostgreSQL, and the sandbox over HTTP with delayed visibility: exported items
become ``synced`` by themselves; a record changed behind our back, or removed, ends ``sync_overdue`` with
the reason when its window closes. Short windows and checks stand in for Greenhouse's four hours."""

from __future__ import annotations

import time
from pathlib import Path

from shared.store.models import ItemStatus
from shared.store.records import ItemRecord
from tests.integration.cluster import Cluster, batch_items, cluster, profiles, wait_until_done
from tests.integration.workers_env import broker_db

WINDOW_S = 10.0
CHECK_S = 3.0


def wait_for(what: str, check: object, timeout_s: float) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not seen within {timeout_s:.0f} s: {what}")


def item_of(c: Cluster, batch_id: str, profile_id: str) -> ItemRecord:
    return next(it for it in batch_items(c, batch_id) if it.profile_id == profile_id)


def test_exported_items_are_confirmed_by_the_workers_and_changed_ones_end_overdue(
    redis_url: str, postgres_schema_url: str, tmp_path: Path
) -> None:
    url, client = broker_db(redis_url, 12)
    sent = profiles(12, "sync")
    changed, removed = sent[-1].id, sent[-2].id
    with cluster(
        url,
        postgres_schema_url,
        tmp_path,
        sandbox={"rate_limit": 60, "window_s": 10, "latency_ms": 15, "visibility_delay_s": 3.0},
        sync={"peak_window_s": WINDOW_S, "offpeak_window_s": WINDOW_S, "check_every_s": CHECK_S},
    ) as c:
        c.start_worker()
        batch = c.export(sent)
        # Change two records the moment their items are exported, before their first read-back is due.
        for pid, change in ((changed, "edit"), (removed, "remove")):
            wait_for(f"{pid} exported", lambda pid=pid: item_of(c, batch, pid).status == ItemStatus.EXPORTED, 90)
            cid = item_of(c, batch, pid).greenhouse_candidate_id
            assert cid is not None and item_of(c, batch, pid).sync_checks == 0
            if change == "edit":
                c.sandbox.edit_candidate(cid, {"last_name": "Renamed In Greenhouse"})
            else:
                c.sandbox.remove_candidate(cid)
        doc = wait_until_done(c, batch, timeout_s=90)
        assert doc["counts"].get("failed", 0) == 0, doc["counts"]
        wait_for(
            "every item settled (synced or sync_overdue)",
            lambda: all(it.status in (ItemStatus.SYNCED, ItemStatus.SYNC_OVERDUE) for it in batch_items(c, batch)),
            WINDOW_S + 4 * CHECK_S + 20,
        )
        items = {it.profile_id: it for it in batch_items(c, batch)}
        logs = c.logs()
    client.flushdb()

    synced = [it for pid, it in items.items() if pid not in (changed, removed)]
    assert all(it.status == ItemStatus.SYNCED for it in synced), [
        (it.profile_id, it.status, it.sync_detail) for it in synced
    ]
    for it in synced:
        assert it.exported_at is not None and it.synced_at is not None and it.synced_at > it.exported_at
        assert it.sync_checks >= 1 and it.sync_detail is None
    # visibility is delayed past the first read-back for some: they were read again, then confirmed
    print("read-backs per synced item:", sorted(it.sync_checks for it in synced))

    edited = items[changed]
    assert edited.status == ItemStatus.SYNC_OVERDUE
    assert edited.sync_detail == "last_name differs"
    assert "Renamed" not in logs  # what differs is named, never its value
    gone = items[removed]
    assert gone.status == ItemStatus.SYNC_OVERDUE and gone.sync_detail == "record not readable yet"
    for it in (edited, gone):
        assert it.exported_at is not None and it.updated_at >= it.exported_at
        assert it.sync_checks >= 2  # read inside the window, then once more when it closed

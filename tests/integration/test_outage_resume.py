"""Items waiting out a Greenhouse outage resume when it ends, not at the end of a countdown drawn during it.

Real ``ghexport worker`` processes, PostgreSQL, a Redis server of the test's own and the sandbox over HTTP
(a window, latency and visibility delay unlike the exporter's first guess). Mid-batch, every write answers
503 for two minutes while reads and token mints keep working. The breaker once missed such an outage (each
answered lookup reset its count of failures), so items drew exponential countdowns and spent attempts: with
60 candidates, one drew 122 s five seconds before Greenhouse came back, and the batch ended 117 s after it.
"""

from __future__ import annotations

import time
from pathlib import Path

from shared.settings import BreakerSettings
from shared.store.models import aware
from tests.integration.cluster import Cluster, batch_items, cluster, exported, profiles, tally, wait_until_done
from tests.integration.private_services import PrivateRedis

OUTAGE_S = 120.0
RESUME_WITHIN_S = 30.0
"""The batch ends within this long of Greenhouse's return (the issue's goal)."""
CANDIDATES = 40
SANDBOX = {"rate_limit": 500, "window_s": 10, "latency_ms": 20, "visibility_delay_s": 2.0}
"""50 requests/s: what is left of the batch after the outage (about 250 requests) takes seconds."""


def test_a_write_outage_mid_batch_ends_within_seconds_of_greenhouses_return(
    private_redis: PrivateRedis, postgres_schema_url: str, tmp_path: Path
) -> None:
    """Two minutes of 503 to every write a third of the way through the batch's records: the batch ends within
    30 s of Greenhouse's return, every candidate once, none failed, and only the failures that opened the write
    circuit spent an attempt."""
    sent = profiles(CANDIDATES, "resume")
    with cluster(private_redis.url(0), postgres_schema_url, tmp_path, sandbox=SANDBOX) as c:
        c.start_worker("--concurrency", "8")  # the README's performance setup: the work left after the return is I/O
        batch = c.export(sent)
        deadline = time.monotonic() + 120
        while created(c, batch) < len(sent) // 3:  # records come before any item's parts: creates in flight
            assert time.monotonic() < deadline, "a third of the records were not made in 120 s"
            time.sleep(0.05)
        c.sandbox.outage(OUTAGE_S, writes_only=True)
        outage = c.sandbox.state.outage
        assert outage is not None
        back_at = outage.until_ts  # the sandbox's clock is time.time()
        waiting = len(sent) - exported(c, batch)
        doc = wait_until_done(c, batch, timeout_s=OUTAGE_S + 240)
        result = tally(c, sent, [batch])
        items = batch_items(c, batch)
        stats = c.sandbox.stats()
        logs = c.logs()

    ended_at = max(aware(it.exported_at or it.updated_at).timestamp() for it in items)
    after_s = ended_at - back_at
    spent = sorted((it.attempts, it.id) for it in items if it.attempts != 1)
    print(
        f"{waiting} items waited for the outage; the batch ended {after_s:.1f} s after Greenhouse's return; "
        f"attempts spent: {len(spent)}"
    )
    assert stats["outage"] > 0, "no request met the outage"
    assert waiting > 0 and doc["counts"] == {"exported": len(sent)}, doc["counts"]
    assert result.lost == [] and result.duplicates == [] and result.records == len(sent)
    assert after_s < RESUME_WITHIN_S, f"the batch ended {after_s:.1f} s after Greenhouse's return"
    # only the failures that opened the write circuit count (one attempt each), none once it was open
    assert max(it.attempts for it in items) <= 2 and len(spent) < BreakerSettings().failures, spent
    assert "write circuit open" in logs and "write circuit closed" in logs


def created(system: Cluster, batch_id: str) -> int:
    """Items of the batch whose Greenhouse record exists."""
    return sum(it.greenhouse_candidate_id is not None for it in batch_items(system, batch_id))

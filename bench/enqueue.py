"""Enqueue benchmark: record and enqueue 10,000 profiles, our path beside a naive loop, same machine.

Our path (``producer.api``'s internals, default settings): one transaction with bulk inserts, then every
item parked in its credential's queue in Redis (pipelined), from which the workers' pacers publish them as the
credential's budget allows. Naive baseline: per row, an INSERT committed on its own, then ``delay()`` to the
broker. Both run on the same store and Redis, in one run; the script prints the times and the ratio, then
deletes the rows it recorded (``--database`` may be a shared PostgreSQL).

    .venv/bin/python -m bench.enqueue [--profiles 10000] [--broker redis://127.0.0.1:6379/11]
                                      [--database sqlite:///...]   (default: embedded broker, temp SQLite)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import redis
import sqlalchemy as sa
from pydantic import SecretStr
from sqlmodel import col

from producer.demo import sample_profiles
from shared.profiles.model import Profile
from shared.queue import names
from shared.queue.messages import ExportItemMessage
from shared.resources import Resources
from shared.settings import Settings
from shared.store import batches as store_batches
from shared.store.models import Batch, Connection, Item, ItemStatus


def _saved_id(row_id: int | None) -> int:
    """A row's primary key, which the store assigns on commit."""
    if row_id is None:
        raise RuntimeError("the row has no id: it was not committed")
    return row_id


def _connection(res: Resources) -> int:
    from sqlmodel import Session

    with Session(res.engine) as s:
        conn = Connection(
            name=f"bench-{time.time_ns()}",
            client_id="x",
            user_email="b@example.org",
            user_id=1,
            source_id=1,
            source_name="SeekOut",
        )
        s.add(conn)
        s.commit()
        return _saved_id(conn.id)


def _batch(conn_id: int) -> Batch:
    return Batch(id="", connection_id=conn_id, target_kind="job", job_id=1, user_email="b@example.org", user_id=1)


def ours(res: Resources, conn_id: int, profiles: list[Profile]) -> float:
    res.publish([])  # like naive's app, the limiter and the lazy imports are built before the clock starts
    t0 = time.perf_counter()
    created = store_batches.create_batch(
        res.engine, _batch(conn_id), [store_batches.NewItem(p.id, p.snapshot()) for p in profiles]
    )
    res.publish(created.to_enqueue)
    return time.perf_counter() - t0


def naive(res: Resources, conn_id: int, profiles: list[Profile]) -> float:
    from sqlmodel import Session

    app = res.celery
    task = app.signature(names.EXPORT_ITEM_TASK)
    batch = _batch(conn_id)
    t0 = time.perf_counter()
    with Session(res.engine) as s:
        batch.id = f"naive{time.time_ns()}"[:32]
        s.add(batch)
        s.commit()
        for p in profiles:
            item = Item(
                batch_id=batch.id,
                connection_id=conn_id,
                profile_id=p.id,
                profile=p.snapshot(),
                status=ItemStatus.QUEUED,
            )
            s.add(item)
            s.commit()
            task.delay(ExportItemMessage(item_id=_saved_id(item.id)).to_task_args())
    return time.perf_counter() - t0


def _forget(res: Resources, conn_ids: list[int]) -> None:
    """Delete the connections the bench made, with their batches and items."""
    with res.engine.begin() as conn:
        conn.execute(sa.delete(Item).where(col(Item.connection_id).in_(conn_ids)))
        conn.execute(sa.delete(Batch).where(col(Batch.connection_id).in_(conn_ids)))
        conn.execute(sa.delete(Connection).where(col(Connection.id).in_(conn_ids)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=10_000)
    parser.add_argument("--broker", default="embedded")
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ghexport-bench-") as tmp:
        settings = Settings(
            broker_url=args.broker,
            database_url=args.database or f"sqlite:///{Path(tmp) / 'bench.db'}",
            embedded_dir=str(Path(tmp) / "embedded"),
            secret_key=SecretStr("unused"),
        )
        res = Resources(settings)
        conn_ids: list[int] = []
        try:
            conn_ids.append(_connection(res))
            profiles = sample_profiles(args.profiles, prefix="bench")
            q = (
                redis.Redis(unix_socket_path=res.broker_url.removeprefix("redis+socket://"))
                if res.broker_url.startswith("redis+socket://")
                else redis.Redis.from_url(res.broker_url)
            )
            q.delete(names.EXPORT_QUEUE)
            t_ours = ours(res, conn_ids[0], profiles)
            n_ours = q.zcard("ghx:rl:x:queue")  # parked for the bench connection's credential ("x")
            q.delete(names.EXPORT_QUEUE, *q.scan_iter("ghx:rl:*"))
            conn_ids.append(_connection(res))
            t_naive = naive(res, conn_ids[1], profiles)
            n_naive = q.llen(names.EXPORT_QUEUE)
            q.delete(names.EXPORT_QUEUE)
        finally:
            if conn_ids:
                _forget(res, conn_ids)
            res.close()
            if args.broker == "embedded":
                from shared.queue.embedded import stop_embedded

                stop_embedded(settings.embedded_dir)
    store = "PostgreSQL" if (args.database or "").startswith("postgresql") else "SQLite"
    print(f"record + enqueue {args.profiles} profiles ({store} store, broker {args.broker})")
    print(f"  ours  (bulk insert, one transaction, parked in bulk):         {t_ours:7.2f} s  {n_ours} parked")
    print(f"  naive (commit + delay() per row):                              {t_naive:7.2f} s  {n_naive} messages")
    print(f"  speed-up: {t_naive / t_ours:.1f}x")
    assert n_ours == n_naive == args.profiles, "both paths must enqueue every profile"


if __name__ == "__main__":
    main()

"""``ghexport flower`` as an operator runs it, beside a real worker: what Flower shows carries ids only.

The system: the Harvest sandbox over HTTP with a credential whose secret is fresh and random, a private Redis
(``private_redis``) reached as an ACL user with a password (broker, limiter and caches), a SQLite store, a
fresh ``GHX_SECRET_KEY``; ``ghexport flower`` with basic auth on a free loopback port, then ``ghexport worker``
(prefork, two children); five candidates with distinctive names and emails exported, the first email lookup
answered 500 so one task is retried. Then Flower's HTTP API is read with the credentials (``/api/tasks``,
``/api/task/info/<id>``, ``/api/workers``, ``/api/queues/length``, the broker page) and searched for every
candidate's email, first and last name, the client secret, every access token, the Fernet key, the broker's
password and Flower's own; every process's command line is searched for the two passwords; the worker's log
must be JSON lines with one ``export_attempt`` line per attempt and no candidate data either.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis
from pydantic import SecretStr

from producer import api
from producer.demo import sample_profiles
from shared.connections import service as connections
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from shared.queue import names
from shared.resources import Resources
from shared.store.models import ItemStatus
from tests.integration.private_services import PrivateRedis, free_port
from tests.integration.workers_env import stop_processes, worker_settings

GHEXPORT = str(Path(sys.executable).with_name("ghexport"))
N_PROFILES = 5
WAIT_S = 25.0


def wait_for(what: str, check: Callable[[], bool], logs: Callable[[], str], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{logs()[-4000:]}"
        time.sleep(0.2)


def redis_user(server: PrivateRedis, password: str) -> str:
    """An ACL user ``ghx`` with ``password`` on ``server`` (the default user stays for the fixture); its URL."""
    admin = redis.Redis.from_url(server.url())
    admin.acl_setuser("ghx", enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"], commands=["+@all"])
    admin.close()
    return f"redis://ghx:{password}@127.0.0.1:{server.port}/2"


def profiles() -> list[Any]:
    """Sample profiles with names and emails found nowhere else (so a hit can only be a leak)."""
    return [
        p.model_copy(
            update={
                "first_name": f"Zephyrine{chr(65 + i)}x",
                "last_name": f"Quillfeather{chr(65 + i)}y",
                "emails": [f"zq.flower.{i}@leak-check.example.org"],
            }
        )
        for i, p in enumerate(sample_profiles(N_PROFILES, prefix="flower"))
    ]


def cmdlines() -> str:
    """Every process's command line on this host, as ``ps`` would show them."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return "\n".join(out)


def test_flower_lists_our_tasks_with_ids_only_and_requires_auth(private_redis: PrivateRedis, tmp_path: Path) -> None:
    started = time.monotonic()
    broker_password = f"brk-{secrets.token_urlsafe(16)}"
    flower_password = f"flw-{secrets.token_urlsafe(16)}"
    client_id, client_secret = f"flower-test-{secrets.token_hex(4)}", f"ghx-sec-{secrets.token_urlsafe(32)}"
    broker = redis_user(private_redis, broker_password)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = ("ops", flower_password)
    sent = profiles()

    sandbox = Sandbox(SandboxConfig(rate_limit=10_000, window_s=10))
    sandbox.add_credential(client_id, client_secret, sandbox.state.credentials[seed.CLIENT_ID].scopes)
    processes: list[subprocess.Popen[bytes]] = []
    with SandboxServer(sandbox) as server:
        settings = worker_settings(
            broker, f"sqlite:///{tmp_path}/store.db", server, embedded_dir=tmp_path / "embedded",
            flower_basic_auth=SecretStr(f"ops:{flower_password}"),
            harvest={"quick_retries": 0},  # the scripted 500 reaches the export flow: one task is retried
            export={"retry_backoff_s": 0.5},
        )  # fmt: skip
        fernet_key = settings.secret_key.get_secret_value() if settings.secret_key else ""
        res = Resources(settings)
        connections.connect(
            res.settings, res.engine, name="flower", client_id=client_id, client_secret=SecretStr(client_secret),
            user_email=seed.RECRUITER_EMAIL, **res.harvest_options(),
        )  # fmt: skip
        env = {**os.environ, **settings.to_env()}  # no GHX_* of the caller's (tests/conftest.py)

        def start(name: str, *args: str) -> subprocess.Popen[bytes]:
            with open(tmp_path / f"{name}.log", "wb") as log:
                process = subprocess.Popen(
                    [GHEXPORT, name, *args], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            processes.append(process)
            return process

        def logs() -> str:
            return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(tmp_path.glob("*.log")))

        def get(path: str, **params: Any) -> httpx.Response:
            return httpx.get(base + path, auth=auth, params=params, timeout=10)

        def answers() -> bool:
            try:
                return get("/api/workers").status_code == 200
            except httpx.TransportError:
                return False

        def worker_known() -> bool:
            workers = get("/api/workers", refresh=1).json()
            return any(names.EXPORT_ITEM_TASK in w.get("registered", []) for w in workers.values())

        def tasks() -> dict[str, Any]:
            found: dict[str, Any] = get("/api/tasks").json()
            return found

        try:
            start("flower", "--address", "127.0.0.1", "--port", str(port))
            wait_for("Flower to answer", answers, logs)  # its event receiver is up before its first answer
            start("worker", "--concurrency", "2", "--loglevel", "INFO")
            wait_for("the worker to answer Flower's inspect", worker_known, logs)

            sandbox.inject_fault("error_before", method="GET", path="/v3/candidates", count=1)
            batch = api.export_profiles(
                res, connection_name="flower", profiles=sent, target=api.ExportTarget.job(seed.OPEN_JOB_ID)
            )
            wait_for("the batch", lambda: api.batch_status(res, batch.batch_id)["done"], logs)
            assert api.batch_status(res, batch.batch_id)["counts"] == {ItemStatus.EXPORTED: N_PROFILES}
            wait_for(
                "Flower to see every task succeed",
                lambda: sum(t["state"] == "SUCCESS" for t in tasks().values()) == N_PROFILES,
                lambda: json.dumps(tasks(), indent=1) + logs(),
            )

            # --- what Flower shows, read as an operator with the credentials ------------------------------
            listed = tasks()
            infos = {tid: get(f"/api/task/info/{tid}").json() for tid in listed}
            workers_doc = get("/api/workers", refresh=1).text
            queues = get("/api/queues/length").json()
            broker_page = get("/broker").text
            assert get("/tasks").status_code == 200

            # --- without credentials, or with wrong ones: 401 ---------------------------------------------
            for path in ("/api/tasks", "/api/workers", f"/api/task/info/{next(iter(listed))}", "/", "/tasks"):
                assert httpx.get(base + path, timeout=10).status_code == 401, path
                assert httpx.get(base + path, auth=("ops", "wrong"), timeout=10).status_code == 401, path
            processes_cmdlines = cmdlines()
            with sandbox.state.lock:
                tokens = list(sandbox.state.tokens)
        finally:
            stop_processes(processes, timeout_s=20)
            res.close()

    # --- our tasks, by name, with ids as arguments and statuses as results -------------------------------
    assert len(listed) == N_PROFILES, listed
    assert {t["name"] for t in listed.values()} == {names.EXPORT_ITEM_TASK}
    item_ids = set()
    for info in infos.values():
        assert info["state"] == "SUCCESS" and info["result"] == "'exported'", info
        assert "'item_id': " in info["args"] and info["kwargs"] == "{}", info
        assert info["sent"] and info["received"] and info["worker"], info  # sent events come from the producer
        item_ids.add(info["args"])
    assert len(item_ids) == N_PROFILES
    (retried,) = [i for i in infos.values() if i["retries"]]
    assert retried["exception"] == "RetryCause('server_error')", retried
    assert "Retry in " in retried["traceback"] and "During handling" not in retried["traceback"], retried
    assert {"name": names.EXPORT_QUEUE, "messages": 0} in queues["active_queues"], queues
    assert names.EXPORT_QUEUE in broker_page

    # --- nothing about the candidates, nothing secret --------------------------------------------------
    shown = "\n".join([json.dumps(listed), json.dumps(infos), workers_doc, json.dumps(queues), broker_page])
    flower_log = (tmp_path / "flower.log").read_text(errors="replace")
    needles = {"client secret": client_secret, "Fernet key": fernet_key.rstrip("=")}
    needles |= {"broker password": broker_password, "Flower password": flower_password}
    needles |= {f"access token {i}": t for i, t in enumerate(tokens)}
    for i, p in enumerate(sent):
        needles |= {f"email {i}": p.emails[0], f"first name {i}": p.first_name, f"last name {i}": p.last_name}
    assert len(tokens) >= 2 and all(needles.values()), needles.keys()
    leaks = [f"{label} in {where}" for label, value in needles.items()
             for where, text in (("Flower's API", shown), ("Flower's log", flower_log)) if value in text]  # fmt: skip
    assert leaks == [], leaks
    for label in ("broker password", "Flower password"):
        assert needles[label] not in processes_cmdlines, f"{label} on a command line"
    assert not (tmp_path / "ghexport.db").exists(), "Flower opened a store of its own (it reads the broker only)"

    # --- the worker's log: JSON lines, one export_attempt line per attempt, no candidate data -----------
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")
    lines = [json.loads(line) for line in worker_log.splitlines() if line.startswith("{")]
    attempts = [line for line in lines if line.get("event") == "export_attempt"]
    assert len(attempts) == N_PROFILES + 1, attempts  # five exports, one retry
    assert {a["outcome"] for a in attempts} == {"exported", "retry"}
    for a in attempts:
        assert a["batch_id"] == batch.batch_id and a["connection_id"] and a["task_id"] in listed, a
        if a["outcome"] == "exported":
            assert a["greenhouse_candidate_id"] and a["greenhouse_application_id"], a
    assert any(line["logger"].startswith("celery.") for line in lines), "Celery's own lines are JSON too"
    worker_leaks = [label for label, value in needles.items() if value in worker_log]
    assert worker_leaks == [], worker_leaks
    print(
        f"\nflower test: {len(listed)} tasks, {len(shown):,} chars of Flower's API searched for {len(needles)} "
        f"values; worker log {len(lines)} JSON lines; {time.monotonic() - started:.1f} s"
    )

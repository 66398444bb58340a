"""No secret anywhere: a whole export run as an operator runs it, every log at DEBUG, then every log line,
every Redis command (task messages, limiter state, cached lookups), every stored column but the encrypted
secret, and ``connections --json`` searched for the client secret, every access token and the Fernet key.

The system: the Harvest sandbox over HTTP with a credential whose secret is fresh and random, the real Redis
(database 15, broker and limiter), a fresh PostgreSQL schema, a fresh ``GHX_SECRET_KEY``; ``ghexport connect``,
``ghexport export --wait``, ``ghexport status``, ``ghexport retry`` and ``ghexport connections --json`` as
subprocesses of the installed console script, and a worker started with ``ghexport worker --loglevel DEBUG``.
One profile fails (a scripted 500 on its email lookup with one attempt allowed), ``retry`` exports it.

Every Python process of the run (the CLI commands, the worker, its pool children) loads a ``sitecustomize``
from this test's ``PYTHONPATH`` that sets the root logger to DEBUG with a file handler of its own, and pins
``httpx`` / ``httpcore`` at DEBUG too (stricter than the app, which silences them below WARNING): the log
search sees what an operator's DEBUG configuration could ever show, whatever Celery does with stderr.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from pydantic import SecretStr

from producer.demo import sample_profiles
from shared.connections.crypto import decrypt_secret, generate_key
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from shared.queue import names
from tests.integration.workers_env import broker_db, stop_processes

GHEXPORT = str(Path(sys.executable).with_name("ghexport"))
BROKER_DB = 15
ENCRYPTED_COLUMN = ("connections", "client_secret_encrypted")
N_PROFILES = 3
LOG_DIR_VAR = "GHX_SECRETS_TEST_LOG_DIR"  # read by the sitecustomize below (Settings ignores unknown GHX_*)

SITECUSTOMIZE = '''\
"""Test-only: every Python process of the secrets test logs everything at DEBUG into a file of its own."""
import logging
import os

_dir = os.environ.get("GHX_SECRETS_TEST_LOG_DIR")
if _dir:
    _handler = logging.FileHandler(os.path.join(_dir, f"{os.getpid()}.log"), encoding="utf-8")
    _handler.setLevel(logging.DEBUG)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(_handler)
    logging.getLogger().setLevel(logging.DEBUG)
    logging.getLogger()._rudimentary_setup = True  # Celery adds its own handler too (the worker's stderr)
    for _name in ("httpx", "httpcore"):
        _logger = logging.getLogger(_name)
        _logger.setLevel(logging.DEBUG)
        _logger.setLevel = lambda level: None  # pinned: the app's own setLevel(WARNING) is ignored
'''


# --- what the run wrote ---------------------------------------------------------------------------------


@dataclass
class Corpus:
    """Named texts to search; ``add`` keeps them apart so a hit names where it was found."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, text: str) -> None:
        self.texts[name] = self.texts.get(name, "") + text + "\n"

    def size(self, prefix: str = "") -> int:
        return sum(len(t) for n, t in self.texts.items() if n.startswith(prefix))


class RedisMonitor(threading.Thread):
    """Every command the Redis server executes on database ``db`` (MONITOR), raw lines, until a marker."""

    def __init__(self, url: str, db: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.db = db
        self.marker = f"secrets-test-end-{secrets.token_hex(8)}"
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._monitor = self.client.monitor()

    def run(self) -> None:
        prefix = re.compile(r"^\S+ \[(\d+) ")
        try:
            with self._monitor as m:
                self.ready.set()
                while True:
                    raw = m.connection.read_response()
                    line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                    if self.marker in line:
                        return
                    found = prefix.match(line)
                    if found and int(found.group(1)) == self.db:
                        self.lines.append(line)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc
            self.ready.set()

    def abandon(self) -> None:
        """Best effort after a failed run: end the thread, keep the run's own error."""
        with suppress(Exception):
            self.client.echo(self.marker)
            self.join(timeout=5)
            self.client.close()

    def stop(self) -> list[str]:
        """Send the marker, wait for the thread to read everything before it, return the lines."""
        self.client.echo(self.marker)
        self.join(timeout=30)
        assert not self.is_alive(), "the monitor did not see its end marker"
        assert self.error is None, self.error
        self.client.close()
        return self.lines


_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b", '"': b'"', "\\": b"\\"}
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


def monitor_args(line: str) -> list[str]:
    """The arguments of one MONITOR line, with Redis's escapes (``\\"``, ``\\xNN``...) undone."""
    out = []
    for arg in _ARG.findall(line.split("] ", 1)[-1]):
        buf = bytearray()
        i = 0
        while i < len(arg):
            if arg[i] == "\\" and i + 1 < len(arg):
                if arg[i + 1] == "x" and i + 3 < len(arg):
                    buf += bytes([int(arg[i + 2 : i + 4], 16)])
                    i += 4
                    continue
                buf += _ESCAPES.get(arg[i + 1], arg[i + 1].encode())
                i += 2
                continue
            buf += arg[i].encode()
            i += 1
        out.append(buf.decode("utf-8", "replace"))
    return out


def b64_decodings(text: str) -> list[str]:
    """Every run of base64 (either alphabet) in ``text`` of 16+ characters, decoded (kombu's bodies...)."""
    out = []
    for run in _B64_RUN.findall(text):
        padded = run.rstrip("=") + "=" * (-len(run.rstrip("=")) % 4)
        for altchars in (b"+/", b"-_"):
            with suppress(binascii.Error, ValueError):
                out.append(base64.b64decode(padded, altchars=altchars, validate=False).decode("utf-8", "replace"))
    return out


def task_bodies(args: list[str]) -> list[dict[str, Any]]:
    """The decoded bodies of the export-task messages among one command's arguments (kombu's envelope)."""
    bodies = []
    for arg in args:
        if not arg.startswith("{") or '"body"' not in arg:
            continue
        try:
            envelope = json.loads(arg)
        except ValueError:
            continue
        if isinstance(envelope, dict) and envelope.get("headers", {}).get("task") == names.EXPORT_ITEM_TASK:
            bodies.append({"id": envelope["headers"].get("id"), "body": base64.b64decode(envelope["body"]).decode()})
    return bodies


def table_texts(database_url: str) -> dict[str, tuple[int, str]]:
    """Every table of the store: (rows, every column but the encrypted secret, as text)."""
    engine = sa.create_engine(database_url)
    out: dict[str, tuple[int, str]] = {}
    try:
        inspector = sa.inspect(engine)
        with engine.connect() as conn:
            for table in inspector.get_table_names():
                cols = [c["name"] for c in inspector.get_columns(table) if (table, c["name"]) != ENCRYPTED_COLUMN]
                select = ", ".join(f'CAST("{c}" AS TEXT)' for c in cols)
                rows = conn.execute(sa.text(f'SELECT {select} FROM "{table}"')).all()
                text = "\n".join(" | ".join("" if v is None else str(v) for v in row) for row in rows)
                out[table] = (len(rows), " | ".join(cols) + "\n" + text)
    finally:
        engine.dispose()
    return out


def encrypted_secrets(database_url: str) -> list[str]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.text("SELECT client_secret_encrypted FROM connections"))]
    finally:
        engine.dispose()


# --- what must never appear ---------------------------------------------------------------------------


def needles(client_id: str, client_secret: str, tokens: list[str], fernet_key: str) -> dict[str, str]:
    """Each secret and its encoded variants, by a label naming it (never the value) for the report."""

    def b64_forms(label: str, raw: bytes) -> dict[str, str]:
        std, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
        return {f"{label} (base64)": std.rstrip("="), f"{label} (urlsafe base64)": url.rstrip("=")}

    out = {"client secret": client_secret}
    out |= b64_forms("client secret", client_secret.encode())
    out |= b64_forms("Basic client_id:secret", f"{client_id}:{client_secret}".encode())
    for i, token in enumerate(tokens):
        out[f"access token {i}"] = token
        out |= b64_forms(f"access token {i}", token.encode())
    raw_key = base64.urlsafe_b64decode(fernet_key)
    out["Fernet key"] = fernet_key.rstrip("=")
    out["Fernet key (standard alphabet)"] = base64.b64encode(raw_key).decode().rstrip("=")
    out |= b64_forms("Fernet key text", fernet_key.encode())
    for part, raw in (("signing", raw_key[:16]), ("encryption", raw_key[16:])):
        out |= b64_forms(f"Fernet {part} key", raw)
        out[f"Fernet {part} key (hex)"] = raw.hex()
    return out


def find_leaks(corpus: Corpus, secrets_: dict[str, str]) -> list[str]:
    hits = []
    for where, text in corpus.texts.items():
        lowered = text.lower()
        for label, value in secrets_.items():
            if value in text or (label.endswith("(hex)") and value in lowered):
                hits.append(f"{label} in {where}")
    return hits


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class Run:
    env: dict[str, str]
    cwd: Path
    corpus: Corpus
    commands: int = 0

    def ghexport(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [GHEXPORT, *args], env={**self.env, **(extra_env or {})}, cwd=self.cwd, capture_output=True,
            text=True, timeout=90,
        )  # fmt: skip
        self.commands += 1
        label = f"ghexport {args[0]} #{self.commands}"
        self.corpus.add(f"{label} stdout", r.stdout)
        self.corpus.add(f"{label} stderr", r.stderr)
        assert r.returncode == 0, f"{label} exited {r.returncode}: {r.stderr[-2000:]}"
        return r


@contextmanager
def worker(env: dict[str, str], cwd: Path) -> Iterator[Path]:
    """``ghexport worker --loglevel DEBUG`` (one prefork child: items run one after another), its
    stdout and stderr in a file; stopped with SIGTERM (SIGKILL to its group if it hangs)."""
    log = cwd / "worker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [GHEXPORT, "worker", "--loglevel", "DEBUG", "--concurrency", "1"], env=env, cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield log
    finally:
        stop_processes([process], timeout_s=20)


def wait_until_done(run: Run, batch_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        doc: dict[str, Any] = json.loads(run.ghexport("status", batch_id, "--json").stdout)
        if doc["done"]:
            return doc
        assert time.monotonic() < deadline, f"batch {batch_id} did not finish: {doc['counts']}"
        time.sleep(0.5)


@pytest.fixture
def broker(redis_url: str) -> Iterator[str]:
    url, client = broker_db(redis_url, BROKER_DB)  # flushed
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def test_no_secret_in_logs_messages_store_or_cli_output(broker: str, postgres_schema_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    client_id = f"secrets-test-{secrets.token_hex(4)}"
    client_secret = f"ghx-sec-{secrets.token_urlsafe(32)}"
    fernet_key = generate_key()
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    profiles_file = tmp_path / "profiles.jsonl"
    profiles_file.write_text(
        "".join(json.dumps(p.model_dump(mode="json")) + "\n" for p in sample_profiles(N_PROFILES, prefix="sec"))
    )

    sandbox = Sandbox(SandboxConfig(rate_limit=1000, window_s=10))
    sandbox.add_credential(client_id, client_secret, sandbox.state.credentials[seed.CLIENT_ID].scopes)
    corpus = Corpus()
    monitor = RedisMonitor(broker, BROKER_DB)
    monitor.start()
    assert monitor.ready.wait(10) and monitor.error is None, monitor.error
    try:
        with SandboxServer(sandbox) as server:
            env = {
                **os.environ,  # no GHX_* in tests (tests/conftest.py)
                "PYTHONPATH": os.pathsep.join(p for p in (str(site_dir), os.environ.get("PYTHONPATH")) if p),
                LOG_DIR_VAR: str(log_dir),
                "GHX_BROKER_URL": broker,
                "GHX_REDIS_URL": broker,
                "GHX_DATABASE_URL": postgres_schema_url,
                "GHX_HARVEST_URL": server.harvest_url,
                "GHX_HARVEST_TOKEN_URL": server.token_url,
                "GHX_SECRET_KEY": fernet_key,
                "GHX_EMBEDDED_DIR": str(tmp_path / "embedded"),
                "GHX_LIMITER__REQUESTS": "1000",
                "GHX_LIMITER__WINDOW_S": "10",
                "GHX_HARVEST__QUICK_RETRIES": "0",  # the scripted 500 reaches the export flow at once
                "GHX_EXPORT__MAX_ATTEMPTS": "1",  # ... which fails the item on its first transient error
            }
            run = Run(env, tmp_path, corpus)

            # connect, the secret from the environment as the README advises
            run.ghexport(
                "connect", "--name", "acme", "--client-id", client_id, "--user-email", seed.RECRUITER_EMAIL,
                "--json", extra_env={"GHX_CLIENT_SECRET": client_secret},
            )  # fmt: skip
            with worker(env, tmp_path) as worker_log:
                # export: the first item's email lookup gets a 500 and, with one attempt allowed, fails
                sandbox.inject_fault("error_before", method="GET", path="/v3/candidates", count=1)
                r = run.ghexport(
                    "export", "--connection", "acme", "--file", str(profiles_file), "--job", str(seed.OPEN_JOB_ID),
                    "--wait", "--json",
                )  # fmt: skip
                batch_id = json.loads(r.stdout)["batch_id"]
                doc = wait_until_done(run, batch_id)
                assert doc["counts"] == {"exported": N_PROFILES - 1, "failed": 1}, doc["counts"]
                # retry: the failed item is enqueued again and exported
                r = run.ghexport("retry", batch_id, "--json")
                assert json.loads(r.stdout)["enqueued"] == 1
                doc = wait_until_done(run, batch_id)
                assert doc["counts"] == {"exported": N_PROFILES}, doc["counts"]
            listing = run.ghexport("connections", "--json").stdout
            with sandbox.state.lock:
                tokens = list(sandbox.state.tokens)
        # control: a canary hidden the way kombu hides a task's arguments (base64 body in a JSON envelope) must
        # be found by the same pipeline, in the decoded form only
        canary = f"canary-{secrets.token_urlsafe(24)}"
        with redis.Redis.from_url(broker) as client:
            body = base64.b64encode(json.dumps([[{"canary": canary}], {}, {}]).encode()).decode()
            client.lpush("secrets-test-canary", json.dumps({"body": body, "headers": {"task": "canary"}}))
    except BaseException:
        monitor.abandon()
        raise
    monitor_lines = monitor.stop()

    # --- gather what the run wrote ---------------------------------------------------------------------
    corpus.add("connections --json", listing)
    worker_text = worker_log.read_text(errors="replace")
    corpus.add("worker stdout/stderr", worker_text)
    log_files = sorted(log_dir.glob("*.log"))
    log_lines = 0
    for f in log_files:
        text = f.read_text(errors="replace")
        log_lines += text.count("\n")
        corpus.add(f"DEBUG log of process {f.stem}", text)
    all_logs = "".join(corpus.texts[n] for n in corpus.texts if n.startswith("DEBUG log"))

    task_messages: dict[str, str] = {}
    decoded = 0
    verbs: Counter[str] = Counter()
    for i, line in enumerate(monitor_lines):
        args = monitor_args(line)
        verbs[args[0].upper() if args else "?"] += 1
        corpus.add("redis MONITOR (raw)", line)
        corpus.add("redis MONITOR (unescaped)", " ".join(args))
        decodings = b64_decodings(" ".join(args))
        decoded += len(decodings)
        corpus.add("redis MONITOR (base64 decoded)", "\n".join(decodings))
        for t in task_bodies(args):
            task_messages[t["id"] or f"line {i}"] = t["body"]
    for body in task_messages.values():
        corpus.add("export task bodies", body)

    tables = table_texts(postgres_schema_url)
    for table, (_, text) in tables.items():
        corpus.add(f"store table {table}", text)

    # --- the search is not vacuous -----------------------------------------------------------------------
    connections_doc = json.loads(listing)["connections"]
    assert [c["client_id"] for c in connections_doc] == [client_id]
    assert re.search(r"\bDEBUG\b", worker_text), "the worker logged at DEBUG"
    assert " DEBUG httpcore" in all_logs, "HTTP traffic was logged at DEBUG"
    assert " ghexport.worker: item " in all_logs, "the worker's own log lines were captured"
    assert len(tokens) >= 3, tokens  # connect, the export command, the worker's reader and writer
    assert len(task_messages) >= N_PROFILES + 1, len(task_messages)  # every item, and the retry
    assert all('"item_id"' in b for b in task_messages.values()), task_messages
    assert verbs["SET"] and verbs["EVALSHA"], verbs  # cached lookups and the limiter's state were seen too
    assert tables["connections"][0] == 1 and tables["items"][0] == N_PROFILES and tables["batches"][0] == 1
    stored = encrypted_secrets(postgres_schema_url)
    assert [decrypt_secret(s, SecretStr(fernet_key)).get_secret_value() for s in stored] == [client_secret]

    searched = needles(client_id, client_secret, tokens, fernet_key)
    tables_rows = ", ".join(f"{t} {n}" for t, (n, _) in sorted(tables.items()))
    print(
        "\n".join(
            [
                f"\nsecrets test: {len(searched)} forms of {len(tokens)} access tokens, the client secret and the "
                f"Fernet key (raw, base64, urlsafe base64, hex of the key halves) searched in {len(corpus.texts)} "
                f"texts, {corpus.size():,} chars:",
                f"  logs: {len(log_files)} processes' DEBUG logs, {log_lines:,} lines, {corpus.size('DEBUG log'):,} "
                f"chars; worker stdout/stderr {len(worker_text):,} chars; stdout/stderr of {run.commands} ghexport "
                f"commands, {corpus.size('ghexport '):,} chars",
                f"  redis db {BROKER_DB}: {len(monitor_lines):,} commands ({corpus.size('redis MONITOR (raw)'):,} "
                f"chars), {len(task_messages)} export task messages, {decoded:,} base64 runs decoded; most frequent: "
                + ", ".join(f"{v} {n}" for v, n in verbs.most_common(10)),
                f"  store rows: {tables_rows} (every column but {'.'.join(ENCRYPTED_COLUMN)})",
                f"  connections --json: {len(listing)} chars",
                f"  run time {time.monotonic() - started:.1f} s",
            ]
        )
    )
    assert find_leaks(corpus, {"canary": canary}) == ["canary in redis MONITOR (base64 decoded)"]
    leaks = find_leaks(corpus, searched)
    assert leaks == [], "secrets leaked:\n" + "\n".join(leaks)

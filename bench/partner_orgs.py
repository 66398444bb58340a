"""Two customer organizations of ONE partner client: each gets its own full rate limit, side by side with one alone.

    .venv/bin/python -m bench.partner_orgs [--quick] [--candidates 300] [--limit 50] [--window 10]
        [--latency-ms 50] [--workers 2] [--concurrency 8] [--pool P] [--settle S] [--poll 0.25]
        [--redis-url URL] [--log-dir DIR] [--json-out FILE]

Claim measured (docs/design.md, "A limit per organization"): Greenhouse counts the rate limit per customer
account, and one partner client id serves every customer, so the limiter of a partner connection is keyed
``client_id@organization_id`` (``ConnectionRecord.limit_key``). Goal: two organizations of the same partner
exporting ``--candidates`` (300) each at the same time each use >= 0.9 of their own limit, with 0 x 429.

Two scenarios in one run, each on a fresh system as :mod:`bench.customers` starts it (:mod:`bench.harness`):
the sandbox as a subprocess (``ghexport sandbox --json --port 0 --rate-limit LIMIT --window W --latency-ms L``),
a fresh PostgreSQL database (``ghx_partner_<pid>_<n>``, dropped after), Redis database 13 by default (flushed
before each scenario; the harness's, shared with ``bench.throughput`` and ``bench.customers``, which are not run
at the same time; no test uses it), and ``--workers`` x ``ghexport worker --concurrency C [--pool P]`` (the README's
performance setup: 2 x ``--concurrency 8``):

- (a) ONE organization of the partner client exports N candidates alone;
- (b) TWO organizations of the same partner client (same client id and secret) export N candidates each, at
  the same time, through the same worker processes.

Each organization is made with ``POST /_sandbox/organizations`` (its own seeded records, its own limit of
``--limit`` requests per ``--window`` s for partner tokens). Its connection is a partner consent in the bench's
process, as a platform backend does it: :func:`producer.api.begin_partner_consent` (the sandbox's seeded partner
client, whose registered redirect URI is ``seed.PARTNER_REDIRECT_URI``; user ``seed.RECRUITER_EMAIL``), the
customer's consent posted to the authorize URL as the organization's Site Admin with a service account (the
form the sandbox's consent page posts: ``Sandbox.consent`` over HTTP), then the redirect's ``code`` and
``state`` given to :func:`shared.connections.partner.complete_partner_consent` with the process's Harvest
options (its limiter waiting up to 120 s inline, as ``bench.customers``' connect: the ~28 checks of a connect
fit a limit of 30 or more without it). Then every batch is recorded and parked with
:func:`producer.api.export_profiles` (prospects, ``producer.demo.sample_profiles``, a prefix per organization),
the bench waits ``--settle`` (window + 1 s: no window still holds the connects' requests) and only then starts
the workers, so every organization starts within one pacer tick.

The figure, per organization (``bench.customers``' definition, per ``client_id@org_id`` key of the sandbox's
``/_sandbox/stats`` ``credentials``, polled every ``--poll`` s from the workers' start):

- first_i: its first accepted request of the export (a rise between two polls, placed between them);
- T0 = max over the scenario's organizations of (first_i + window): each is past its first window;
- last_i: its last accepted request (the sandbox's exact ``last_accepted_at``) once its batch finished;
  T1 = min of last_i (the first organization out of work; the end of the observation, "cut", if none finished);
- accepted / allowed = (its accepted count at T1 - at T0) / (limit x (T1 - T0) / window), goal >= 0.9.

Also per organization: 429s during the export (and within [T0, T1]), when its batch ended after the workers
started (latest ``updated_at`` of its items), items exported, accepted requests per item, and the candidate
records at the sandbox (``GET /_sandbox/state?org_id=``, by each profile's unique LinkedIn link): records made,
duplicates (profiles with more than one record; must be 0), and records of its profiles in another organization
(must be 0). Then a line comparing each organization of (b) to (a), the summed accepted rate of (b) over (a)'s
(two budgets: about 2x), and the goal lines. ``--quick``: 120 candidates (about 7 minutes; 300: about 15).
Exit status 0 when both scenarios finished with every record made once and the goals met, 1 otherwise, 130 on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qsl, urlsplit

from pydantic import SecretStr

from bench import customers as cu
from bench import harness as h
from producer import api
from producer.demo import sample_profiles
from shared.connections import partner
from shared.connections.crypto import generate_key
from shared.harvest.limiter import RedisRateLimiter
from shared.harvest.sandbox import seed
from shared.resources import Resources
from shared.settings import Settings

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
GOAL = 0.9
FIRST_ORG_ID = 4_800_001
"""Organizations of the bench (the sandbox's default one, ``seed.ORG_ID``, is left alone)."""
CONNECT_INLINE_WAIT_S = 120.0
TIMEOUT_FACTOR = 4.0
"""The observation gives up after this many times the planned time at the full limit (+ 300 s)."""
COST = 7
"""Requests per candidate, to plan the timeout (lookup, create, education, employment, tag, note, resume)."""


@dataclass(frozen=True)
class Config:
    candidates: int
    limit: int
    window_s: float
    latency_ms: float
    workers: int
    concurrency: int
    pool: str | None
    settle_s: float
    poll_s: float
    stall_s: float
    services: cu.Services
    log_dir: Path
    json_out: Path | None
    quick: bool


@dataclass(frozen=True)
class Org:
    """One customer organization of the partner, with its connection of the same name."""

    org_id: int
    name: str

    @property
    def key(self) -> str:
        """Its budget at the sandbox and its limiter key here: ``client_id@org_id``."""
        return f"{seed.PARTNER_CLIENT_ID}@{self.org_id}"

    @property
    def prefix(self) -> str:
        return f"partner-{self.name}"


@dataclass
class OrgFigures:
    """One organization over its scenario (module docstring)."""

    name: str
    org_id: int
    key: str
    candidates: int
    limit_key: str | None = None
    """The connection's ``limit_key`` as the store has it (must be ``key``)."""
    batch_id: str | None = None
    finished: int = 0
    exported: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    done: bool = False
    batch_end_s: float | None = None
    first_at: float | None = None
    last_at: float | None = None
    accepted_steady: float | None = None
    allowed_steady: float | None = None
    utilisation: float | None = None
    rate_limited: int = 0
    rate_limited_steady: float | None = None
    accepted_export: int | None = None
    accepted_per_item: float | None = None
    records: int | None = None
    duplicates: int | None = None
    elsewhere: int | None = None
    """Records of this organization's profiles found in another organization of the scenario."""


@dataclass
class ScenarioRun:
    """One scenario's figures."""

    label: str
    orgs: list[OrgFigures]
    run_dir: str
    connect_s: float | None = None
    export_s: float | None = None
    done: bool = False
    gave_up: str | None = None
    error: str | None = None
    t0: float | None = None
    """Seconds after the workers were started, as ``t1``."""
    t1: float | None = None
    t1_source: str | None = None
    steady_s: float | None = None
    worker_cpu_per_1000: float | None = None
    oauth: dict[str, int] = field(default_factory=dict)
    uptime_before: str | None = None
    uptime_after: str | None = None
    notes: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        """Finished, every record made once in its own organization, the connection keyed by its organization."""
        return (
            self.done
            and not self.error
            and all(
                f.records == f.candidates and f.duplicates == 0 and f.elsewhere == 0 and f.limit_key == f.key
                for f in self.orgs
            )
        )


def log(msg: str) -> None:
    """Progress on stderr (the results go to stdout)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


# --- the system -----------------------------------------------------------------------------------------


def settings_for(sysm: h.System) -> Settings:
    """:func:`bench.customers.settings_for` plus the partner OAuth endpoints (the workers get them too)."""
    g = sysm.ghx
    return cu.settings_for(sysm).model_copy(
        update={
            "harvest_authorize_url": g["GHX_HARVEST_AUTHORIZE_URL"],
            "harvest_introspect_url": g["GHX_HARVEST_INTROSPECT_URL"],
        }
    )


def add_organization(sandbox: h.SandboxProcess, org: Org, *, rate_limit: int, window_s: float) -> None:
    """``POST /_sandbox/organizations``: the organization with its own seeded records, limit and window."""
    body = {"org_id": org.org_id, "name": f"Bench {org.name}", "rate_limit": rate_limit, "window_s": window_s}
    r = sandbox.http.post(f"{sandbox.harvest_url}/_sandbox/organizations", json=body)
    if r.status_code != 201:
        raise h.HarnessError(f"sandbox refused organization {org.org_id}: {r.status_code} {r.text}")


def consent(sandbox: h.SandboxProcess, authorize_url: str, org_id: int) -> dict[str, str]:
    """The customer's consent: the form of the sandbox's consent page posted to ``authorize_url`` as the
    organization's Site Admin with a service account (what ``Sandbox.consent`` posts); the redirect's query."""
    form = {
        "organization_id": str(org_id),
        "user_id": str(seed.ADMIN_USER_ID),
        "consent_as": "service_account",
        "decision": "allow",
    }
    r = sandbox.http.post(authorize_url, data=form)
    if r.status_code != 302:
        raise h.HarnessError(f"the consent of organization {org_id} was not redirected: {r.status_code} {r.text[:300]}")
    params = dict(parse_qsl(urlsplit(r.headers["location"]).query))
    if "code" not in params:
        raise h.HarnessError(f"the consent of organization {org_id} was refused: {params}")
    return params


def connect(res: Resources, sandbox: h.SandboxProcess, org: Org) -> str:
    """A partner connection of ``org`` named ``org.name``, begun, consented and completed; its ``limit_key``."""
    begun = api.begin_partner_consent(
        res, name=org.name, client_id=seed.PARTNER_CLIENT_ID, client_secret=SecretStr(seed.PARTNER_CLIENT_SECRET),
        user_email=seed.RECRUITER_EMAIL, redirect_uri=seed.PARTNER_REDIRECT_URI,
    )  # fmt: skip
    options = res.harvest_options()
    options["limiter"] = RedisRateLimiter(
        res.redis, res.settings.limiter.model_copy(update={"max_inline_wait_s": CONNECT_INLINE_WAIT_S})
    )
    params = consent(sandbox, begun.authorize_url, org.org_id)
    done = partner.complete_partner_consent(res.settings, res.engine, params, holds=res.holds, **options)
    return done.connection.limit_key


def records_by_link(sandbox: h.SandboxProcess, org_id: int) -> Counter[str]:
    """Candidate records of one organization by LinkedIn link (``GET /_sandbox/state?org_id=``)."""
    r = sandbox.http.get(f"{sandbox.harvest_url}/_sandbox/state", params={"org_id": org_id})
    r.raise_for_status()
    links: Counter[str] = Counter()
    for cand in r.json().get("candidates", []):
        for link in cand.get("social_media_addresses", []):
            links[str(link.get("value"))] += 1
    return links


# --- one scenario ---------------------------------------------------------------------------------------


def run_scenario(cfg: Config, label: str, orgs: Sequence[Org], *, run_dir: Path, db_name: str) -> ScenarioRun:
    """Connect every organization, record and park its batch, settle, start the workers, observe to the end."""
    figs = [OrgFigures(o.name, o.org_id, o.key, cfg.candidates) for o in orgs]
    run = ScenarioRun(label, figs, str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    profiles = {o.name: sample_profiles(cfg.candidates, prefix=o.prefix) for o in orgs}
    try:
        with ExitStack() as stack:
            h.flush_redis(cfg.services.redis_url)
            db_url = stack.enter_context(cfg.services.fresh_database(db_name))
            sandbox = stack.enter_context(
                h.sandbox_process(
                    run_dir, rate_limit=cfg.limit, window_s=cfg.window_s, latency_ms=cfg.latency_ms,
                    env=h.clean_env({}),
                )
            )  # fmt: skip
            for o in orgs:
                add_organization(sandbox, o, rate_limit=cfg.limit, window_s=cfg.window_s)
            oauth_urls = {
                "GHX_HARVEST_AUTHORIZE_URL": f"{sandbox.harvest_url}/authorize",
                "GHX_HARVEST_INTROSPECT_URL": f"{sandbox.harvest_url}/introspect",
            }
            sysm = h.System(run_dir, cfg.services.redis_url, db_url, sandbox, generate_key(), overrides=oauth_urls)
            res = stack.enter_context(Resources(settings_for(sysm)))
            run.uptime_before = h.uptime_line()
            t = time.monotonic()
            for o, f in zip(orgs, figs, strict=True):
                f.limit_key = connect(res, sandbox, o)
            run.connect_s = time.monotonic() - t
            log(f"{label}: {len(orgs)} partner connection(s) in {run.connect_s:.1f}s: {[f.limit_key for f in figs]}")
            t = time.monotonic()
            for o, f in zip(orgs, figs, strict=True):
                f.batch_id = api.export_profiles(
                    res, connection_name=o.name, profiles=profiles[o.name], target=api.ExportTarget.prospect()
                ).batch_id
            run.export_s = time.monotonic() - t
            log(f"{label}: recorded and parked in {run.export_s:.1f}s; settling {cfg.settle_s:g}s")
            time.sleep(cfg.settle_s)
            poller = stack.enter_context(h.CredentialPoller(sandbox, cfg.poll_s))
            before = sandbox.stats()
            started = time.time()
            log(f"{label}: starting {cfg.workers} x ghexport worker --concurrency {cfg.concurrency}")
            with h.running_workers(
                sysm, count=cfg.workers, concurrency=cfg.concurrency, pool=cfg.pool,
                hostname="w{n}@%h" if cfg.workers > 1 else None,
            ) as workers:  # fmt: skip
                poller.watch("worker", *(p.pgid for p in workers.processes))
                observed_until = observe(run, cfg, res, workers, started, label)
                time.sleep(max(1.0, 4 * cfg.poll_s))  # let the poll see the last answers
            after = sandbox.stats()
            poller.stop()
            if poller.error is not None:
                raise h.HarnessError(f"the sandbox's stats could not be read: {poller.error!r}")
            run.uptime_after = h.uptime_line()
            figures(run, cfg, poller, before, after, started, observed_until)
            links = {o.name: records_by_link(sandbox, o.org_id) for o in orgs}
            for o, f in zip(orgs, figs, strict=True):
                mine = [p.social_media[0] for p in profiles[o.name]]
                f.records = sum(1 for link in mine if links[o.name][link])
                f.duplicates = sum(1 for link in mine if links[o.name][link] > 1)
                f.elsewhere = sum(links[other][link] for other in links if other != o.name for link in mine)
            with suppress(Exception):  # counters beside the figures; they stand without them
                oauth = sandbox.http.get(f"{sandbox.harvest_url}/_sandbox/oauth").json()
                run.oauth = {k: int(v) for k, v in oauth.items() if isinstance(v, int)}
    except Exception as exc:  # one failed scenario must not lose the other's figures; Ctrl-C still unwinds
        run.error = f"{type(exc).__name__}: {exc}"
        log(f"{label}: FAILED: {run.error}")
    return run


def observe(run: ScenarioRun, cfg: Config, res: Resources, workers: h.Workers, started: float, label: str) -> float:
    """Poll the store until every batch finished, the time limit or a stall; returns when it ended (wall time)."""
    plan_s = cfg.candidates * COST * cfg.window_s / cfg.limit
    limit_s = plan_s * TIMEOUT_FACTOR + 300.0
    by_batch = {f.batch_id: f for f in run.orgs if f.batch_id is not None}
    last_change, last_seen, last_log = time.monotonic(), None, time.monotonic()
    while True:
        progress, records = cu.batches_progress(res.engine, list(by_batch))
        for batch_id, (counts, latest) in progress.items():
            f = by_batch[batch_id]
            f.counts = dict(counts)
            f.finished = h.finished(counts)
            f.exported = counts.get("exported", 0)
            f.done = f.finished == f.candidates
            f.batch_end_s = latest - started if (f.done and latest is not None) else None
        now = time.monotonic()
        seen = (tuple(f.finished for f in run.orgs), records)
        if seen != last_seen:
            last_change, last_seen = now, seen
        if all(f.done for f in run.orgs):
            run.done = True
            return time.time()
        if time.time() - started > limit_s or now - last_change > cfg.stall_s:
            run.gave_up = "timeout" if time.time() - started > limit_s else "stalled"
            run.notes.append(f"{run.gave_up}: " + "; ".join(cu.unfinished_items(res.engine, list(by_batch))))
            return time.time()
        if now - last_log >= 30:
            last_log = now
            log(f"{label}: " + ", ".join(f"{f.name} {f.finished}/{f.candidates}" for f in run.orgs) + " finished")
        workers.check_alive()
        time.sleep(1.0)


def figures(
    run: ScenarioRun,
    cfg: Config,
    poller: h.CredentialPoller,
    before: h.Stats,
    after: h.Stats,
    started: float,
    observed_until: float,
) -> None:
    """The steady interval and each organization's figures over it (module docstring)."""

    def accepted_of(key: str) -> Callable[[h.CredentialSample], int]:
        return lambda s: s.accepted.get(key, 0)

    def limited_of(key: str) -> Callable[[h.CredentialSample], int]:
        return lambda s: s.rate_limited.get(key, 0)

    for f in run.orgs:
        f.first_at = poller.first_rise(accepted_of(f.key), after=started)
        if f.done:
            f.last_at = h.credential_stat(after, f.key, "last_accepted_at")
        f.rate_limited = int(
            (h.credential_stat(after, f.key, "rate_limited") or 0)
            - (h.credential_stat(before, f.key, "rate_limited") or 0)
        )
        a1, a0 = h.credential_stat(after, f.key, "accepted"), h.credential_stat(before, f.key, "accepted") or 0.0
        f.accepted_export = int(a1 - a0) if a1 is not None else None
        f.accepted_per_item = cu.ratio(f.accepted_export, f.candidates) if f.done else None
    if any(f.first_at is None for f in run.orgs):
        run.error = run.error or "an organization sent no request of the export: " + ", ".join(
            f.name for f in run.orgs if f.first_at is None
        )
        return
    t0 = max((f.first_at or 0.0) + cfg.window_s for f in run.orgs)
    out_of_work = [(f.last_at, f.name) for f in run.orgs if f.last_at is not None]
    if out_of_work:
        t1, who = min(out_of_work)
        run.t1_source = f"{who}'s last request" + (" (first out of work)" if len(run.orgs) > 1 else "")
    else:
        t1, run.t1_source = observed_until, "observation cut (no batch finished)"
    run.t0, run.t1 = t0 - started, t1 - started
    if t1 <= t0:
        run.error = run.error or f"empty steady interval: T0 {run.t0:.1f}s >= T1 {run.t1:.1f}s"
        return
    run.steady_s = t1 - t0
    total = 0.0
    for f in run.orgs:
        f.accepted_steady = (poller.at(accepted_of(f.key), t1) or 0.0) - (poller.at(accepted_of(f.key), t0) or 0.0)
        f.allowed_steady = cfg.limit * (t1 - t0) / cfg.window_s
        f.utilisation = cu.ratio(f.accepted_steady, f.allowed_steady)
        f.rate_limited_steady = (poller.at(limited_of(f.key), t1) or 0.0) - (poller.at(limited_of(f.key), t0) or 0.0)
        total += f.accepted_steady

    def worker_cpu(s: h.CredentialSample) -> float | None:
        return s.cpu.get("worker")

    w0, w1 = poller.at(worker_cpu, t0), poller.at(worker_cpu, t1)
    if w0 is not None and w1 is not None:
        run.worker_cpu_per_1000 = cu.ratio(1000.0 * (w1 - w0), total)


# --- output ---------------------------------------------------------------------------------------------

fmt = cu.fmt


def table(cfg: Config, alone: ScenarioRun, together: ScenarioRun) -> str:
    """Each organization of both scenarios in a column, the comparison and the goal lines."""
    cols = [(alone, f) for f in alone.orgs] + [(together, f) for f in together.orgs]
    out = [
        "",
        f"Partner organizations: {cfg.candidates} candidates per organization (prospects), each organization "
        f"{cfg.limit} requests per {cfg.window_s:g} s of its own, latency {cfg.latency_ms:g} ms, "
        f"{cfg.workers} x ghexport worker --concurrency {cfg.concurrency}"
        + (f" --pool {cfg.pool}" if cfg.pool else ""),
    ]
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, cells: list[str]) -> None:
        rows.append((name, cells))

    def scen(r: ScenarioRun) -> str:
        return "(a) alone" if r is alone else "(b) together"

    row("", [f"{scen(r)}: {f.name}" for r, f in cols])
    row("organization; limit key", [f"{f.org_id}; {f.limit_key or '-'}" for _, f in cols])
    row("connect / record + park all, s", [f"{fmt(r.connect_s, '.1f')} / {fmt(r.export_s, '.1f')}" for r, _ in cols])
    row("items exported / candidates", [
        f"{f.exported}/{f.candidates}" + ("" if f.exported == f.candidates else f" {f.counts}") for _, f in cols
    ])  # fmt: skip
    row("steady T0..T1 s after worker start", [
        f"{fmt(r.t0, '.1f')}..{fmt(r.t1, '.1f')} ({fmt(r.steady_s, '.0f')} s)" for r, _ in cols
    ])  # fmt: skip
    row(f"ACCEPTED / ALLOWED in [T0,T1] (>= {GOAL})", [fmt(f.utilisation) for _, f in cols])
    row("  accepted / allowed requests", [
        f"{fmt(f.accepted_steady, '.0f')} / {fmt(f.allowed_steady, '.0f')}" for _, f in cols
    ])  # fmt: skip
    row("429s in the export (in [T0,T1])", [f"{f.rate_limited} ({fmt(f.rate_limited_steady, '.0f')})" for _, f in cols])
    row("batch end after worker start, s", [fmt(f.batch_end_s, ".0f") for _, f in cols])
    row("records / duplicates / in other org", [
        f"{fmt(f.records, 'd')} / {fmt(f.duplicates, 'd')} / {fmt(f.elsewhere, 'd')}" for _, f in cols
    ])  # fmt: skip
    row("accepted requests per item", [fmt(f.accepted_per_item) for _, f in cols])
    row("worker CPU s per 1000 accepted req", [fmt(r.worker_cpu_per_1000, ".1f") for r, _ in cols])
    width = max(len(name) for name, _ in rows) + 4
    colw = max(18, *(len(c) + 2 for _, cells in rows for c in cells))
    for name, cells in rows:
        out.append(("  " + name).ljust(width) + "".join(c.ljust(colw) for c in cells))
    out += comparison(alone, together)
    for r in (alone, together):
        tag = scen(r)
        out.append(f"  {tag}: T1 is {r.t1_source or '-'}; logs {r.run_dir}")
        if r.oauth:
            out.append(f"  {tag}: partner OAuth: " + ", ".join(f"{k} {v}" for k, v in sorted(r.oauth.items()) if v))
        out.append(f"  {tag}: uptime before: {r.uptime_before or '-'}")
        out.append(f"  {tag}: uptime after:  {r.uptime_after or '-'}")
        out += [f"  {tag}: NOTE {n}" for n in r.notes]
        if r.error:
            out.append(f"  {tag}: ERROR {r.error}")
    return "\n".join(out)


def comparison(alone: ScenarioRun, together: ScenarioRun) -> list[str]:
    """(b) per organization against (a), the summed rate, and the goal lines."""
    a = alone.orgs[0] if alone.orgs else None
    if a is None:
        return []
    per = "; ".join(
        f"{f.name} {fmt(f.utilisation)} / {fmt(a.utilisation)} = {fmt(cu.ratio(f.utilisation, a.utilisation))}x,"
        f" batch end {fmt(f.batch_end_s, '.0f')} s / {fmt(a.batch_end_s, '.0f')} s"
        f" = {fmt(cu.ratio(f.batch_end_s, a.batch_end_s))}x"
        for f in together.orgs
    )
    rate_a = cu.ratio(a.accepted_steady, alone.steady_s)
    rate_b = cu.ratio(sum(f.accepted_steady or 0.0 for f in together.orgs), together.steady_s)
    utils = [f.utilisation for f in together.orgs]
    met_util = bool(utils) and all(u is not None and u >= GOAL for u in utils)
    rl = sum(f.rate_limited for f in together.orgs)
    return [
        f"  (b) per organization vs (a) alone: {per}",
        f"  (b) summed accepted rate in [T0,T1] / (a)'s: {fmt(rate_b, '.2f')} / {fmt(rate_a, '.2f')} req/s"
        f" = {fmt(cu.ratio(rate_b, rate_a))}x (two budgets: about 2)",
        f"  goal: each organization in (b) >= {GOAL} of its own limit: {'MET' if met_util else 'NOT MET'}"
        f" ({', '.join(f'{f.name} {fmt(f.utilisation)}' for f in together.orgs)})",
        f"  goal: 0 x 429 in (b): {'MET' if rl == 0 and together.orgs else 'NOT MET'} ({rl};"
        f" (a) alone: {sum(f.rate_limited for f in alone.orgs)})",
    ]


def goals_met(together: ScenarioRun) -> bool:
    return bool(together.orgs) and all(
        f.utilisation is not None and f.utilisation >= GOAL and f.rate_limited == 0 for f in together.orgs
    )


# --- command line ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m bench.partner_orgs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--candidates", type=int, default=None, help="profiles per organization (300; --quick 120)")
    p.add_argument("--limit", type=int, default=50, help="requests per window of each organization")
    p.add_argument("--window", type=float, default=10.0, help="rate-limit window, s")
    p.add_argument("--latency-ms", type=float, default=50.0, help="latency the sandbox adds to every request")
    p.add_argument("--workers", type=int, default=2, help="ghexport worker processes")
    p.add_argument("--concurrency", type=int, default=8, help="--concurrency of each worker")
    p.add_argument("--pool", default=None, help="--pool of each worker (prefork, threads, solo)")
    p.add_argument("--settle", type=float, default=None, help="wait after connect, s (default: window + 1)")
    p.add_argument("--poll", type=float, default=0.25, help="sandbox stats poll interval, s")
    p.add_argument("--stall", type=float, default=180.0, help="give up after this long with no progress, s")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis database the bench owns (flushed)")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default=None, help="PostgreSQL user (default: postgres, else root)")
    p.add_argument("--log-dir", type=Path, default=None, help="where runs keep their logs (default: a temp dir)")
    p.add_argument("--json-out", type=Path, default=None, help="also write every figure as JSON here")
    p.add_argument("--quick", action="store_true", help="120 candidates per organization")
    a = p.parse_args(argv)
    candidates = a.candidates if a.candidates is not None else (120 if a.quick else 300)
    if candidates < 1 or a.limit < 1 or a.window <= 0 or a.workers < 1 or a.concurrency < 1:
        p.error("--candidates, --limit, --workers and --concurrency take at least 1, --window a positive number")
    log_dir = a.log_dir or Path(tempfile.mkdtemp(prefix="ghx-partner-orgs-"))
    users = (a.pg_user,) if a.pg_user else ("postgres", "root")
    return Config(
        candidates=candidates,
        limit=a.limit,
        window_s=a.window,
        latency_ms=a.latency_ms,
        workers=a.workers,
        concurrency=a.concurrency,
        pool=a.pool,
        settle_s=a.settle if a.settle is not None else a.window + 1.0,
        poll_s=a.poll,
        stall_s=a.stall,
        services=cu.Services(a.redis_url, a.pg_host, a.pg_port, users),
        log_dir=log_dir.resolve(),
        json_out=a.json_out,
        quick=a.quick,
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: unwind like Ctrl-C, so every scenario stops what it started


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    log(f"logs in {cfg.log_dir}")
    began = time.monotonic()
    pid = os.getpid()
    one = [Org(FIRST_ORG_ID, "org-1")]
    two = [Org(FIRST_ORG_ID, "org-1"), Org(FIRST_ORG_ID + 1, "org-2")]
    try:
        alone = run_scenario(cfg, "(a) one organization", one, run_dir=cfg.log_dir / "a-alone",
                             db_name=f"ghx_partner_{pid}_1")  # fmt: skip
        together = run_scenario(cfg, "(b) two organizations", two, run_dir=cfg.log_dir / "b-together",
                                db_name=f"ghx_partner_{pid}_2")  # fmt: skip
    except KeyboardInterrupt:
        log("interrupted: every process started was stopped")
        return 130
    print(table(cfg, alone, together), flush=True)
    print(f"  took {time.monotonic() - began:.0f} s", flush=True)
    if cfg.json_out is not None:
        cfg.json_out.write_text(json.dumps({"alone": asdict(alone), "together": asdict(together)}, indent=2))
    return 0 if alone.ok() and together.ok() and goals_met(together) else 1


if __name__ == "__main__":
    sys.exit(main())

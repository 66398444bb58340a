"""Resumes through real workers: ``ghexport worker`` processes started as the README starts them, a Redis of
the test's own (``private_redis``), PostgreSQL (a schema of the test's own) and the Harvest sandbox over HTTP.
Nobody runs ``recover`` and no worker has ``--beat``.

- Profiles in Latin script with accents, in Arabic and in Chinese each get a resume PDF on their application:
  read back over HTTP, it opens, and its text holds the name, every employer and every school.
- A worker host killed after its upload landed and before it saved the attachment's id: the next worker
  finds the upload on the application by its file name and adopts it, never uploading a second one.

The sandbox runs unlike the defaults (its own limit and window, a visibility delay, latency), so hidden
assumptions show. Arabic names here have no lam followed by an alef or an alef maksura: fpdf2 draws those as
one ligature, which PDFium extracts in visual order, so the text read back would not hold the name.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pypdfium2 as pdfium

from shared.profiles.model import Profile
from shared.profiles.resume import resume_filename
from shared.store.models import ItemStatus
from tests.integration.cluster import Cluster, batch_items, cluster
from tests.integration.private_services import PrivateRedis
from tests.pdf_text import pdf_text, squeezed

ATTACHMENTS = "POST /v3/attachments"
LAM_ALEF = re.compile("\u0644[\u0627\u0623\u0625\u0622\u0649]")
"""Lam followed by alef (plain, hamza above or below, madda) or alef maksura: a ligature in the PDF."""

PROFILES = [
    Profile.model_validate(p)
    for p in (
        {
            "id": "resume-en",
            "first_name": "José",
            "last_name": "Müller-Øberg",
            "emails": ["jose.muller@example.org"],
            "company": "Société Générale",
            "title": "Ingénieur logiciel",
            "location": "Genève, CH",
            "skills": ["Python", "Kafka"],
            "employments": [
                {"company_name": "Société Générale", "title": "Ingénieur logiciel", "start_date": "2019-03-01"},
                {
                    "company_name": "Nestlé Öresund",
                    "title": "Analyste",
                    "start_date": "2015-01-01",
                    "end_date": "2019-02-01",
                },
            ],
            "educations": [
                {"school": "École Polytechnique", "degree": "Master", "start_date": "2010-09-01"},
                {"school": "Universität Zürich", "discipline": "Informatik"},
            ],
            "social_media": ["https://www.linkedin.com/in/resume-en"],
        },
        {
            "id": "resume-ar",
            "first_name": "مريم",
            "last_name": "حداد",
            "emails": ["maryam.haddad@example.org"],
            "company": "شركة نور",
            "title": "مهندسة برمجيات",
            "location": "دمشق",
            "employments": [{"company_name": "شركة نور", "title": "مهندسة برمجيات", "start_date": "2018-01-01"}],
            "educations": [{"school": "جامعة دمشق", "degree": "بكالوريوس"}],
            "social_media": ["https://www.linkedin.com/in/resume-ar"],
        },
        {
            "id": "resume-zh",
            "first_name": "伟",
            "last_name": "张",
            "emails": ["zhang.wei@example.org"],
            "company": "阿里巴巴",
            "title": "工程师",
            "location": "杭州",
            "employments": [{"company_name": "阿里巴巴", "title": "工程师", "start_date": "2017-01-01"}],
            "educations": [{"school": "北京大学", "degree": "学士"}],
            "social_media": ["https://www.linkedin.com/in/resume-zh"],
        },
    )
]


def expected_texts(profile: Profile) -> list[str]:
    """What the resume's text must hold: the name, every employer, every school."""
    return [
        profile.first_name,
        profile.last_name,
        *(e.company_name for e in profile.employments if e.company_name),
        *(e.school for e in profile.educations if e.school),
    ]


def admin(system: Cluster) -> httpx.Client:
    """A client on the sandbox's HTTP server (its ``/_sandbox/`` routes need no token)."""
    return httpx.Client(base_url=system.res.settings.harvest_url, timeout=10.0)


def attachments_by_candidate(http: httpx.Client) -> dict[int, list[dict[str, Any]]]:
    """Greenhouse candidate id -> the attachments on its applications, from ``GET /_sandbox/state``."""
    state = http.get("/_sandbox/state")
    state.raise_for_status()
    return {int(c["id"]): list(c["attachments"]) for c in state.json()["candidates"]}


def stats(http: httpx.Client) -> dict[str, Any]:
    got = http.get("/_sandbox/stats")
    got.raise_for_status()
    return dict(got.json())


def since(before: dict[str, Any], after: dict[str, Any], route: str) -> dict[str, int]:
    """Answers to ``route`` by status between two ``/_sandbox/stats`` readings (``connect`` probes each scope
    with a request Greenhouse refuses, ``POST /v3/attachments`` among them: those are not the export's)."""
    old, new = before["requests"].get(route, {}), after["requests"].get(route, {})
    return {status: n - old.get(status, 0) for status, n in new.items() if n > old.get(status, 0)}


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, system: Cluster) -> None:
    """Poll ``check`` until it holds; fail at once, with the logs, when the newest worker exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        code = system.workers[-1].poll()
        assert code is None, f"the worker exited with {code} while waiting for {what}\n{system.logs()[-6000:]}"
        time.sleep(0.1)
    raise AssertionError(f"not seen within {timeout_s:.0f} s: {what}\n{system.logs()[-6000:]}")


def wait_until_done(system: Cluster, batch_id: str, timeout_s: float) -> dict[str, Any]:
    """The batch's status document once no item is ``queued`` or ``sending``."""
    last: list[dict[str, Any]] = []

    def done() -> bool:
        doc = system.status(batch_id)
        if doc is not None:
            last[:] = [doc]
        return doc is not None and bool(doc["done"])

    wait_for(f"batch {batch_id} done", done, timeout_s, system)
    return last[0]


def test_each_profile_gets_a_readable_resume_in_its_script(
    private_redis: PrivateRedis, postgres_schema_url: str, tmp_path: Path
) -> None:
    """Three profiles (accented Latin, Arabic, Chinese) exported by a real worker: each application holds one
    resume PDF, read back over HTTP, that PDFium opens and whose text names the person, employers, schools."""
    for profile in PROFILES:
        for text in expected_texts(profile):
            assert not LAM_ALEF.search(text), f"{text!r}: a lam-alef ligature extracts in visual order"
    with cluster(
        private_redis.url(0), postgres_schema_url, tmp_path,
        sandbox={"rate_limit": 45, "window_s": 8, "visibility_delay_s": 1.5, "latency_ms": 10, "seed": 5},
        export={"reconcile_interval_s": 2.0, "recovery_interval_s": 2.0},
    ) as c, admin(c) as http:  # fmt: skip
        before = stats(http)
        c.start_worker("--concurrency", "2")
        batch = c.export(PROFILES)
        doc = wait_until_done(c, batch, timeout_s=45)
        on_candidates = attachments_by_candidate(http)
        after = stats(http)
        files: dict[int, httpx.Response] = {}
        for attachments in on_candidates.values():
            for attachment in attachments:
                files[attachment["id"]] = http.get(f"/_sandbox/attachments/{attachment['id']}/content")
        logs = c.logs()

    assert doc["counts"] == {"exported": len(PROFILES)}, [(i["candidate_id"], i["error"]) for i in doc["items"]]
    # the upload's body was accepted as it is (the sandbox refuses members v3 does not know)
    assert [bad for bad in after["invalid"][len(before["invalid"]) :] if bad["route"] == ATTACHMENTS] == []
    assert since(before, after, ATTACHMENTS) == {"201": len(PROFILES)}, after["requests"]
    items = {item["candidate_id"]: item for item in doc["items"]}
    for profile in PROFILES:
        item = items[profile.id]
        attachments = on_candidates[item["greenhouse_candidate_id"]]
        assert len(attachments) == 1, (profile.id, attachments)
        attachment = attachments[0]
        assert attachment["application_id"] == item["greenhouse_application_id"]
        assert attachment["type"] == "resume" and attachment["content_type"] == "application/pdf"
        assert attachment["filename"] == resume_filename(profile)
        assert item["sent"]["resume"] == attachment["id"], (profile.id, item["sent"])
        assert [e for e in item["left_out"] if e["part"] == "resume"] == [], item["left_out"]

        got = files[attachment["id"]]
        assert got.status_code == 200, got.text
        pdf = got.content
        assert pdf.startswith(b"%PDF-"), pdf[:16]
        assert attachment["size"] == len(pdf)
        document = pdfium.PdfDocument(pdf)  # PDFium opens it
        try:
            assert len(document) >= 1
        finally:
            document.close()
        text = squeezed(pdf_text(pdf))
        missing = [t for t in expected_texts(profile) if squeezed(t) not in text]
        assert missing == [], f"{profile.id}: {missing} not in the resume's text {text[:400]!r}\n{logs[-4000:]}"


def test_a_worker_killed_after_the_upload_landed_does_not_upload_it_twice(
    private_redis: PrivateRedis, postgres_schema_url: str, tmp_path: Path
) -> None:
    """The sandbox applies the upload, then holds its answer for 20 s; the worker host is killed in between
    (the item ``sending``, its resume marked sent with no id). A new worker takes the item after its lease,
    finds the upload on the application by its file name and keeps it: one upload, its id saved."""
    profile = PROFILES[0]
    with cluster(
        private_redis.url(0), postgres_schema_url, tmp_path,
        sandbox={"rate_limit": 35, "window_s": 12, "visibility_delay_s": 1.0, "latency_ms": 5, "slow_s": 20.0},
        export={
            "lease_s": 4.0, "heartbeat_s": 1.0, "recovery_interval_s": 1.0, "reconcile_interval_s": 1.0,
        },
    ) as c, admin(c) as http:  # fmt: skip
        injected = http.post(
            "/_sandbox/faults", json={"kind": "slow_after", "method": "POST", "path": "/v3/attachments", "count": 1}
        )
        assert injected.status_code == 201, injected.text
        before = stats(http)
        c.start_worker("--concurrency", "1")
        batch = c.export([profile])

        def landed() -> bool:
            return any(attachments_by_candidate(http).values())

        wait_for("the upload landed in the sandbox", landed, 40, c)
        [held] = batch_items(c, batch)
        assert held.status is ItemStatus.SENDING, held.status  # the worker is still waiting for the answer
        assert held.progress.resume_sent and held.progress.resume_id is None, held.progress
        killed = c.kill_worker(0)
        assert len(killed) >= 2, killed  # the supervisor and its Celery pool

        c.start_worker("--concurrency", "1")
        doc = wait_until_done(c, batch, timeout_s=40)
        [item] = batch_items(c, batch)
        after = stats(http)
        on_candidates = attachments_by_candidate(http)
        logs = c.logs()

    assert doc["counts"] == {"exported": 1}, (doc["items"], logs[-6000:])
    assert item.status is ItemStatus.EXPORTED
    assert item.publications >= 2, item.publications  # recovery published it again after the lease
    assert after["faults"] == {"slow_after": 1}, after["faults"]
    assert since(before, after, ATTACHMENTS) == {"201": 1}, after["requests"]  # one upload, never a second
    attachments = on_candidates[item.greenhouse_candidate_id or 0]
    assert len(attachments) == 1, attachments
    assert attachments[0]["application_id"] == item.greenhouse_application_id
    assert attachments[0]["type"] == "resume" and attachments[0]["filename"] == resume_filename(profile)
    assert item.progress.resume_id == attachments[0]["id"], item.progress
    assert doc["items"][0]["sent"]["resume"] == attachments[0]["id"]
    # the rerun looked the upload up instead of sending it again
    assert since(before, after, "GET /v3/attachments").get("200", 0) >= 1, after["requests"]

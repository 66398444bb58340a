"""``ghexport demo``: the whole system on the embedded default, on a machine with no Redis and no
Greenhouse: the local Harvest sandbox, the embedded redis-server as broker, a Celery worker process, a
connection, and a sample project exported half as prospects into a pool stage, half to an open job."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from shared.profiles.model import Profile
from shared.resources import Resources
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.harvest.sandbox import Sandbox, SandboxServer

FIRST_NAMES = ["Ada", "Zoë", "José", "Łukasz", "美咲", "Ngozi", "Søren", "Aarav", "Fatima", "محمد", "Chloé", "Ivan"]
LAST_NAMES = ["Quinn", "Müller", "García", "Kowalski", "佐藤", "Okafor", "Øster", "Sharma", "Haddad", "علي", "Dubois"]
COMPANIES = ["Northwind", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries"]
TITLES = ["Staff Engineer", "Data Scientist", "Backend Engineer", "Engineering Manager", "SRE"]
SCHOOLS = ["Siena College", "Massachusetts Institute of Technology", "University of Oxford", "Unknown Polytechnic"]
DEGREES = ["Bachelor's Degree", "Master's Degree", "PhD"]
DISCIPLINES = ["Computer Science", "Mathematics", "Physics"]
SKILLS = ["Python", "Distributed systems", "Go", "Kubernetes", "SQL", "Machine learning"]


def sample_profiles(n: int, *, existing_email: str | None = None, prefix: str = "demo") -> list[Profile]:
    """``n`` generated profiles (names in several scripts); the third reuses ``existing_email`` to show a
    person already in Greenhouse getting an application instead of a second record."""
    out = []
    for i in range(n):
        first, last = FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[(i * 7) % len(LAST_NAMES)]
        email = existing_email if (i == 2 and existing_email) else f"{prefix}.{i}@example.org"
        out.append(
            Profile.model_validate(
                {
                    "id": f"{prefix}-{i:05d}",
                    "first_name": first,
                    "last_name": last,
                    "emails": [email],
                    "phones": [f"+1 415 555 {i % 10000:04d}"],
                    "company": COMPANIES[i % len(COMPANIES)],
                    "title": TITLES[i % len(TITLES)],
                    "location": "Berlin, DE",
                    "skills": SKILLS[i % 3 : i % 3 + 3],
                    "social_media": [f"https://www.linkedin.com/in/{prefix}-{i}"],
                    "urls": [f"https://{prefix}{i}.example.org"],
                    "employments": [
                        {
                            "company_name": COMPANIES[i % len(COMPANIES)],
                            "title": TITLES[i % len(TITLES)],
                            "start_date": "2019-03-01",
                            "end_date": None,
                        }
                    ],
                    "educations": [
                        {
                            "school": SCHOOLS[i % len(SCHOOLS)],
                            "degree": DEGREES[i % len(DEGREES)],
                            "discipline": DISCIPLINES[i % len(DISCIPLINES)],
                            "start_date": "2008-09-01",
                            "end_date": "2012-06-30",
                        }
                    ],
                    "tags": ["Backend"] if i % 2 else ["Sourced: Demo"],
                    "summary": "Generated demo profile.",
                }
            )
        )
    return out


@dataclass
class DemoEnv:
    """What the demo started: settings, resources, the sandbox server and the worker process."""

    settings: Settings
    resources: Resources
    sandbox: Sandbox
    server: SandboxServer
    worker: subprocess.Popen[bytes]
    worker_log: Path


WORKER_POOLS = ("prefork", "threads", "solo")
"""Celery pools ``ghexport worker --pool`` accepts (see docs/design.md, "Concurrency model")."""


def worker_command(concurrency: int, loglevel: str = "WARNING", *, pool: str = "prefork") -> list[str]:
    """The command line of a Celery worker for this app (never imported by the producer)."""
    from shared.queue import names

    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "-Q",
        names.EXPORT_QUEUE,
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


@contextmanager
def demo_environment(
    *, concurrency: int = 4, pool: str = "prefork", rate_limit: int = 1000, window_s: float = 10.0
) -> Iterator[DemoEnv]:
    """Start the sandbox, the embedded broker and a worker in a fresh directory; stop them all after."""
    from shared.connections.crypto import generate_key
    from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer
    from shared.queue.embedded import stop_embedded

    with tempfile.TemporaryDirectory(prefix="ghexport-demo-") as tmp:
        root = Path(tmp)
        sandbox = Sandbox(SandboxConfig(rate_limit=rate_limit, window_s=window_s))
        with SandboxServer(sandbox) as server:
            settings = Settings(
                broker_url="embedded",
                database_url=f"sqlite:///{root}/demo.db",
                harvest_url=server.harvest_url,
                harvest_token_url=server.token_url,
                secret_key=SecretStr(generate_key()),
                embedded_dir=str(root / "embedded"),
                # A dict, not LimiterSettings(...): pydantic-settings merges a dict with GHX_LIMITER__* from the
                # environment, where an instance would replace them. Pydantic validates the dict into the model,
                # but its __init__ signature can only name the model.
                limiter={"requests": rate_limit, "window_s": window_s},  # type: ignore[arg-type]  # see above
            )
            res = Resources(settings)
            settings = settings.model_copy(update={"broker_url": res.broker_url})
            res = Resources(settings)
            _ = res.engine  # migrate before the worker starts
            env = {**os.environ, **settings.to_env()}
            log_path = root / "worker.log"
            with open(log_path, "wb") as log:
                worker = subprocess.Popen(
                    worker_command(concurrency, pool=pool), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
                )
            try:
                yield DemoEnv(settings, res, sandbox, server, worker, log_path)
            finally:
                worker.terminate()
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
                res.close()
                stop_embedded(settings.embedded_dir)


def connect_demo(env: DemoEnv) -> None:
    """Register the sandbox's seeded credential as connection ``demo`` (pools enabled)."""
    from shared.connections import service as connections
    from shared.harvest.sandbox import seed

    connections.connect(
        env.settings,
        env.resources.engine,
        name="demo",
        client_id=seed.CLIENT_ID,
        client_secret=SecretStr(seed.CLIENT_SECRET),
        user_email=seed.RECRUITER_EMAIL,
        enable_pools=True,
        http_client=env.resources.http,
    )

"""Drive the learning limiter against the strict sandbox, in real time, from several threads.

Used by the unit tests (fakeredis) and the integration tests (real Redis, worker processes): each sender
loops over a cheap Harvest read through a real :class:`HarvestClient` whose gate is the limiter under
test, and records when each request was answered and how (200 or 429). Real time, because the limiter
reads Redis ``TIME``; the windows are short (about a second) so a test lasts a few windows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from pydantic import SecretStr

from shared.errors import RateLimitedError, ThrottledError
from shared.harvest.auth import Credential, TokenCache
from shared.harvest.client import HarvestClient
from shared.harvest.limiter import RateGate
from shared.harvest.sandbox import Sandbox, SandboxConfig, seed
from shared.settings import HarvestSettings, Settings

HARVEST = "https://harvest.sandbox.test"
TOKEN_URL = "https://auth.sandbox.test/token"


@dataclass
class Trace:
    """Answers seen by the senders: ``(time, status)`` with status 200 or 429, in arrival order."""

    answers: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int) -> None:
        with self.lock:
            self.answers.append((time.time(), status))

    def accepted(self, since: float = 0.0) -> list[float]:
        return [t for t, s in self.answers if s == 200 and t >= since]

    def throttled(self, since: float = 0.0) -> int:
        return sum(1 for t, s in self.answers if s == 429 and t >= since)


def sandbox(limit: int, window_s: float) -> Sandbox:
    """A sandbox on the real clock with this rolling window (the seeded credential and tenant)."""
    return Sandbox(SandboxConfig(rate_limit=limit, window_s=window_s))


def client(
    box: Sandbox, gate: RateGate, *, client_id: str = seed.CLIENT_ID, secret: str = seed.CLIENT_SECRET
) -> HarvestClient:
    """A Harvest client on ``box`` through MockTransport, with ``gate`` as its limiter and no quick retries."""
    settings = Settings(harvest_url=HARVEST, harvest_token_url=TOKEN_URL, harvest=HarvestSettings(quick_retries=0))
    cred = Credential(client_id=client_id, client_secret=SecretStr(secret))
    http = httpx.Client(transport=httpx.MockTransport(box.handle))
    return HarvestClient(settings, cred, http_client=http, token_cache=TokenCache(), limiter=gate)


def http_client(harvest_url: str, token_url: str, gate: RateGate) -> HarvestClient:
    """A Harvest client on a sandbox served over HTTP, with ``gate`` as its limiter and no quick retries."""
    settings = Settings(harvest_url=harvest_url, harvest_token_url=token_url, harvest=HarvestSettings(quick_retries=0))
    cred = Credential(client_id=seed.CLIENT_ID, client_secret=SecretStr(seed.CLIENT_SECRET))
    return HarvestClient(settings, cred, token_cache=TokenCache(), limiter=gate)


def send_until(harvest: HarvestClient, until: float, trace: Trace) -> None:
    """Read the sources over and over until ``until``; a throttled gate is waited out briefly."""
    while time.time() < until:
        try:
            harvest.list_sources()
        except ThrottledError as exc:
            time.sleep(min(exc.retry_after_s, 0.05))
            continue
        except RateLimitedError:
            trace.add(429)
            continue
        trace.add(200)


def run_senders(make: Callable[[], HarvestClient], threads: int, seconds: float) -> Trace:
    """``threads`` senders, each with its own client from ``make``, for ``seconds``; their answers."""
    trace = Trace()
    until = time.time() + seconds
    workers = [threading.Thread(target=send_until, args=(make(), until, trace)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return trace


def max_in_any_window(stamps: list[float], window: float) -> int:
    """The most stamps in any interval ``(t - window, t]``."""
    stamps = sorted(stamps)
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best

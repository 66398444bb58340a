"""Delivery of the outbox's callbacks to the tenants' URLs, from each worker's main process.

Every ``ghexport worker`` delivers (no turn to take: the outbox's leases keep two workers off the same event),
from a thread of its own started with the other duties of the main process
(:class:`~workers.runtime.MaintenanceRuntime`), never in an export task's slot. The thread looks for due
events every ``GHX_CALLBACKS__POLL_S`` (at once again while it finds more), takes them per tenant under a
lease (:func:`shared.store.outbox.claim`) and hands each to a bounded pool of ``concurrency`` threads, at
most ``per_tenant`` of them for one tenant: a receiver that hangs or refuses holds a few slots for at most
``connect_timeout_s`` + ``timeout_s`` each, and the other tenants' events go on. Its own HTTP client, so a
receiver's slowness never reaches the Harvest client's pool.

One attempt: the event's stored body as JSON, signed per Standard Webhooks with the tenant's secret
(:class:`standardwebhooks.Webhook`; headers ``webhook-id`` (the event's stable id), ``webhook-timestamp`` (this
attempt's time), ``webhook-signature``). A 2xx answer delivers it; any other answer, a timeout or a network
error schedules the next attempt (``GHX_CALLBACKS__SCHEDULE_S``, with up to 10 % jitter so a receiver that
comes back is not hit by every event at once), and past the schedule the event is dead until an operator or
the tenant redelivers it. No redirect is followed. At least once: a worker that dies mid-attempt leaves the
event to be taken again when its lease runs out.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from standardwebhooks import Webhook

from shared import metrics
from shared.connections.crypto import decrypt_secret
from shared.errors import ConfigurationError
from shared.queue.periodic import Periodic
from shared.store import outbox
from shared.store.models import OutboxState, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from shared.resources import Resources
    from shared.settings import CallbackSettings
    from shared.store.outbox import Claimed, EventRecord

log = logging.getLogger("ghexport.callbacks")

USER_AGENT = "greenhouse-export-callbacks/1"
BUSY_WAIT_S = 0.05
"""Wait before the next look while the last one found more than it could take."""
PURGE_EVERY_S = 3600.0
"""How often a worker deletes the delivered events older than the retention."""
TENANTS_PER_TURN = 200


class Undeliverable(Exception):
    """The event cannot be sent now for a reason of ours or the tenant's (no URL, no usable secret)."""


def failure_reason(status: int) -> str:
    """The metrics' reason for an answer that is not a 2xx."""
    if 400 <= status < 500:
        return "http_4xx"
    if 500 <= status < 600:
        return "http_5xx"
    return "http_other"


def jittered(delay_s: float, jitter: Callable[[float, float], float] = random.uniform) -> float:
    """``delay_s`` plus up to 10 %: events that failed together do not all come back at once."""
    return delay_s * jitter(1.0, 1.1)


class CallbackDelivery(Periodic):
    """The delivery thread of one worker (see the module docstring): :meth:`start`, :meth:`stop`.

    ``http_client`` (a test's) is used as is and left open; by default one is built here with the settings'
    timeouts and closed by :meth:`stop`."""

    failing = "%s cannot deliver callbacks (%s); retrying"
    back = "%s delivers callbacks again"

    def __init__(
        self,
        res: Resources,
        *,
        http_client: httpx.Client | None = None,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.cfg: CallbackSettings = res.settings.callbacks
        super().__init__("callbacks", self.cfg.poll_s, log)
        self.res = res
        self._jitter = jitter
        self._own_client = http_client is None
        self.http = http_client or httpx.Client(
            timeout=httpx.Timeout(self.cfg.timeout_s, connect=self.cfg.connect_timeout_s),
            limits=httpx.Limits(max_connections=self.cfg.concurrency, max_keepalive_connections=self.cfg.concurrency),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )
        self._pool = ThreadPoolExecutor(max_workers=self.cfg.concurrency, thread_name_prefix="ghexport-callback")
        self._lock = threading.Lock()
        self._busy: Counter[str] = Counter()
        """Deliveries in flight per tenant."""
        self._more = False
        self._purged_at = 0.0
        self._idle = threading.Condition(self._lock)

    @property
    def engine(self) -> Engine:
        return self.res.engine

    # --- the thread ------------------------------------------------------------------------------------

    def tick(self) -> None:
        self.turn()

    def next_wait(self) -> float:
        return BUSY_WAIT_S if self._more else self.interval_s

    def turn(self) -> int:
        """Take the due events this worker has room for and start their delivery; returns how many.

        Each tenant gets at most ``per_tenant`` slots (minus its deliveries in flight), the tenants whose
        events wait longest first."""
        self._purge_now_and_then()
        cfg = self.cfg
        with self._lock:
            free = cfg.concurrency - sum(self._busy.values())
            busy = dict(self._busy)
        self._more = free <= 0
        if free <= 0:
            return 0
        started = 0
        for tenant in outbox.due_tenants(self.engine, limit=TENANTS_PER_TURN):
            room = min(cfg.per_tenant - busy.get(tenant, 0), free)
            if room <= 0:
                continue
            claimed = outbox.claim(self.engine, tenant, room, cfg.lease_s)
            self._more = self._more or len(claimed.events) == room
            for event in claimed.events:
                self._start(claimed, event)
            started += len(claimed.events)
            free -= len(claimed.events)
            if free <= 0:
                self._more = True
                break
        return started

    def _start(self, claimed: Claimed, event: EventRecord) -> None:
        tenant = claimed.tenant_id
        with self._lock:
            self._busy[tenant] += 1
        try:
            future = self._pool.submit(self._deliver, claimed, event)
        except RuntimeError:  # stopping: the pool takes no more work; the lease lets another worker take it
            self._done(tenant)
            return
        future.add_done_callback(lambda _: self._done(tenant))  # run, or cancelled by stop()

    def _done(self, tenant_id: str) -> None:
        with self._lock:
            self._busy[tenant_id] -= 1
            if self._busy[tenant_id] <= 0:
                del self._busy[tenant_id]
            self._idle.notify_all()

    def in_flight(self) -> int:
        """Deliveries in flight now."""
        with self._lock:
            return sum(self._busy.values())

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop looking for events, give the deliveries in flight ``timeout_s`` to end, then close the client.
        An event still in flight then is left to its lease: another worker (or this one, restarted) sends it."""
        super().stop(timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._busy and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))
        if self._own_client:
            self.http.close()

    def _purge_now_and_then(self) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = time.monotonic()
        purged = outbox.purge_delivered(self.engine, utcnow() - timedelta(seconds=self.cfg.retention_s))
        if purged:
            log.info("deleted %d callback events delivered more than %.0f s ago", purged, self.cfg.retention_s)

    # --- one attempt -----------------------------------------------------------------------------------

    def _deliver(self, claimed: Claimed, event: EventRecord) -> None:
        try:
            self.attempt(claimed, event)
        except Exception as exc:  # the store did not answer: the lease runs out, the event is taken again
            log.warning("callback %s: its outcome was not recorded (%s)", event.id, type(exc).__name__)

    def attempt(self, claimed: Claimed, event: EventRecord) -> OutboxState | None:
        """Send ``event`` once and record the outcome; returns the event's new state (None: it had moved on)."""
        started = time.perf_counter()
        reason: str | None
        try:
            status = self.send(claimed, event)
        except Undeliverable as exc:
            reason, error = "not_configured", str(exc)
        except httpx.TimeoutException as exc:
            reason, error = "timeout", f"timeout ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            reason, error = "connection_error", f"{type(exc).__name__}: {exc}"
        else:
            reason = None if 200 <= status < 300 else failure_reason(status)
            error = f"HTTP {status}"
        seconds = time.perf_counter() - started
        if reason is None:
            metrics.observe_callback(seconds)
            return OutboxState.DELIVERED if outbox.mark_delivered(self.engine, event.id) else None
        delay = outbox.retry_delay_s(self.cfg.schedule_s, event.attempts + 1)
        state = outbox.mark_failed(
            self.engine, event.id, event.attempts, error, None if delay is None else jittered(delay, self._jitter)
        )
        metrics.observe_callback(seconds, reason, dead=state is OutboxState.DEAD)
        if state is OutboxState.DEAD:
            log.warning(
                "callback %s (%s) to tenant %s is dead after %d attempts: %s",
                event.id,
                event.type,
                claimed.tenant_id,
                event.attempts + 1,
                error,
            )
        return state

    def send(self, claimed: Claimed, event: EventRecord) -> int:
        """POST the signed event to the tenant's URL; the answer's status. The answer's body is not read."""
        if not claimed.callback_url:
            raise Undeliverable(f"tenant {claimed.tenant_id} has no callback URL")
        body = json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        now = utcnow()
        headers = {
            "content-type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer(claimed).sign(event.id, now, body),
        }
        with self.http.stream("POST", claimed.callback_url, content=body, headers=headers) as response:
            return response.status_code

    def _signer(self, claimed: Claimed) -> Webhook:
        if not claimed.secret_encrypted:
            raise Undeliverable(f"tenant {claimed.tenant_id} has no signing secret")
        try:
            secret = decrypt_secret(claimed.secret_encrypted, self.res.settings.secret_key)
            return Webhook(secret.get_secret_value())
        except ConfigurationError:
            raise Undeliverable(
                f"cannot decrypt the signing secret of tenant {claimed.tenant_id}: GHX_SECRET_KEY missing or changed?"
            ) from None
        except Exception:  # not Standard Webhooks base64 after whsec_, or empty
            raise Undeliverable(f"the signing secret of tenant {claimed.tenant_id} is not usable") from None

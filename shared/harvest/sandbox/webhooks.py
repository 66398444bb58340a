"""Greenhouse's webhooks, as the sandbox fires them: what deleting or merging a candidate sends, and to whom.

An organization configures webhooks (:meth:`~shared.harvest.sandbox.app.Sandbox.add_webhook`; Greenhouse: Dev
Center, one per event type, docs/harvest.md section 9). The sandbox fires two of Greenhouse's actions [P HOOKS]:

- ``delete_candidate`` when a candidate or prospect is deleted (``DELETE /v3/candidates/{id}``,
  :meth:`~shared.harvest.sandbox.app.Sandbox.remove_candidate`) and when a candidate is merged into another
  (``POST /v3/candidates/{id}/merge``, :meth:`~shared.harvest.sandbox.app.Sandbox.merge`): its payload is
  ``{"person": {..., "id", "deleted_application_ids": [...]}}`` (empty after a merge: the applications moved
  to the surviving record);
- ``merge_candidate`` for the record merged away, ``{"person": {..., "id", "new_candidate_id"}}``. Greenhouse:
  when the organization has a ``merge_candidate`` webhook, a merge fires it *instead of* ``delete_candidate``.

A delivery is one POST of the raw JSON body ``{"action": ..., "payload": ...}`` with ``Signature: sha256 <hex
HMAC-SHA256 of those bytes under the webhook's secret key>`` and ``Greenhouse-Event-ID`` (the same id on every
retry of one event: an assumption, [?]). The body escapes ``<``, ``>`` and ``&`` as ``\\u003c`` ... as Greenhouse's
JSON does, so a receiver that verifies re-serialized JSON instead of the raw bytes fails here too.

Route handlers only queue an event (:meth:`Dispatcher.submit`, under the sandbox lock); the dispatcher's own
thread sends it, never a request handler's. A delivery answered with anything but 200, a timeout or a network
error is retried after each of :attr:`~shared.harvest.sandbox.state.SandboxConfig.webhook_retry_delays_s`
(Greenhouse: six retries over about 15 hours), then given up (``failed``).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.harvest.sandbox.state import Record, State, WebhookEndpoint

DELETE_CANDIDATE = "delete_candidate"
MERGE_CANDIDATE = "merge_candidate"
ACTIONS = (DELETE_CANDIDATE, MERGE_CANDIDATE)
"""The actions the sandbox can fire (a webhook for any other Greenhouse action would never fire here)."""
SIGNATURE_HEADER = "Signature"
EVENT_ID_HEADER = "Greenhouse-Event-ID"
USER_AGENT = "Greenhouse-Sandbox-Webhooks"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def sign(secret_key: str, body: bytes) -> str:
    """The ``Signature`` header of ``body``: the algorithm, a space, the hex HMAC-SHA256 under ``secret_key``."""
    return "sha256 " + hmac.new(secret_key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def encode(action: str, payload: Record) -> bytes:
    """The raw body Greenhouse sends: compact JSON, non-ASCII and ``<``, ``>``, ``&`` escaped as ``\\uXXXX``."""
    text = json.dumps({"action": action, "payload": payload}, separators=(",", ":"), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode("ascii")


def _person(state: State, cand: Record) -> Record:
    """The ``person`` of a candidate event: the record as Greenhouse's webhooks show it (v1 names)."""
    apps = sorted((a for a in state.applications.values() if a["candidate_id"] == cand["id"]), key=lambda a: a["id"])
    first = apps[0] if apps else {}
    return {
        "id": cand["id"],
        "first_name": cand["first_name"],
        "last_name": cand["last_name"],
        "company": cand["company"],
        "title": cand["title"],
        "created_at": cand["created_at"][:19] + "Z",
        "headline": None,
        "is_private": bool(cand.get("private")),
        "recruiter_user_id": first.get("recruiter_id"),
        "coordinator_user_id": first.get("coordinator_id"),
        "can_email": True,
    }


def _fire(state: State, action: str, payload: Record) -> None:
    for endpoint in state.webhooks:
        if endpoint.action == action and state.webhook_sink is not None:
            state.webhook_sink(state, endpoint, action, payload)


def candidate_deleted(state: State, cand: Record) -> None:
    """Queue ``delete_candidate`` for ``cand``, called just before it and its applications are removed."""
    app_ids = sorted(a for a, rec in state.applications.items() if rec["candidate_id"] == cand["id"])
    _fire(state, DELETE_CANDIDATE, {"person": {**_person(state, cand), "deleted_application_ids": app_ids}})


def candidate_merged(state: State, secondary: Record, primary_id: int) -> None:
    """Queue what a merge of ``secondary`` into ``primary_id`` fires, called before its children move:
    ``merge_candidate`` when the organization has such a webhook, else ``delete_candidate`` (no application is
    deleted: they move to the surviving record)."""
    person = _person(state, secondary)
    if any(endpoint.action == MERGE_CANDIDATE for endpoint in state.webhooks):
        _fire(state, MERGE_CANDIDATE, {"person": {**person, "new_candidate_id": primary_id}})
    else:
        _fire(state, DELETE_CANDIDATE, {"person": {**person, "deleted_application_ids": []}})


def check_retry_config(delays_s: Sequence[float], timeout_s: float) -> None:
    """``ValueError`` unless every retry delay is a finite number of seconds, 0 or more, and the timeout positive."""
    for delay in delays_s:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay < math.inf:
            raise ValueError("webhook_retry_delays_s must be finite numbers of seconds, 0 or more")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not 0 < timeout_s < math.inf:
        raise ValueError("webhook_timeout_s must be a positive number of seconds")


@dataclass
class Delivery:
    """One event for one webhook: its body and headers (fixed for every attempt) and each attempt's outcome."""

    event_id: str
    webhook_id: int
    org_id: int | None
    action: str
    url: str
    body: bytes
    headers: dict[str, str]
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """Each attempt, oldest first: ``{"status": <HTTP status or None>, "error": <network error or None>}``."""
    state: str = PENDING

    def view(self) -> dict[str, Any]:
        """JSON-ready: ids, action, url, state, attempts, and the payload as sent."""
        return {
            "event_id": self.event_id,
            "webhook_id": self.webhook_id,
            "org_id": self.org_id,
            "action": self.action,
            "url": self.url,
            "state": self.state,
            "attempts": [dict(a) for a in self.attempts],
            "payload": json.loads(self.body)["payload"],
        }


class Dispatcher:
    """Delivers webhook events from its own daemon thread (started on the first event), retrying failures.

    ``http_client`` (default: one built here with ``timeout_s``, closed by :meth:`close`) sends the POSTs; tests
    pass one over an ``httpx.MockTransport`` or an ASGI app. Delays are real time (``monotonic``): deliveries
    are real I/O, unlike the sandbox's injected clock.
    """

    def __init__(
        self,
        retry_delays_s: Sequence[float],
        timeout_s: float,
        http_client: httpx.Client | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        check_retry_config(retry_delays_s, timeout_s)
        self.retry_delays_s = tuple(float(d) for d in retry_delays_s)
        self.timeout_s = float(timeout_s)
        self._client = http_client
        self._own_client = http_client is None
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Delivery]] = []
        self._order = itertools.count()
        self._deliveries: list[Delivery] = []
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._webhook_ids = itertools.count(1)

    def next_webhook_id(self) -> int:
        """A fresh webhook id (one counter per sandbox, apart from the record ids)."""
        return next(self._webhook_ids)

    def submit(self, state: State, endpoint: WebhookEndpoint, action: str, payload: Record) -> None:
        """Queue one event for ``endpoint`` (never sends here: the caller holds the sandbox lock)."""
        body = encode(action, payload)
        event_id = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: event_id,
            SIGNATURE_HEADER: sign(endpoint.secret_key, body),
        }
        delivery = Delivery(event_id, endpoint.id, state.org_id, action, endpoint.url, body, headers)
        with self._cond:
            if self._closed:
                return
            self._deliveries.append(delivery)
            heapq.heappush(self._due, (self._monotonic(), next(self._order), delivery))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery so far, oldest first (:meth:`Delivery.view`)."""
        with self._cond:
            return [d.view() for d in self._deliveries]

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no delivery is due or in flight (each delivered or given up); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._due and not self._in_flight, timeout_s)

    def close(self) -> None:
        """Stop the thread (after the attempt in flight); deliveries still pending stay ``pending``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=self.timeout_s + 5)
        if self._own_client and self._client is not None:
            self._client.close()

    def _next(self) -> Delivery | None:
        """The next delivery once it is due (None when closed); holds the condition only while waiting."""
        with self._cond:
            while not self._closed:
                if self._due:
                    wait_s = self._due[0][0] - self._monotonic()
                    if wait_s <= 0:
                        self._in_flight += 1
                        return heapq.heappop(self._due)[2]
                    self._cond.wait(wait_s)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        while (delivery := self._next()) is not None:
            status, error = self._attempt(delivery)
            with self._cond:
                self._in_flight -= 1
                delivery.attempts.append({"status": status, "error": error})
                retries = len(delivery.attempts) - 1
                if status == 200:
                    delivery.state = DELIVERED
                elif retries >= len(self.retry_delays_s):
                    delivery.state = FAILED
                else:
                    due = self._monotonic() + self.retry_delays_s[retries]
                    heapq.heappush(self._due, (due, next(self._order), delivery))
                self._cond.notify_all()

    def _attempt(self, delivery: Delivery) -> tuple[int | None, str | None]:
        """POST the delivery once: ``(status, None)`` when answered, ``(None, why)`` when not."""
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout_s)
        try:
            response = self._client.post(
                delivery.url, content=delivery.body, headers=delivery.headers, timeout=self.timeout_s
            )
        except Exception as exc:  # any failure to get an answer (even a receiver app raising) is a failed attempt
            return None, f"{type(exc).__name__}: {exc}"[:300]
        return response.status_code, None

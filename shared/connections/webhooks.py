"""Greenhouse's webhooks in: verify a delivery with the connection's secret, apply each event once.

A customer configures, in Greenhouse's Dev Center, a ``delete_candidate`` webhook (and, if they like, a
``merge_candidate`` one) to ``/v1/greenhouse/webhooks/{connection}`` with the secret key that
:func:`set_webhook_secret` stored for that connection (docs/harvest.md section 9). Greenhouse cannot send our API
key, so the signature is the authentication: ``Signature: sha256 <hex HMAC-SHA256 of the raw body>``, computed
here over the very bytes received (never re-serialized JSON) and compared in constant time. A delivery that is
unsigned, signed with another key, or addressed to a connection without a secret (or to no live connection) is
refused with one :class:`~shared.errors.WebhookSignatureError` and changes nothing.

A verified delivery is applied once per ``Greenhouse-Event-ID`` (Greenhouse delivers at least once and retries
for hours): :func:`shared.store.ledger.apply_greenhouse_event` records the id in the transaction of the change.
``delete_candidate`` (a record deleted, or merged away into another) and ``merge_candidate`` (the same, when the
customer configured it: Greenhouse then fires it instead of ``delete_candidate``) make the ledger forget the
record (:func:`shared.store.ledger.forget_record`). Every other action is acknowledged and ignored, so a webhook
configured for more events than we use never piles up retries at Greenhouse.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import SecretStr
from sqlalchemy.engine import Connection as SqlConnection
from sqlalchemy.engine import Engine

from shared.connections.crypto import decrypt_secret, encrypt_secret
from shared.errors import ConnectionNotFoundError, WebhookPayloadError, WebhookSignatureError
from shared.settings import Settings
from shared.store import ledger
from shared.store.models import utcnow

log = logging.getLogger("ghexport.webhooks")

SIGNATURE_HEADER = "signature"
EVENT_ID_HEADER = "greenhouse-event-id"
FORGET_ACTIONS = frozenset({"delete_candidate", "merge_candidate"})
"""Actions after which the record ``payload.person.id`` no longer exists (deleted, or merged into another)."""
REFUSED = "webhook refused: missing or invalid Signature for this connection"
MAX_EVENT_ID = 200
"""Longest ``Greenhouse-Event-ID`` stored as is (the column's size); a longer one is stored as its SHA-256."""


class Wired(Protocol):
    """What the receiver needs of the process's resources (:class:`shared.resources.Resources` fits)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> Engine: ...


@dataclass(frozen=True)
class WebhookOutcome:
    """What one verified delivery did: ``applied`` (this delivery changed the ledger), ``duplicate`` (the
    event was applied before: nothing done), or neither (an action we ignore)."""

    action: str
    event_id: str
    applied: bool = False
    duplicate: bool = False
    candidate_id: int | None = None
    people_forgotten: int = 0
    items_marked: int = 0


def set_webhook_secret(
    settings: Settings, engine: Engine, connection_name: str, secret: SecretStr | None = None
) -> SecretStr:
    """Store the webhook secret of connection ``connection_name`` (encrypted with ``GHX_SECRET_KEY``) and return
    it, to be shown once and pasted into the Greenhouse webhook's "Secret key". ``secret`` None: a new random one
    (256 bits). Raises :class:`~shared.errors.ConnectionNotFoundError` for an unknown or removed connection."""
    secret = secret if secret is not None else SecretStr(secrets.token_urlsafe(32))
    if not secret.get_secret_value():
        raise ValueError("the webhook secret must not be empty")
    if not ledger.set_webhook_secret(engine, connection_name, encrypt_secret(secret, settings.secret_key)):
        raise ConnectionNotFoundError(f"connection {connection_name} does not exist or was removed")
    return secret


def signature_matches(secret: SecretStr, raw_body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``sha256 <hex>``) is the HMAC-SHA256 of ``raw_body`` under ``secret``; compared in
    constant time, the hex digits in any case."""
    if not header:
        return False
    algorithm, _, digest = header.strip().partition(" ")
    if algorithm.lower() != "sha256":
        return False
    expected = hmac.new(secret.get_secret_value().encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), digest.strip().lower().encode("utf-8", "replace"))


def receive_greenhouse_webhook(
    res: Wired, connection_name: str, raw_body: bytes, headers: Mapping[str, str]
) -> WebhookOutcome:
    """Verify and apply one Greenhouse webhook delivery addressed to ``connection_name``.

    Raises :class:`~shared.errors.WebhookSignatureError` (refused, nothing changed), or
    :class:`~shared.errors.WebhookPayloadError` (signed, but not a body Greenhouse sends; nothing changed), or
    :class:`~shared.errors.ConfigurationError` when the stored secret cannot be decrypted (``GHX_SECRET_KEY``
    changed: our fault, so Greenhouse should retry). ``headers`` are matched without regard to case.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    target = ledger.webhook_target(res.engine, connection_name)
    if target is None or not target.secret_encrypted:
        raise WebhookSignatureError(REFUSED)
    secret = decrypt_secret(target.secret_encrypted, res.settings.secret_key, connection=connection_name)
    if not signature_matches(secret, raw_body, lower.get(SIGNATURE_HEADER)):
        raise WebhookSignatureError(REFUSED)
    action, payload = _parse(raw_body)
    event_id = _event_id(lower.get(EVENT_ID_HEADER), raw_body)
    if action not in FORGET_ACTIONS:
        log.info("greenhouse webhook %s on %s: action %s ignored", event_id, connection_name, action)
        return WebhookOutcome(action, event_id)
    candidate_id, connection_id, when = _person_id(payload), target.connection_id, utcnow()
    forgotten: list[ledger.Forgotten] = []

    def forget(conn: SqlConnection) -> None:
        forgotten.append(ledger.forget_record(conn, connection_id, candidate_id, when))

    if not ledger.apply_greenhouse_event(res.engine, connection_id, event_id, action, forget):
        log.info("greenhouse webhook %s on %s: applied before, ignored", event_id, connection_name)
        return WebhookOutcome(action, event_id, duplicate=True, candidate_id=candidate_id)
    (done,) = forgotten
    log.info(
        "greenhouse webhook %s on %s: %s of candidate %d: %d ledger rows forgotten, %d items marked",
        event_id,
        connection_name,
        action,
        candidate_id,
        done.people,
        done.items,
    )
    return WebhookOutcome(
        action, event_id, applied=True, candidate_id=candidate_id, people_forgotten=done.people, items_marked=done.items
    )


def _parse(raw_body: bytes) -> tuple[str, dict[str, Any]]:
    """``(action, payload)`` of a body ``{"action": ..., "payload": {...}}``; WebhookPayloadError otherwise."""
    try:
        doc = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookPayloadError("webhook body is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("action"), str) or not doc["action"]:
        raise WebhookPayloadError('webhook body has no "action"')
    payload = doc.get("payload")
    return doc["action"], payload if isinstance(payload, dict) else {}


def _person_id(payload: dict[str, Any]) -> int:
    """``payload.person.id`` of a candidate event: the Greenhouse record it is about."""
    person = payload.get("person")
    cid = person.get("id") if isinstance(person, dict) else None
    if isinstance(cid, bool) or not isinstance(cid, int) or cid <= 0:
        raise WebhookPayloadError('webhook payload has no "person.id"')
    return cid


def _event_id(header: str | None, raw_body: bytes) -> str:
    """The delivery's ``Greenhouse-Event-ID``; without one, the body's SHA-256 (a retry sends the same bytes,
    so it is still applied once). One longer than the column is stored as its SHA-256."""
    value = (header or "").strip()
    if not value:
        return "sha256:" + hashlib.sha256(raw_body).hexdigest()
    if len(value) > MAX_EVENT_ID:
        return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()
    return value

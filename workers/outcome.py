"""What one run of the export function ended with; the Celery task turns it into ack or retry.

Each outcome built from a claimed item carries its :class:`ItemIds` (batch, connection, Greenhouse
candidate and application), which the task's one log line per attempt shows (:func:`attempt_fields`). They
take no part in equality: an outcome is compared by what happened, not by where.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.store.models import ItemStatus


@dataclass(frozen=True)
class ItemIds:
    """Where an item stands, as ids only: what a log line may carry (never a name, an email, Harvest's text)."""

    batch_id: str | None = None
    connection_id: int | None = None
    candidate_id: int | None = None
    """The Greenhouse candidate the run created or linked (None before the create)."""
    application_id: int | None = None


NO_IDS = ItemIds()
"""The ids of an outcome built without the item (a message for an item this run did not claim)."""


@dataclass(frozen=True)
class Finished:
    """The item reached a final status this run (``exported``, ``skipped`` or ``failed``)."""

    status: ItemStatus
    cause: str | None = field(default=None, compare=False)
    """Machine-readable cause of a ``failed`` (or ``skipped``) item, as stored on it."""
    ids: ItemIds = field(default=NO_IDS, compare=False)


@dataclass(frozen=True)
class RetryLater:
    """The item went back to ``queued``; send the message again after ``countdown_s``."""

    countdown_s: float
    reason: str
    cause: str = "waiting"
    """Machine-readable cause (``rate_limited``, ``server_error``...): what logs show; ``reason`` may quote
    Harvest, whose messages can echo candidate data, so it goes to the store only."""
    ids: ItemIds = field(default=NO_IDS, compare=False)


@dataclass(frozen=True)
class NotClaimed:
    """Nothing to do: the item is done, or another worker holds a live lease on it (redelivery)."""

    reason: str
    ids: ItemIds = field(default=NO_IDS, compare=False)


@dataclass(frozen=True)
class Parked:
    """The item went back to ``queued`` and waits in its credential's queue; the pacer sends it again."""

    reason: str
    ids: ItemIds = field(default=NO_IDS, compare=False)


Outcome = Finished | RetryLater | NotClaimed | Parked


class MustWaitError(Exception):
    """Raised inside a run: stop, put the item back and try again after ``countdown_s``, without counting
    an attempt (waiting for Greenhouse or for another item is not a failure)."""

    def __init__(self, countdown_s: float, reason: str) -> None:
        super().__init__(reason)
        self.countdown_s = countdown_s
        self.reason = reason


class RetryCause(Exception):
    """The reason a task gives Celery for a retry: only the machine-readable cause (``rate_limited``,
    ``unavailable``, ``internal_error: KeyError``...), which Flower and the worker's retry line show. Never
    the text of the error, which may quote Harvest or the store, and through them candidate data."""


def describe(outcome: Outcome) -> str:
    """The outcome in a few words and the ids known, for the text of the per-attempt log line:
    ``exported (batch 3f2a..., candidate 4501, application 9902)``, ``retry in 12s: rate_limited (...)``."""
    if isinstance(outcome, Finished):
        what = f"{outcome.status}: {outcome.cause}" if outcome.cause else str(outcome.status)
    elif isinstance(outcome, RetryLater):
        what = f"retry in {outcome.countdown_s:.0f}s: {outcome.cause}"
    elif isinstance(outcome, Parked):
        what = "parked until its credential has budget"
    else:
        what = "not claimed (finished, or held by another worker)"
    ids = outcome.ids
    known = (("batch", ids.batch_id), ("candidate", ids.candidate_id), ("application", ids.application_id))
    where = ", ".join(f"{name} {value}" for name, value in known if value is not None)
    return f"{what} ({where})" if where else what


def attempt_fields(item_id: int, outcome: Outcome) -> dict[str, object]:
    """The JSON fields of the per-attempt log line: ``event`` (``export_attempt``), the ids, ``outcome``
    (``exported``, ``skipped``, ``failed``, ``retry``, ``parked`` or ``not_claimed``), ``cause`` and, for a
    retry, ``retry_in_s``. Ids and machine-readable words only."""
    ids = outcome.ids
    fields: dict[str, object] = {
        "event": "export_attempt",
        "item_id": item_id,
        "batch_id": ids.batch_id,
        "connection_id": ids.connection_id,
        "greenhouse_candidate_id": ids.candidate_id,
        "greenhouse_application_id": ids.application_id,
    }
    if isinstance(outcome, Finished):
        fields.update(outcome=str(outcome.status), cause=outcome.cause)
    elif isinstance(outcome, RetryLater):
        fields.update(outcome="retry", cause=outcome.cause, retry_in_s=round(outcome.countdown_s, 1))
    elif isinstance(outcome, Parked):
        fields.update(outcome="parked", cause=None)
    else:
        fields.update(outcome="not_claimed", cause=None)
    return fields

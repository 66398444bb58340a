"""What one run of the export function ended with; the Celery task turns it into ack or retry."""

from __future__ import annotations

from dataclasses import dataclass

from shared.store.models import ItemStatus


@dataclass(frozen=True)
class Finished:
    """The item reached a final status this run (``exported``, ``skipped`` or ``failed``)."""

    status: ItemStatus


@dataclass(frozen=True)
class RetryLater:
    """The item went back to ``queued``; send the message again after ``countdown_s``."""

    countdown_s: float
    reason: str
    cause: str = "waiting"
    """Machine-readable cause (``rate_limited``, ``server_error``...): what logs show; ``reason`` may quote
    Harvest, whose messages can echo candidate data, so it goes to the store only."""


@dataclass(frozen=True)
class NotClaimed:
    """Nothing to do: the item is done, or another worker holds a live lease on it (redelivery)."""

    reason: str


@dataclass(frozen=True)
class Parked:
    """The item went back to ``queued`` and waits in its credential's queue; the pacer sends it again."""

    reason: str


Outcome = Finished | RetryLater | NotClaimed | Parked


class MustWaitError(Exception):
    """Raised inside a run: stop, put the item back and try again after ``countdown_s``, without counting
    an attempt (waiting for Greenhouse or for another item is not a failure)."""

    def __init__(self, countdown_s: float, reason: str) -> None:
        super().__init__(reason)
        self.countdown_s = countdown_s
        self.reason = reason

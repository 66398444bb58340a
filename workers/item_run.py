"""One run on one claimed item: the worker's copy of the item, and every write the run makes to it.

The export flow (:mod:`workers.export`) and the parts it adds (:mod:`workers.parts`) both work through an
:class:`ItemRun`, and neither imports the other for it. Every write is guarded by the lease: once another
worker took the item over, the store raises :class:`~shared.errors.LeaseLostError`, and this run stops
without touching the new owner's progress.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from shared.profiles.report import LeftOut
from shared.settings import ExportSettings
from shared.store import items
from shared.store.models import ItemStatus, utcnow
from shared.store.progress import ItemProgress
from shared.store.records import ItemRecord
from workers.outcome import Finished, ItemIds, Outcome, Parked, RetryLater


class ItemRun:
    """The item claimed by ``owner`` for one run: its current state and its store writes.

    :attr:`item` is the item as this run last wrote it. Each write replaces the copy, so reads see the
    run's own progress. Warnings collect in :attr:`warnings` and are stored when the run ends (finish,
    fail, or retry).
    """

    def __init__(
        self,
        engine: Engine,
        owner: str,
        cfg: ExportSettings,
        item: ItemRecord,
        *,
        jitter: Callable[[float, float], float] = random.uniform,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.owner = owner
        """Lease owner the item was claimed for (``host:pid``); every write is guarded by it."""
        self.cfg = cfg
        self.jitter = jitter
        self.now = now
        """The clock for waits on Greenhouse (sync windows); tests move it by hand."""
        self._item = item
        self.warnings: list[str] = list(item.warnings)
        self.left_out: list[LeftOut] = [LeftOut.from_dict(d) for d in item.left_out]
        """The item's field report so far (stored with the warnings when the run ends)."""

    @property
    def item(self) -> ItemRecord:
        """The item as this run last stored it."""
        return self._item

    @property
    def item_id(self) -> int:
        return self._item.id

    @property
    def ids(self) -> ItemIds:
        """The item's batch, connection and Greenhouse ids as this run last stored them (for the outcome)."""
        item = self._item
        return ItemIds(item.batch_id, item.connection_id, item.greenhouse_candidate_id, item.greenhouse_application_id)

    @property
    def progress(self) -> ItemProgress:
        """The parts sent so far (the item's :class:`ItemProgress`)."""
        return self._item.progress

    # --- progress -----------------------------------------------------------------------------------

    def save(self, **values: Any) -> None:
        """Store ``values`` (fields of :class:`ItemRecord`) on the item, and update this run's copy.

        Each save also renews the lease, so a long but live run keeps its item. Raises
        :class:`~shared.errors.LeaseLostError` when the item is no longer this worker's.
        """
        # real UTC, not self.now: the claim and recovery compare lease_until with utcnow() in SQL
        values.setdefault("lease_until", utcnow() + timedelta(seconds=self.cfg.lease_s))
        items.update_item(self.engine, self.item_id, self.owner, **values)
        self._item = self._item.model_copy(update=values)

    def save_progress(self, progress: ItemProgress) -> None:
        """Store the item's updated ``progress`` (see :meth:`save`)."""
        self.save(progress=progress)

    def warn(self, message: str) -> None:
        """Add a warning for the item (once), stored when the run ends."""
        if message not in self.warnings:
            self.warnings.append(message)

    def leave_out(self, entry: LeftOut) -> None:
        """Report ``entry`` in the item's field report (once), and its line among the warnings."""
        if entry not in self.left_out:
            self.left_out.append(entry)
        self.warn(str(entry))

    def _notes(self) -> dict[str, Any]:
        """What every end of the run stores besides its status: the warnings and the field report."""
        return {"warnings": self.warnings, "left_out": [entry.as_dict() for entry in self.left_out]}

    # --- ends of the run --------------------------------------------------------------------------------

    def finish(self, status: ItemStatus, *, error: str | None = None, error_cause: str | None = None) -> Finished:
        """End the run with the final ``status`` (exported or skipped), with the warnings and the error."""
        items.finish_item(
            self.engine,
            self.item_id,
            self.owner,
            status,
            error=error,
            error_cause=error_cause,
            **self._notes(),
        )
        return Finished(status, cause=error_cause, ids=self.ids)

    def fail(self, cause: str, message: str) -> Finished:
        """End the run with ``failed``: ``cause`` is machine-readable, ``message`` is for the operator."""
        items.finish_item(
            self.engine,
            self.item_id,
            self.owner,
            ItemStatus.FAILED,
            error=message[:2000],
            error_cause=cause,
            **self._notes(),
        )
        return Finished(ItemStatus.FAILED, cause=cause, ids=self.ids)

    def retry(self, countdown_s: float, cause: str, message: str, *, counts: bool) -> Outcome:
        """Give the item back (``queued``) to try again after ``countdown_s``.

        With ``counts=False`` the attempt is refunded (waiting is not failing). A counted attempt past
        ``max_attempts`` fails the item instead.
        """
        if counts and self._item.attempts >= self.cfg.max_attempts:
            return self.fail(cause, f"gave up after {self._item.attempts} attempts: {message}")
        items.release_item(
            self.engine,
            self.item_id,
            self.owner,
            counts=counts,
            countdown_s=countdown_s,
            error=message[:2000],
            error_cause=cause,
            **self._notes(),
        )
        return RetryLater(countdown_s, message, cause, ids=self.ids)

    def park(self, reason: str, *, cause: str | None = None) -> Parked:
        """Give the item back (``queued``, attempt refunded) to wait for its credential's budget; the caller
        then parks it in the credential's queue (after this, so the pacer never finds it still ``sending``).
        With ``cause``, the item shows why it waits (``needs_reauth``: ``reason`` as its error)."""
        notes = self._notes()
        if cause is not None:
            notes.update(error=reason[:2000], error_cause=cause)
        items.release_item(self.engine, self.item_id, self.owner, counts=False, **notes)
        return Parked(reason, ids=self.ids)

    def backoff_s(self) -> float:
        """The wait before the next attempt: exponential in the attempts made, capped, with jitter."""
        base = min(self.cfg.retry_backoff_s * 2 ** max(0, self._item.attempts - 1), self.cfg.retry_backoff_max_s)
        return self.jitter(base / 2, base)

"""The partner connections' turn: keep every consent alive, and settle the ones Greenhouse no longer honours.

Every ``GHX_PARTNER__CHECK_EVERY_S`` each worker's main process asks for the turn; one worker of the cluster
gets it per interval (a lock in Redis, like recovery) and:

- **renews** every connected grant last refreshed more than ``GHX_PARTNER__REFRESH_EVERY_S`` ago (default 4
  hours, against the refresh token's 24 hours unused), through the cluster-wide refresh of
  :class:`~shared.connections.grants.GrantKeeper`, so an idle connection stays connected for months;
- **writes the holds again** from the store's grant states (Redis may have lost them, or a consent was
  restored by a process without Redis): a ``needs_reauth`` connection's items stay parked, a restored one's go;
  its queued items (a batch recorded since) show why they wait: cause ``needs_reauth``;
- **ends the wait** of items whose connection stayed ``needs_reauth`` beyond ``GHX_PARTNER__REAUTH_GRACE_S``:
  they fail with cause ``reauth_expired`` (``ghexport retry --cause reauth_expired`` once it is connected).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.connections.service import load_connection
from shared.errors import NEEDS_REAUTH_CAUSE, REAUTH_EXPIRED_CAUSE, ConnectionNotFoundError, HarvestError
from shared.queue.periodic import Periodic
from shared.store import grants
from shared.store import items as store_items
from shared.store.models import GrantState, aware, utcnow

if TYPE_CHECKING:
    from shared.resources import Resources

log = logging.getLogger("ghexport.consent")

TURN_KEY = "ghx:consent-turn"


class ConsentTurn(Periodic):
    """A daemon thread running :meth:`turn` about every ``check_every_s``, until :meth:`stop`."""

    failing = "%s cannot look after partner consents (%s); retrying"
    back = "%s looks after partner consents again"

    def __init__(self, res: Resources, owner: str) -> None:
        super().__init__("consent", res.settings.partner.check_every_s, log)
        self.res = res
        self.owner = owner
        self._started = False

    def take_turn(self) -> bool:
        """True when it is this worker's turn: one turn per interval across the cluster."""
        return bool(self.res.redis.set(TURN_KEY, self.owner, nx=True, px=max(1, int(self.interval_s * 900))))

    def turn(self) -> dict[str, int] | None:
        """Renew, re-hold and expire; the counts done, or None when another worker has the turn."""
        if not self.take_turn():
            return None
        res, cfg = self.res, self.res.settings.partner
        now = utcnow()
        renewed = 0
        for connection_id in grants.grants_due_for_renewal(res.engine, now - timedelta(seconds=cfg.refresh_every_s)):
            try:
                conn = load_connection(res.engine, connection_id)
                renewed += res.grants.refresh_now(conn)
            except (ConnectionNotFoundError, HarvestError) as exc:  # needs_reauth is recorded by the keeper
                log.info("consent of connection %s not renewed now: %s", connection_id, exc)
        states = grants.grant_states(res.engine)
        held: dict[str, str] = {}
        expired = 0
        for connection_id, grant in states.items():
            if grant.state is not GrantState.NEEDS_REAUTH:
                continue
            try:
                conn = load_connection(res.engine, connection_id)
            except ConnectionNotFoundError:
                continue
            reason = grant.reason or "authorization gone"
            held[conn.limit_key] = f"needs_reauth: {reason}"
            store_items.mark_queued_waiting(
                res.engine, connection_id, NEEDS_REAUTH_CAUSE, f"connection {conn.name} needs a new consent: {reason}"
            )
            if grant.since is not None and (now - aware(grant.since)).total_seconds() > cfg.reauth_grace_s:
                failed = store_items.fail_queued_items(
                    res.engine,
                    connection_id,
                    REAUTH_EXPIRED_CAUSE,
                    f"connection {conn.name} stayed without consent beyond the grace period "
                    f"({cfg.reauth_grace_s / 86400:g} days): {grant.reason}",
                )
                if failed:
                    log.warning("connection %s: %d waiting items failed (reauth_expired)", conn.name, len(failed))
                expired += len(failed)
        res.holds.sync(held)
        return {"renewed": renewed, "held": len(held), "expired": expired}

    def tick(self) -> None:
        self.turn()

    def next_wait(self) -> float:
        if not self._started:
            self._started = True
            return random.uniform(0.1, 1.0) * min(self.interval_s, 5.0)
        return self.interval_s * random.uniform(0.9, 1.1)

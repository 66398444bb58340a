"""Partner grants and pending consents: the only writer of the ``grants`` and ``consent_requests`` tables.

Tokens are stored encrypted by the caller (:mod:`shared.connections.crypto`); this module never sees them
in clear. Each function opens its own short transaction. A refresh writes its rotated tokens with
:func:`store_refreshed`, a compare-and-set on the grant's ``generation``, so a writer holding an older
generation (a process that lost the cluster-wide refresh lock, then woke up) can never overwrite the
newest refresh token with a dead one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import Session, col, select

from shared.store import outbox
from shared.store.models import (
    Connection,
    ConnectionKind,
    ConsentRequest,
    Grant,
    GrantState,
    utcnow,
)
from shared.store.records import GrantRecord

CONSENT_UNKNOWN = "unknown"
CONSENT_USED = "used"
CONSENT_EXPIRED = "expired"


@dataclass(frozen=True)
class ConsentTaken:
    """What :func:`take_consent_request` found: the request (now used up), or why there is none
    (:data:`CONSENT_UNKNOWN`, :data:`CONSENT_USED` or :data:`CONSENT_EXPIRED`)."""

    request: ConsentRequest | None
    refusal: str | None = None


@dataclass(frozen=True)
class GrantTokens:
    """A grant's stored (encrypted) tokens and the facts a token keeper needs to use them."""

    grant: GrantRecord
    refresh_token_encrypted: str
    access_token_encrypted: str


def save_consent_request(engine: Engine, request: ConsentRequest) -> None:
    """Record a consent begun (its ``state`` hashed by the caller); expired ones are swept on the way."""
    now = utcnow()
    with Session(engine) as session:
        session.execute(sa.delete(ConsentRequest).where(col(ConsentRequest.expires_at) < now))
        session.add(request)
        session.commit()


def take_consent_request(engine: Engine, state_hash: str, now: datetime | None = None) -> ConsentTaken:
    """Use up the consent request of ``state_hash``: it works once, and only before it expires."""
    now = now or utcnow()
    with Session(engine) as session:
        result = cast(
            "CursorResult[Any]",
            session.execute(
                sa.update(ConsentRequest)
                .where(
                    col(ConsentRequest.state_hash) == state_hash,
                    col(ConsentRequest.used_at).is_(None),
                    col(ConsentRequest.expires_at) > now,
                )
                .values(used_at=now)
            ),
        )
        session.commit()
        row = session.get(ConsentRequest, state_hash)
        if row is None:
            return ConsentTaken(None, CONSENT_UNKNOWN)
        if result.rowcount != 1:  # used up before, or expired unused
            return ConsentTaken(None, CONSENT_USED if row.used_at is not None else CONSENT_EXPIRED)
        session.expunge(row)
        return ConsentTaken(row)


def upsert_grant(
    session: Session,
    connection_id: int,
    *,
    sub: int | None,
    user_role: str | None,
    scopes: list[str],
    refresh_token_encrypted: str,
    access_token_encrypted: str,
    access_expires_at: datetime,
    user_id: int | None = None,
) -> None:
    """Store a new consent's tokens as the connection's grant (inside the caller's transaction, with the
    connection's own row): state ``connected``, a new generation."""
    now = utcnow()
    grant = session.exec(
        select(Grant).where(Grant.connection_id == connection_id, col(Grant.user_id).is_(None))
        if user_id is None
        else select(Grant).where(Grant.connection_id == connection_id, Grant.user_id == user_id)
    ).first()
    if grant is None:
        grant = Grant(connection_id=connection_id, user_id=user_id)
    elif grant.state == GrantState.NEEDS_REAUTH:  # the customer consented again: the platform hears of it
        outbox.emit_connection_event(
            session.connection(), connection_id, "connection.reconnected", {"state": GrantState.CONNECTED.value}
        )
    grant.sub = sub
    grant.user_role = user_role
    grant.granted_scopes = scopes
    grant.refresh_token_encrypted = refresh_token_encrypted
    grant.access_token_encrypted = access_token_encrypted
    grant.access_expires_at = access_expires_at
    grant.refreshed_at = now
    grant.generation = (grant.generation or 0) + 1
    grant.state = GrantState.CONNECTED
    grant.reason = None
    grant.since = now
    grant.updated_at = now
    session.add(grant)


def load_tokens(engine: Engine, connection_id: int) -> GrantTokens | None:
    """The connection's own grant with its encrypted tokens, or None (not a partner connection)."""
    with Session(engine) as session:
        grant = session.exec(
            select(Grant).where(Grant.connection_id == connection_id, col(Grant.user_id).is_(None))
        ).first()
        if grant is None:
            return None
        return GrantTokens(GrantRecord.from_row(grant), grant.refresh_token_encrypted, grant.access_token_encrypted)


def store_refreshed(
    engine: Engine,
    grant_id: int,
    generation: int,
    *,
    refresh_token_encrypted: str,
    access_token_encrypted: str,
    access_expires_at: datetime,
) -> bool:
    """Store a refresh's rotated tokens if the grant is still at ``generation``; True when stored."""
    now = utcnow()
    with Session(engine) as session:
        result = cast(
            "CursorResult[Any]",
            session.execute(
                sa.update(Grant)
                .where(col(Grant.id) == grant_id, col(Grant.generation) == generation)
                .values(
                    refresh_token_encrypted=refresh_token_encrypted,
                    access_token_encrypted=access_token_encrypted,
                    access_expires_at=access_expires_at,
                    refreshed_at=now,
                    generation=generation + 1,
                    updated_at=now,
                )
            ),
        )
        session.commit()
        return result.rowcount == 1


def mark_needs_reauth(engine: Engine, grant_id: int, generation: int, reason: str) -> bool:
    """Mark the grant ``needs_reauth`` (with ``reason``, since now) unless a newer generation was stored
    meanwhile (a new consent, or another process's refresh). True when this call changed the state."""
    now = utcnow()
    with Session(engine) as session:
        result = cast(
            "CursorResult[Any]",
            session.execute(
                sa.update(Grant)
                .where(
                    col(Grant.id) == grant_id,
                    col(Grant.generation) == generation,
                    col(Grant.state) != GrantState.NEEDS_REAUTH,
                )
                .values(state=GrantState.NEEDS_REAUTH, reason=reason[:500], since=now, updated_at=now)
            ),
        )
        changed = result.rowcount == 1
        if changed:
            connection_id = session.exec(select(Grant.connection_id).where(Grant.id == grant_id)).one()
            outbox.emit_connection_event(
                session.connection(),
                connection_id,
                "connection.needs_reauth",
                {"state": GrantState.NEEDS_REAUTH.value, "reason": reason[:500], "since": now.isoformat()},
            )
        session.commit()
        return changed


def _live_partner_grants() -> Any:
    return (
        select(Grant, Connection)
        .join(Connection, col(Connection.id) == col(Grant.connection_id))
        .where(
            col(Connection.kind) == ConnectionKind.PARTNER,
            col(Connection.removed_at).is_(None),
            col(Grant.user_id).is_(None),
        )
    )


def grants_due_for_renewal(engine: Engine, refreshed_before: datetime) -> list[int]:
    """Connections whose connected grant was last refreshed before ``refreshed_before``, oldest first."""
    with Session(engine) as session:
        rows = session.exec(
            _live_partner_grants()
            .where(col(Grant.state) == GrantState.CONNECTED, col(Grant.refreshed_at) < refreshed_before)
            .order_by(col(Grant.refreshed_at))
        ).all()
        return [grant.connection_id for grant, _ in rows]


def grant_states(engine: Engine) -> dict[int, GrantRecord]:
    """Every live partner connection's grant, by connection id (for ``connections``, metrics, the turn)."""
    with Session(engine) as session:
        return {grant.connection_id: GrantRecord.from_row(grant) for grant, _ in session.exec(_live_partner_grants())}


def wipe_tokens(session: Session, connection_id: int) -> None:
    """Forget a removed connection's tokens (inside the caller's transaction): nothing can refresh it again."""
    session.execute(
        sa.update(Grant)
        .where(col(Grant.connection_id) == connection_id)
        .values(refresh_token_encrypted="", access_token_encrypted="", access_expires_at=None, updated_at=utcnow())
    )

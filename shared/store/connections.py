"""Connection rows: stored, changed and removed only here (the service in :mod:`shared.connections.service` checks
a credential against Greenhouse first, then calls these). A removal fails the connection's unfinished items in
the same transaction (:func:`shared.store.items.fail_active_items`, which tells the platform)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.errors import ConflictError, ConnectionNotFoundError
from shared.store import items as store_items
from shared.store.grants import upsert_grant, wipe_tokens
from shared.store.models import Connection, ConnectionKind, utcnow
from shared.store.records import ConnectionRecord


@dataclass(frozen=True)
class PartnerGrant:
    """What a partner consent adds to a stored connection: the organization, who acts, the tokens (encrypted)."""

    organization_id: int
    organization_name: str | None
    sub: int | None
    user_role: str | None
    scopes: list[str]
    refresh_token_encrypted: str
    access_token_encrypted: str
    access_expires_at: datetime


def save_connection(
    engine: Engine,
    *,
    partner: PartnerGrant | None = None,
    name: str,
    client_id: str,
    encrypted: str,
    user_email: str,
    user_id: int,
    source_id: int,
    source_name: str,
    prospects_only: bool,
    enable_pools: bool,
    duplicate_policy: str,
    scopes: list[str],
    fields: dict[str, Any] | None,
    tenant_id: str | None = None,
) -> tuple[ConnectionRecord, bool]:
    """Insert connection ``name``, or update it in place (secret rotation) and clear ``removed_at``; a
    ``partner`` connection's organization and grant (its tokens) are stored in the same transaction. A
    connection keeps its tenant: updating one of another tenant (``tenant_id``) is a :class:`ConflictError`."""
    with Session(engine) as session:
        conn = session.exec(select(Connection).where(Connection.name == name)).first()
        created = conn is None
        if conn is not None and conn.tenant_id != tenant_id:
            raise ConflictError(f"connection name {name} is taken; choose another name")
        if conn is None:
            conn = Connection(
                name=name,
                client_id=client_id,
                user_email=user_email,
                user_id=user_id,
                source_id=source_id,
                source_name=source_name,
                tenant_id=tenant_id,
            )
        conn.client_id = client_id
        conn.client_secret_encrypted = encrypted
        conn.user_email = user_email
        conn.user_id = user_id
        conn.source_id = source_id
        conn.source_name = source_name
        conn.prospects_only = prospects_only
        conn.pools_enabled = enable_pools
        conn.duplicate_policy = duplicate_policy
        conn.scopes = scopes
        if fields is not None:
            conn.fields = fields
        conn.kind = ConnectionKind.PARTNER if partner is not None else ConnectionKind.CUSTOM
        conn.organization_id = partner.organization_id if partner is not None else None
        conn.organization_name = partner.organization_name if partner is not None else None
        conn.updated_at = utcnow()
        conn.removed_at = None
        session.add(conn)
        session.flush()
        if partner is not None:
            assert conn.id is not None
            upsert_grant(
                session,
                conn.id,
                sub=partner.sub,
                user_role=partner.user_role,
                scopes=partner.scopes,
                refresh_token_encrypted=partner.refresh_token_encrypted,
                access_token_encrypted=partner.access_token_encrypted,
                access_expires_at=partner.access_expires_at,
            )
        session.commit()
        session.refresh(conn)
        return ConnectionRecord.from_row(conn), created


def set_fields(engine: Engine, name: str, fields: dict[str, Any]) -> ConnectionRecord:
    """Store the field settings (``FieldSettings`` as JSON) of the live connection ``name``."""
    with Session(engine) as session:
        conn = _live(session, name)
        conn.fields = fields
        conn.updated_at = utcnow()
        session.add(conn)
        session.commit()
        session.refresh(conn)
        return ConnectionRecord.from_row(conn)


def find_connection(engine: Engine, name: str) -> ConnectionRecord | None:
    """The connection called ``name``, removed or not; None when there is none."""
    with Session(engine) as session:
        conn = session.exec(select(Connection).where(Connection.name == name)).first()
        return ConnectionRecord.from_row(conn) if conn is not None else None


def connection_by_id(engine: Engine, connection_id: int) -> ConnectionRecord | None:
    """The connection with this id, removed or not; None when there is none."""
    with Session(engine) as session:
        conn = session.get(Connection, connection_id)
        return ConnectionRecord.from_row(conn) if conn is not None else None


def list_connections(engine: Engine, *, include_removed: bool = False) -> list[ConnectionRecord]:
    """Connections by name (removed ones only when asked)."""
    with Session(engine) as session:
        query = select(Connection).order_by(Connection.name)
        if not include_removed:
            query = query.where(col(Connection.removed_at).is_(None))
        return [ConnectionRecord.from_row(row) for row in session.exec(query).all()]


def remove_connection(engine: Engine, name: str, cause: str, error: str) -> int:
    """Remove the live connection ``name`` (soft): wipe its secret and a partner connection's tokens, set
    ``removed_at`` and fail its ``queued`` / ``sending`` items with ``cause``, in one transaction; returns how
    many items failed. :class:`ConnectionNotFoundError` when there is no such live connection."""
    now = utcnow()
    with Session(engine) as session:
        conn = _live(session, name, missing=f"connection {name} does not exist or was already removed")
        assert conn.id is not None
        failed = store_items.fail_active_items(session.connection(), conn.id, cause, error)
        conn.client_secret_encrypted = ""
        wipe_tokens(session, conn.id)
        conn.removed_at = now
        conn.updated_at = now
        session.add(conn)
        session.commit()
    return len(failed)


def _live(session: Session, name: str, *, missing: str | None = None) -> Connection:
    conn = session.exec(select(Connection).where(Connection.name == name)).first()
    if conn is None or conn.removed_at is not None:
        raise ConnectionNotFoundError(missing or f"no connection named {name!r}; see `ghexport connections`")
    return conn

"""Tenants and their API keys: the only writer of the ``tenants`` and ``api_keys`` tables.

A tenant is one customer organization of the platform (its id is the platform's slug for it); an API key is
stored as its SHA-256 only and found by its public prefix, so a leaked table opens nothing. The checks of what a
key may do (hash comparison, revocation, tenant scope) are :mod:`shared.connections.tenancy`'s; this module
only reads and writes rows, each function in its own short transaction.

One read of a table written elsewhere lives here because the HTTP API needs it before it calls the writer:
:func:`consent_context` (what a partner consent begun through the API remembers: its tenant and where the
browser goes back to; written by :mod:`shared.store.grants`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from shared.errors import ConflictError
from shared.store.models import ApiKey, ConsentRequest, Tenant, aware, utcnow

TOUCH_EVERY_S = 60.0
"""``last_used_at`` is written at most this often per key: a busy key costs no write per request."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True, extra="ignore")


class TenantRecord(_Record):
    """A stored tenant. ``callback_secret_encrypted`` is empty until a callback URL is registered."""

    id: str
    name: str
    callback_url: str | None
    callback_secret_encrypted: str = Field(repr=False)
    created_at: datetime
    updated_at: datetime


class ApiKeyRecord(_Record):
    """A stored API key: its public prefix, the SHA-256 of the whole key, whose it is (None: platform admin)."""

    id: int
    prefix: str
    key_hash: str = Field(repr=False)
    tenant_id: str | None
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def is_admin(self) -> bool:
        """A platform-admin key (every tenant)."""
        return self.tenant_id is None


# --- tenants ----------------------------------------------------------------------------------------------


def create_tenant(engine: Engine, tenant_id: str, name: str) -> TenantRecord:
    """Insert tenant ``tenant_id``; :class:`ConflictError` when it exists already."""
    with Session(engine) as session:
        row = Tenant(id=tenant_id, name=name)
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            raise ConflictError(f"tenant {tenant_id} exists already") from None
        session.refresh(row)
        return TenantRecord.model_validate(row)


def get_tenant(engine: Engine, tenant_id: str) -> TenantRecord | None:
    """The tenant, or None."""
    with Session(engine) as session:
        row = session.get(Tenant, tenant_id)
        return TenantRecord.model_validate(row) if row is not None else None


def list_tenants(engine: Engine) -> list[TenantRecord]:
    """Every tenant, by id."""
    with Session(engine) as session:
        return [TenantRecord.model_validate(r) for r in session.exec(select(Tenant).order_by(col(Tenant.id))).all()]


def set_callback(engine: Engine, tenant_id: str, url: str | None, secret_encrypted: str) -> TenantRecord | None:
    """Register (``url`` set) or remove (``url`` None, ``secret_encrypted`` empty) the tenant's callback URL and
    its encrypted signing secret; None when there is no such tenant."""
    with Session(engine) as session:
        row = session.get(Tenant, tenant_id)
        if row is None:
            return None
        row.callback_url = url
        row.callback_secret_encrypted = secret_encrypted
        row.updated_at = utcnow()
        session.add(row)
        session.commit()
        session.refresh(row)
        return TenantRecord.model_validate(row)


# --- API keys -------------------------------------------------------------------------------------------


def insert_api_key(engine: Engine, *, prefix: str, key_hash: str, tenant_id: str | None, name: str) -> ApiKeyRecord:
    """Store a new key (its hash only). :class:`ConflictError` when the prefix is taken (the caller draws again)."""
    with Session(engine) as session:
        row = ApiKey(prefix=prefix, key_hash=key_hash, tenant_id=tenant_id, name=name)
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            raise ConflictError(f"API key prefix {prefix} is taken") from None
        session.refresh(row)
        return ApiKeyRecord.model_validate(row)


def find_api_key(engine: Engine, prefix: str) -> ApiKeyRecord | None:
    """The key with this public prefix (revoked or not), or None."""
    with Session(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
        return ApiKeyRecord.model_validate(row) if row is not None else None


def list_api_keys(engine: Engine, *, tenant_id: str | None = None, admin_only: bool = False) -> list[ApiKeyRecord]:
    """Keys, oldest first: the tenant's (``tenant_id``), the platform-admin ones (``admin_only``), else all."""
    query = select(ApiKey).order_by(col(ApiKey.id))
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    elif admin_only:
        query = query.where(col(ApiKey.tenant_id).is_(None))
    with Session(engine) as session:
        return [ApiKeyRecord.model_validate(r) for r in session.exec(query).all()]


def revoke_api_key(engine: Engine, prefix: str, when: datetime | None = None) -> ApiKeyRecord | None:
    """Revoke the key (a revoked key stays revoked, with its first revocation time); None when unknown."""
    with Session(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
        if row is None:
            return None
        if row.revoked_at is None:
            row.revoked_at = when or utcnow()
            session.add(row)
            session.commit()
            session.refresh(row)
        return ApiKeyRecord.model_validate(row)


def touch_api_key(engine: Engine, key_id: int, when: datetime | None = None) -> bool:
    """Record that the key was used now, unless that was recorded less than :data:`TOUCH_EVERY_S` ago."""
    now = when or utcnow()
    with engine.begin() as conn:
        result = cast(
            "CursorResult[Any]",
            conn.execute(
                sa.update(ApiKey)
                .where(
                    col(ApiKey.id) == key_id,
                    sa.or_(
                        col(ApiKey.last_used_at).is_(None),
                        col(ApiKey.last_used_at) < now - timedelta(seconds=TOUCH_EVERY_S),
                    ),
                )
                .values(last_used_at=now)
            ),
        )
        return bool(result.rowcount)


# --- reads for the API's tenancy (rows written elsewhere) --------------------------------------------------


class ConsentContext(_Record):
    """A partner consent as begun: its options, and whether it may still complete."""

    options: dict[str, Any]
    used: bool
    expired: bool


def consent_context(engine: Engine, state_hash: str, now: datetime | None = None) -> ConsentContext | None:
    """The partner consent begun under ``state_hash`` (used or not, expired or not), or None when unknown: the
    API reads its tenant and return URL before the consent is completed (and used up)."""
    now = now or utcnow()
    with Session(engine) as session:
        row = session.get(ConsentRequest, state_hash)
        if row is None:
            return None
        return ConsentContext(
            options=dict(row.options), used=row.used_at is not None, expired=aware(row.expires_at) <= now
        )

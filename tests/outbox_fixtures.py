"""A small store world for the callback tests: tenants (with and without a callback URL), their connections
(stored as ``T:N``), an operator's connection, and batches of items in chosen statuses, written as rows.

Shared by the SQLite unit tests and the PostgreSQL ones, so both dialects run the same statements."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from shared.connections.crypto import encrypt_secret
from shared.store import outbox
from shared.store.models import Batch, Connection, Item, ItemStatus, TargetKind, Tenant


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


@dataclass
class World:
    engine: Engine
    key: SecretStr

    def tenant(self, tenant_id: str, url: str | None = None, secret: str | None = None) -> str:
        """Insert a tenant, with a callback URL and its signing secret when ``url`` is given; the secret."""
        secret = secret or new_secret()
        with Session(self.engine) as session:
            session.add(
                Tenant(
                    id=tenant_id,
                    name=tenant_id.upper(),
                    callback_url=url,
                    callback_secret_encrypted=encrypt_secret(SecretStr(secret), self.key) if url else "",
                )
            )
            session.commit()
        return secret

    def set_url(self, tenant_id: str, url: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(Tenant).where(col(Tenant.id) == tenant_id).values(callback_url=url))

    def connection(self, name: str, tenant_id: str | None) -> int:
        with Session(self.engine) as session:
            row = Connection(
                name=name,
                client_id="client",
                user_email="recruiter@example.com",
                user_id=1,
                source_id=2,
                source_name="SeekOut",
                tenant_id=tenant_id,
            )
            session.add(row)
            session.commit()
            assert row.id is not None
            return row.id

    def batch(self, batch_id: str, connection_id: int, statuses: list[str], tenant_id: str | None = None) -> list[int]:
        """A batch of items in ``statuses`` (profile ids ``p-0``, ``p-1``...); the items' ids in order."""
        with Session(self.engine) as session:
            session.add(
                Batch(
                    id=batch_id,
                    connection_id=connection_id,
                    target_kind=TargetKind.JOB,
                    job_id=7,
                    user_email="recruiter@example.com",
                    user_id=1,
                    total=len(statuses),
                    tenant_id=tenant_id,
                )
            )
            session.flush()
            rows = [
                Item(
                    batch_id=batch_id,
                    connection_id=connection_id,
                    profile_id=f"p-{i}",
                    profile={"id": f"p-{i}", "emails": [f"ada{i}@example.com"], "first_name": "Ada"},
                    status=status,
                    greenhouse_candidate_id=1000 + i if status != ItemStatus.QUEUED else None,
                    error="boom" if status == ItemStatus.FAILED else None,
                    error_cause="invalid_request" if status == ItemStatus.FAILED else None,
                )
                for i, status in enumerate(statuses)
            ]
            session.add_all(rows)
            session.commit()
            return [int(r.id or 0) for r in rows]

    def set_status(self, item_ids: list[int], status: str) -> None:
        """Move items to ``status`` and emit their events, in one transaction (as the store's writers do)."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(Item).where(col(Item.id).in_(item_ids)).values(status=status))
            outbox.emit_item_events(conn, item_ids)

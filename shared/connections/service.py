"""Greenhouse connections: connect (check, then store), list, load, disconnect.

Plain service functions with their collaborators passed in (settings, engine, HTTP client); the CLI
is a thin layer over them. A connection is stored only when every check of
:mod:`shared.connections.checks` passed; its client secret is encrypted with ``GHX_SECRET_KEY``
(:mod:`shared.connections.crypto`) and never logged, printed or put in a task message. Removal is soft: the row stays
(batches and items refer to it), its secret is wiped and its unfinished items fail with
"connection removed".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Unpack

from pydantic import SecretStr, ValidationError
from sqlalchemy.engine import Engine

from shared.connections import checks
from shared.connections.crypto import decrypt_secret, encrypt_secret
from shared.connections.lookups import Lookups
from shared.connections.targets import check_job_open, check_target
from shared.errors import ConfigurationError, ConnectionNotFoundError, UserError
from shared.harvest.auth import Credential
from shared.harvest.client import HarvestClient
from shared.harvest.models import Source, User
from shared.harvest.partner import AccessTokens
from shared.harvest.transport import TransportOptions
from shared.profiles.fields import FieldSettings
from shared.settings import Settings
from shared.store import connections as store
from shared.store.connections import PartnerGrant
from shared.store.models import (
    DuplicatePolicy,
)
from shared.store.records import ConnectionRecord, GrantRecord

__all__ = [
    "CONNECTION_REMOVED",
    "ConnectResult",
    "PartnerGrant",
    "check_target",
    "configure",
    "connect",
    "connection_summary",
    "credential_for",
    "disconnect",
    "get_connection",
    "list_connections",
    "load_connection",
    "reader_for",
]

log = logging.getLogger(__name__)

CONNECTION_REMOVED = "connection removed"
CONNECTION_REMOVED_CAUSE = "connection_removed"
DEFAULT_READBACK_WAIT_S = 30.0


@dataclass
class ConnectResult:
    """What ``connect`` stored and found: the connection, the acting user, the source, the verification id."""

    connection: ConnectionRecord
    user: User
    source: Source
    created: bool
    """False when an existing connection of that name was updated (rotation or reconnection)."""
    verified_candidate_id: int | None = None
    messages: list[str] = field(default_factory=list)


def connect(
    settings: Settings,
    engine: Engine,
    *,
    name: str,
    client_id: str,
    client_secret: SecretStr,
    user_email: str,
    source_name: str | None = None,
    prospects_only: bool = False,
    enable_pools: bool = False,
    duplicate_policy: DuplicatePolicy | str = DuplicatePolicy.LINK,
    fields: FieldSettings | None = None,
    verify: Literal["prospect"] | int | None = None,
    readback_wait_s: float = DEFAULT_READBACK_WAIT_S,
    readback_poll_s: float = checks.READBACK_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    tenant_id: str | None = None,
    **client_kw: Unpack[TransportOptions],
) -> ConnectResult:
    """Check a Greenhouse credential and store it as connection ``name`` (insert, or update + revive).

    In order: the secret key is usable; the credential mints a token; every required scope is granted
    (all missing ones named at once); an active user has exactly ``user_email``; the source
    ``source_name`` (default ``settings.export.source_name``) has the Prospecting strategy; on request
    (``verify``), one test candidate is exported as that user and read back. Any failure raises a
    :class:`UserError` (or a :class:`HarvestError` for transport trouble) and stores nothing.
    ``client_kw`` (``http_client``, ``token_cache``, ``limiter``, ``breaker``, ``patient``, ``on_wait``:
    :meth:`shared.resources.Resources.harvest_options`) go to the Harvest client; the checks make about 30
    calls, so pass the shared limiter, and ``patient=True`` from a command so that a transient fault or a
    busy limit is waited out (said through ``on_wait``) rather than failing the connect.
    ``sleep``/``clock`` pace the read-back of the test candidate. ``tenant_id``: the platform customer the
    connection belongs to (the HTTP API's; None: an operator's connection).
    """
    name, client_id, user_email = name.strip(), client_id.strip(), user_email.strip()
    if not name or not client_id or not user_email or not client_secret.get_secret_value():
        raise UserError("connect needs --name, --client-id, --client-secret and --user-email (none empty)")
    policy = duplicate_policy_of(duplicate_policy)
    if verify is not None and verify != "prospect" and prospects_only:
        raise UserError("--verify-job cannot be used with --prospects-only; use --verify-prospect")
    encrypted = encrypt_secret(client_secret, settings.secret_key)  # fails before any network call
    source_name = (source_name or settings.export.source_name).strip()
    reader = HarvestClient(settings, Credential(client_id=client_id, client_secret=client_secret), **client_kw)
    log.info("connect %s: checking credential %s", name, client_id)
    try:
        checks.check_credential(reader)
        checked = run_checks(
            reader,
            user_email=user_email,
            source_name=source_name,
            verify=verify,
            readback_wait_s=readback_wait_s,
            readback_poll_s=readback_poll_s,
            sleep=sleep,
            clock=clock,
        )
    finally:
        reader.close()
    conn, created = save_connection(
        engine,
        name=name,
        client_id=client_id,
        encrypted=encrypted,
        user_email=user_email,
        user=checked.user,
        source=checked.source,
        prospects_only=prospects_only,
        enable_pools=enable_pools,
        duplicate_policy=policy,
        scopes=checked.scopes,
        fields=fields,
        tenant_id=tenant_id,
    )
    log.info("connect %s: stored (user id %s, source id %s)", name, checked.user.id, checked.source.id)
    return checked.result(conn, created, user_email)


@dataclass(frozen=True)
class Checked:
    """What the connect checks found: granted scopes, the acting user, the source, the test candidate."""

    scopes: list[str]
    user: User
    source: Source
    verified_candidate_id: int | None

    def result(self, conn: ConnectionRecord, created: bool, user_email: str) -> ConnectResult:
        """The :class:`ConnectResult` of a connection stored after these checks."""
        messages = [
            f"{'connected' if created else 'updated connection'} {conn.name} as {user_email} (id {self.user.id})"
        ]
        if self.verified_candidate_id is not None:
            messages.append(f"All good: test candidate exported with Greenhouse id {self.verified_candidate_id}")
        return ConnectResult(conn, self.user, self.source, created, self.verified_candidate_id, messages)


def run_checks(
    reader: HarvestClient,
    *,
    user_email: str,
    source_name: str,
    verify: Literal["prospect"] | int | None,
    readback_wait_s: float = DEFAULT_READBACK_WAIT_S,
    readback_poll_s: float = checks.READBACK_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Checked:
    """The checks every connect runs once it can call Greenhouse (custom or partner): every required scope
    (all missing ones named), the user whose email is exactly ``user_email``, the source, and on request
    (``verify``) one test candidate exported as that user and read back."""
    scopes = checks.check_scopes(reader)
    user = checks.find_user(reader, user_email)
    source = checks.find_source(reader, source_name)
    candidate_id = None
    if verify is not None:
        if verify != "prospect":
            check_job_open(int(verify), Lookups(reader, 0, None, 0))
        candidate_id = checks.verify_export(
            reader,
            target=verify,
            user=user,
            source=source,
            wait_s=readback_wait_s,
            poll_s=readback_poll_s,
            sleep=sleep,
            clock=clock,
        )
    return Checked(scopes, user, source, candidate_id)


def save_connection(
    engine: Engine,
    *,
    partner: PartnerGrant | None = None,
    name: str,
    client_id: str,
    encrypted: str,
    user_email: str,
    user: User,
    source: Source,
    prospects_only: bool,
    enable_pools: bool,
    duplicate_policy: DuplicatePolicy,
    scopes: list[str],
    fields: FieldSettings | None,
    tenant_id: str | None = None,
) -> tuple[ConnectionRecord, bool]:
    """Store connection ``name`` after its checks passed (:func:`shared.store.connections.save_connection`:
    inserted, or updated in place and live again; a partner's organization and grant in the same transaction;
    another tenant's name is a :class:`ConflictError`)."""
    return store.save_connection(
        engine,
        partner=partner,
        name=name,
        client_id=client_id,
        encrypted=encrypted,
        user_email=user_email,
        user_id=user.id,
        source_id=source.id,
        source_name=source.name,
        prospects_only=prospects_only,
        enable_pools=enable_pools,
        duplicate_policy=duplicate_policy.value,
        scopes=scopes,
        fields=fields.to_stored() if fields is not None else None,
        tenant_id=tenant_id,
    )


def duplicate_policy_of(value: DuplicatePolicy | str) -> DuplicatePolicy:
    """``value`` as a policy; :class:`UserError` naming the valid ones when it is none of them."""
    try:
        return DuplicatePolicy(value)
    except ValueError:
        valid = ", ".join(p.value for p in DuplicatePolicy)
        raise UserError(f"unknown duplicate policy {value!r}: use one of {valid}") from None


def configure(engine: Engine, name: str, **changes: Any) -> tuple[ConnectionRecord, FieldSettings]:
    """Change field settings of connection ``name`` (``changes``: :class:`FieldSettings` names and values;
    none given: nothing changes). Raises :class:`UserError` naming a bad setting, or for an unknown or
    removed connection. Items not yet exported use the new settings."""
    unknown = sorted(set(changes) - set(FieldSettings.model_fields))
    if unknown:
        raise UserError(f"unknown field setting {', '.join(unknown)}: use {', '.join(FieldSettings.model_fields)}")
    conn = store.find_connection(engine, name.strip())
    if conn is None or conn.removed_at is not None:
        raise ConnectionNotFoundError(f"no connection named {name!r}; see `ghexport connections`")
    current = FieldSettings.from_stored(conn.fields)
    try:
        updated = FieldSettings.model_validate({**current.model_dump(), **changes})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"field settings of {name}: {problems}") from None
    if updated != current:
        conn = store.set_fields(engine, conn.name, updated.to_stored())
    log.info("configure %s: %s", name, updated.describe())
    return conn, updated


def list_connections(engine: Engine, *, include_removed: bool = False) -> list[ConnectionRecord]:
    """Connections by name (removed ones only when asked)."""
    return store.list_connections(engine, include_removed=include_removed)


def get_connection(engine: Engine, name: str) -> ConnectionRecord:
    """The live connection called ``name``; :class:`ConnectionNotFoundError` when absent or removed."""
    conn = store.find_connection(engine, name)
    if conn is None or conn.removed_at is not None:
        state = "was removed" if conn is not None else "does not exist"
        raise ConnectionNotFoundError(f"connection {name} {state}; list connections with: ghexport connections")
    return conn


def load_connection(engine: Engine, connection_id: int) -> ConnectionRecord:
    """The connection with this id for a worker; :class:`ConnectionNotFoundError` ("connection removed")
    when it was removed, or when no such row exists."""
    conn = store.connection_by_id(engine, connection_id)
    if conn is None:
        raise ConnectionNotFoundError(f"connection {connection_id} does not exist")
    if conn.removed_at is not None:
        raise ConnectionNotFoundError(CONNECTION_REMOVED)
    return conn


def credential_for(conn: ConnectionRecord, settings: Settings) -> Credential:
    """The decrypted credential of ``conn``; :class:`ConfigurationError` when the key is missing or wrong."""
    secret = decrypt_secret(conn.client_secret_encrypted, settings.secret_key, connection=conn.name)
    return Credential(
        client_id=conn.client_id,
        client_secret=secret,
        organization_id=conn.organization_id if conn.is_partner else None,
    )


def reader_for(
    conn: ConnectionRecord,
    settings: Settings,
    *,
    tokens: AccessTokens | None = None,
    **client_kw: Unpack[TransportOptions],
) -> HarvestClient:
    """A :class:`HarvestClient` for ``conn`` without ``sub`` (lists need the service account); use
    ``.with_sub(conn.user_id)`` for writes. ``client_kw`` goes to the client (``http_client``, ``limiter``,
    ``breaker``, ``patient``...: :meth:`shared.resources.Resources.harvest_options`)."""
    if conn.is_partner and tokens is None:
        raise ConfigurationError(f"connection {conn.name} is a partner connection: its client needs the token keeper")
    return HarvestClient(settings, credential_for(conn, settings), tokens=tokens, **client_kw)


def disconnect(engine: Engine, name: str) -> int:
    """Remove connection ``name`` (soft): wipe its secret (and a partner connection's tokens), set
    ``removed_at``, and fail its ``queued`` / ``sending`` items with "connection removed". Returns how many
    items were failed."""
    failed = store.remove_connection(engine, name, CONNECTION_REMOVED_CAUSE, CONNECTION_REMOVED)
    log.info("disconnect %s: removed; %d unfinished items failed", name, failed)
    return failed


def connection_summary(conn: ConnectionRecord, grant: GrantRecord | None = None) -> dict[str, Any]:
    """A JSON-ready description of ``conn`` for operators; never the secret nor a token.

    ``state`` is ``connected`` for a custom connection and for a partner one whose grant Greenhouse still
    honours, ``needs_reauth`` (with ``state_reason`` and ``state_since``) when its consent is gone, and
    ``removed`` for a removed connection."""
    state, reason, since = "connected", None, None
    if grant is not None:
        state, reason = grant.state.value, grant.reason
        since = grant.since.isoformat() if grant.since else None
    if conn.removed_at is not None:
        state = "removed"
    return {
        "id": conn.id,
        "name": conn.name,
        "kind": conn.kind.value,
        "state": state,
        "state_reason": reason if state == "needs_reauth" else None,
        "state_since": since,
        "organization": (
            {"id": conn.organization_id, "name": conn.organization_name} if conn.organization_id is not None else None
        ),
        "acting_as": (
            {"user_id": grant.sub, "role": grant.user_role} if grant is not None and grant.sub is not None else None
        ),
        "client_id": conn.client_id,
        "user_email": conn.user_email,
        "user_id": conn.user_id,
        "source_id": conn.source_id,
        "source_name": conn.source_name,
        "prospects_only": conn.prospects_only,
        "pools_enabled": conn.pools_enabled,
        "duplicate_policy": conn.duplicate_policy.value,
        "scopes": list(conn.scopes),
        "fields": FieldSettings.from_stored(conn.fields).to_stored(),
        "created_at": conn.created_at.isoformat() if conn.created_at else None,
        "updated_at": conn.updated_at.isoformat() if conn.updated_at else None,
        "removed_at": conn.removed_at.isoformat() if conn.removed_at else None,
    }

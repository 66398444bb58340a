"""Tenancy: who may see what through the HTTP API, and the secrets that prove it.

A *tenant* is one customer organization of the platform (id: a slug, ``[a-z0-9][a-z0-9-]{0,62}``). Its
connections and batches carry its id, and an API key of the tenant sees nothing else: another tenant's
resource is *not found* (never "forbidden", so nothing says that it exists). A platform-admin key (no tenant)
sees every tenant's, and acts for one when it names it.

A connection a tenant creates under the local name ``N`` is stored as ``T:N`` (connection names stay globally
unique and operators see ``T:N`` in the CLI); the API shows and takes ``N`` only. Names given through the API
cannot contain ``:``, so no name reaches into another tenant's namespace.

Secrets, all from :mod:`secrets`:

- an API key is ``ghx_<8 lowercase letters or digits>_<43 urlsafe chars>`` (256 random bits); the store keeps
  its first 12 characters (the public *prefix*, to find and list it) and the SHA-256 of the whole key, compared
  in constant time (:func:`hmac.compare_digest`). The key itself is shown once and never stored nor logged.
- a callback signing secret is ``whsec_`` + base64 of 24 random bytes (the Standard Webhooks format),
  stored encrypted with ``GHX_SECRET_KEY`` (:mod:`shared.connections.crypto`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy.engine import Engine

from shared.connections.crypto import encrypt_secret
from shared.connections.service import get_connection, list_connections
from shared.errors import ConflictError, ConnectionNotFoundError, UserError
from shared.settings import Settings
from shared.store import batches
from shared.store import tenants as store
from shared.store.records import BatchRecord, ConnectionRecord
from shared.store.tenants import ApiKeyRecord, TenantRecord

TENANT_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CONNECTION_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""A connection name given through the API (no ``:``: that separates the tenant in the stored name)."""
KEY_PREFIX = "ghx_"
_PREFIX_CHARS = string.ascii_lowercase + string.digits
API_KEY_RE = re.compile(r"ghx_[a-z0-9]{8}_[A-Za-z0-9_-]{43}")
PREFIX_LEN = len(KEY_PREFIX) + 8
CALLBACK_SECRET_PREFIX = "whsec_"
MAX_URL_CHARS = 2000
HTTP_URL_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"
"""An absolute http(s) URL (what :func:`check_callback_url` accepts), for request schemas."""
_NO_KEY_HASH = hashlib.sha256(b"no such key").hexdigest()
"""Compared against when no key has the prefix, so an unknown prefix costs the same comparison."""


class BatchNotFoundError(UserError):
    """No batch of that id that the caller may see."""


class TenantNotFoundError(UserError):
    """No tenant of that id."""


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: the whole key (shown once) and what was stored of it."""

    key: SecretStr
    record: ApiKeyRecord


# --- ids and names -----------------------------------------------------------------------------------------


def check_tenant_id(value: str) -> str:
    """``value`` when it is a valid tenant id, else :class:`UserError` saying the rule."""
    if not TENANT_ID_RE.fullmatch(value):
        raise UserError(f"tenant id {value!r} must match {TENANT_ID_RE.pattern} (lowercase letters, digits, '-')")
    return value


def check_connection_name(value: str) -> str:
    """``value`` when it may name a connection created through the API, else :class:`UserError`."""
    if not CONNECTION_NAME_RE.fullmatch(value):
        raise UserError(f"connection name {value!r} must match {CONNECTION_NAME_RE.pattern}")
    return value


def stored_name(tenant_id: str | None, name: str) -> str:
    """The stored name of connection ``name`` of ``tenant_id`` (None, a platform admin's view: as given)."""
    return name if tenant_id is None else f"{tenant_id}:{name}"


def local_name(tenant_id: str | None, stored: str) -> str:
    """The name ``tenant_id`` knows a connection by (None: the stored name)."""
    return stored if tenant_id is None else stored.removeprefix(f"{tenant_id}:")


# --- ownership: another tenant's resource does not exist ------------------------------------------------------


def tenant_connection(engine: Engine, tenant_id: str | None, name: str) -> ConnectionRecord:
    """The live connection ``name`` as ``tenant_id`` sees it (None: every connection, by stored name);
    :class:`ConnectionNotFoundError` when it is absent, removed or another tenant's."""
    if tenant_id is not None and ":" in name:
        raise ConnectionNotFoundError(f"no connection named {name}")
    try:
        conn = get_connection(engine, stored_name(tenant_id, name))
    except ConnectionNotFoundError:
        raise ConnectionNotFoundError(f"no connection named {name}") from None
    if tenant_id is not None and conn.tenant_id != tenant_id:
        raise ConnectionNotFoundError(f"no connection named {name}")
    return conn


def tenant_connections(engine: Engine, tenant_id: str | None) -> list[ConnectionRecord]:
    """The live connections ``tenant_id`` sees (None: every one), by name."""
    return [c for c in list_connections(engine) if tenant_id is None or c.tenant_id == tenant_id]


def tenant_batch(engine: Engine, tenant_id: str | None, batch_id: str) -> BatchRecord:
    """Batch ``batch_id`` if ``tenant_id`` may see it (None: any); :class:`BatchNotFoundError` otherwise."""
    batch = batches.get_batch(engine, batch_id)
    if batch is None or (tenant_id is not None and batch.tenant_id != tenant_id):
        raise BatchNotFoundError(f"no batch {batch_id}")
    return batch


# --- tenants ------------------------------------------------------------------------------------------------


def create_tenant(engine: Engine, tenant_id: str, name: str | None = None) -> TenantRecord:
    """A new tenant (its name defaults to its id); :class:`ConflictError` when the id is taken."""
    check_tenant_id(tenant_id)
    display = (name or tenant_id).strip()
    if not display or len(display) > 200:
        raise UserError("a tenant name has 1 to 200 characters")
    return store.create_tenant(engine, tenant_id, display)


def require_tenant(engine: Engine, tenant_id: str) -> TenantRecord:
    """The tenant, or :class:`TenantNotFoundError`."""
    tenant = store.get_tenant(engine, tenant_id)
    if tenant is None:
        raise TenantNotFoundError(f"no tenant {tenant_id}; create it with: ghexport tenants create {tenant_id}")
    return tenant


# --- API keys -----------------------------------------------------------------------------------------------


def hash_api_key(key: str) -> str:
    """What the store keeps of a key: the SHA-256 (hex) of the whole key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, else None."""
    return key[:PREFIX_LEN] if API_KEY_RE.fullmatch(key) else None


def generate_api_key() -> str:
    """A new random key: ``ghx_`` + 8 lowercase letters or digits + ``_`` + 43 urlsafe characters."""
    prefix = "".join(secrets.choice(_PREFIX_CHARS) for _ in range(8))
    return f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


def create_api_key(engine: Engine, *, tenant_id: str | None, name: str = "") -> NewApiKey:
    """A new key of ``tenant_id`` (None: a platform-admin key); the tenant must exist."""
    if tenant_id is not None:
        require_tenant(engine, tenant_id)
    for _ in range(5):  # 36^8 prefixes: a collision is rare, and then another draw settles it
        key = generate_api_key()
        try:
            record = store.insert_api_key(
                engine, prefix=key[:PREFIX_LEN], key_hash=hash_api_key(key), tenant_id=tenant_id, name=name.strip()
            )
        except ConflictError:
            continue
        return NewApiKey(SecretStr(key), record)
    raise ConflictError("could not draw an unused API key prefix")  # pragma: no cover


def revoke_api_key(engine: Engine, prefix: str, *, tenant_id: str | None, admin: bool = False) -> ApiKeyRecord:
    """Revoke the key with ``prefix`` of ``tenant_id`` (``admin``: a platform-admin key; neither: any key);
    :class:`UserError` when no such key belongs there."""
    key = store.find_api_key(engine, prefix)
    if key is None or (tenant_id is not None and key.tenant_id != tenant_id) or (admin and key.tenant_id is not None):
        whose = f"tenant {tenant_id}" if tenant_id is not None else ("the platform admin" if admin else "anyone")
        raise UserError(f"no API key {prefix} of {whose}; list them with: ghexport api-keys list")
    revoked = store.revoke_api_key(engine, prefix)
    assert revoked is not None
    return revoked


def authenticate(engine: Engine, key: str) -> ApiKeyRecord | None:
    """The live (not revoked) key record ``key`` proves, or None. Constant-time on the hash; records the use."""
    prefix = key_prefix(key)
    record = store.find_api_key(engine, prefix) if prefix is not None else None
    expected = record.key_hash if record is not None else _NO_KEY_HASH
    matches = hmac.compare_digest(hash_api_key(key), expected)
    if record is None or not matches or record.revoked_at is not None:
        return None
    store.touch_api_key(engine, record.id)
    return record


# --- callbacks to the platform ------------------------------------------------------------------------------


def new_callback_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of 24 random bytes."""
    return CALLBACK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def check_callback_url(url: str) -> str:
    """``url`` when it is an absolute http(s) URL of at most 2000 characters, else :class:`UserError`."""
    url = url.strip()
    refusal = UserError(f"a callback URL must be an absolute http(s) URL of at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname  # parses the authority: a broken IPv6 literal raises here
    except ValueError:
        raise refusal from None
    if parts.scheme not in ("http", "https") or not host or len(url) > MAX_URL_CHARS:
        raise refusal
    return url


def register_callback(settings: Settings, engine: Engine, tenant_id: str, url: str) -> SecretStr:
    """Register ``url`` as the tenant's callback URL with a new signing secret, returned once (stored
    encrypted); registering again replaces both."""
    url = check_callback_url(url)
    secret = SecretStr(new_callback_secret())
    encrypted = encrypt_secret(secret, settings.secret_key)
    if store.set_callback(engine, tenant_id, url, encrypted) is None:
        raise TenantNotFoundError(f"no tenant {tenant_id}")
    return secret


def remove_callback(engine: Engine, tenant_id: str) -> None:
    """Stop the tenant's callbacks: URL and secret removed."""
    if store.set_callback(engine, tenant_id, None, "") is None:
        raise TenantNotFoundError(f"no tenant {tenant_id}")

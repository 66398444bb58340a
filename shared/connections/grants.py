"""Partner tokens kept alive for the whole cluster: one refresh at a time, the rotated token stored first.

Greenhouse's partner access tokens live an hour; refresh tokens are single use, rotate on every refresh and
die after 24 hours unused (``docs/harvest.md``). Every process of the cluster (workers, commands, the
platform's backend) asks :class:`GrantKeeper` for a connection's access token:

- a token valid beyond a margin (the smaller of ``GHX_HARVEST__TOKEN_REFRESH_MARGIN_S`` and a quarter of
  its life) is served from this process's memory, else from the store (another process may have refreshed);
- otherwise the process takes the connection's refresh lock in Redis (one holder in the cluster), reads the
  grant again (the previous holder may have refreshed: then its token is used, no second refresh), refreshes,
  and stores the rotated refresh token with the new access token (a compare-and-set on the grant's
  generation) **before** it uses the new access token;
- ``invalid_grant`` means the authorization is gone, unless the store shows a newer generation (someone
  else refreshed: use theirs). The grant becomes ``needs_reauth`` (with the reason and since when, logged
  once), its credential is held (:mod:`shared.harvest.holds`: its items wait, parked), and
  :class:`~shared.errors.ReauthRequiredError` is raised;
- a refresh whose answer is lost in transit (timeout, dropped connection) may have rotated the token at
  Greenhouse without us learning the new one. It is sent once more at once with the same refresh token:
  if Greenhouse never got the first, or forgives a reuse that close, it works. If Greenhouse answers
  ``invalid_grant``, the grant needs a new consent, and the reason says the answer was lost. Nothing else
  can recover it (refresh tokens are single use); refreshing well before expiry keeps this rare.

The workers' periodic turn (:func:`renew_due`) refreshes every grant older than
``GHX_PARTNER__REFRESH_EVERY_S``, so an idle connection's refresh token never reaches its 24 hours.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import redis
from sqlalchemy.engine import Engine

from shared.connections.crypto import decrypt_secret, encrypt_secret
from shared.errors import (
    NEEDS_REAUTH_CAUSE,
    ConfigurationError,
    GrantRefusedError,
    HarvestConnectionError,
    HarvestTimeoutError,
    ReauthRequiredError,
)
from shared.harvest.auth import Credential
from shared.harvest.holds import Holds, NoHolds
from shared.harvest.partner import PartnerOAuth, TokenSet
from shared.settings import Settings
from shared.store import grants as store
from shared.store import items as store_items
from shared.store.models import GrantState, aware, utcnow
from shared.store.records import ConnectionRecord, GrantRecord

log = logging.getLogger("ghexport.grants")

LOCK_PREFIX = "ghx:grant-refresh:"
LOST_ANSWER = "the refresh answer was lost in transit and Greenhouse no longer accepts the refresh token"


def margin_s(settings: Settings, grant: GrantRecord) -> float:
    """How long before its expiry an access token is refreshed: the setting, at most a quarter of its life."""
    margin = settings.harvest.token_refresh_margin_s
    if grant.access_expires_at is not None and grant.refreshed_at is not None:
        life = (aware(grant.access_expires_at) - aware(grant.refreshed_at)).total_seconds()
        margin = min(margin, max(0.0, life) / 4)
    return margin


@dataclass(frozen=True)
class _Cached:
    token: str
    usable_until: float
    """Epoch seconds: the expiry minus the margin."""


def reauth_reason(error: GrantRefusedError) -> str:
    """The needs_reauth reason for a refusal of the token endpoint (Greenhouse's words, no token)."""
    detail = f": {error.description}" if error.description else ""
    return f"Greenhouse refused the refresh token ({error.error}{detail})"


class GrantKeeper:
    """Access tokens of partner connections for one process (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        redis_client: redis.Redis | None,
        http: httpx.Client,
        *,
        holds: Holds | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.redis = redis_client
        self.http = http
        self.holds: Holds = holds or NoHolds()
        self._wall = wall
        self._cache: dict[int, _Cached] = {}
        self._lock = threading.Lock()
        self._conn_locks: dict[int, threading.Lock] = {}
        self.refreshes = 0
        """Refreshes this process made (tests and the bench read it)."""

    # --- what the Harvest client asks ------------------------------------------------------------------

    def tokens_for(self, conn: ConnectionRecord) -> ConnectionTokens:
        """The :class:`~shared.harvest.partner.AccessTokens` of ``conn`` for its Harvest client."""
        return ConnectionTokens(self, conn)

    def token(self, conn: ConnectionRecord) -> str:
        """An access token of ``conn`` valid beyond the margin; refreshed (cluster-wide, once) when needed."""
        cached = self._cache.get(conn.id)
        if cached is not None and self._wall() < cached.usable_until:
            return cached.token
        with self._conn_lock(conn.id):
            cached = self._cache.get(conn.id)
            if cached is not None and self._wall() < cached.usable_until:
                return cached.token
            stored = self._load(conn)
            usable = self._usable(stored)
            if usable is not None:
                return usable
            return self._refresh(conn, stored.grant.generation)

    def renew(self, conn: ConnectionRecord, stale: str) -> str:
        """Greenhouse answered 401 to ``stale``: a newer stored token, else a refresh (cluster-wide, once)."""
        with self._conn_lock(conn.id):
            self._cache.pop(conn.id, None)
            stored = self._load(conn)
            usable = self._usable(stored)
            if usable is not None and usable != stale:
                return usable
            return self._refresh(conn, stored.grant.generation, force=True)

    def refresh_now(self, conn: ConnectionRecord) -> bool:
        """Renew ``conn``'s refresh token now (the periodic turn); False when another process just did."""
        with self._conn_lock(conn.id):
            stored = self._load(conn)
            due_before = utcnow() - timedelta(seconds=self.settings.partner.refresh_every_s)
            if stored.grant.refreshed_at is not None and aware(stored.grant.refreshed_at) > due_before:
                return False
            self._refresh(conn, stored.grant.generation, force=True)
            return True

    def forget(self, connection_id: int) -> None:
        """Drop this process's copy of a connection's token (a new consent was stored)."""
        self._cache.pop(connection_id, None)

    # --- the refresh ------------------------------------------------------------------------------------

    def _conn_lock(self, connection_id: int) -> threading.Lock:
        with self._lock:
            return self._conn_locks.setdefault(connection_id, threading.Lock())

    def _load(self, conn: ConnectionRecord) -> store.GrantTokens:
        stored = store.load_tokens(self.engine, conn.id)
        if stored is None:
            raise ConfigurationError(
                f"connection {conn.name} has no partner authorization; run ghexport connect --partner"
            )
        if stored.grant.state is GrantState.NEEDS_REAUTH:
            raise ReauthRequiredError(_waiting(conn, stored.grant))
        return stored

    def _usable(self, stored: store.GrantTokens) -> str | None:
        """The stored access token when it is valid beyond the margin (cached for this process), else None."""
        grant = stored.grant
        if grant.access_expires_at is None or not stored.access_token_encrypted:
            return None
        usable_until = aware(grant.access_expires_at).timestamp() - margin_s(self.settings, grant)
        if self._wall() >= usable_until:
            return None
        token = decrypt_secret(stored.access_token_encrypted, self.settings.secret_key, connection="partner grant")
        self._cache[grant.connection_id] = _Cached(token.get_secret_value(), usable_until)
        return token.get_secret_value()

    def _refresh(self, conn: ConnectionRecord, seen: int, *, force: bool = False) -> str:
        """Under the cluster-wide lock: the token another process refreshed since generation ``seen`` was
        read, else (or with ``force``, unless a newer generation exists) a refresh of our own."""
        lock = self._cluster_lock(conn.id)
        if lock is not None and not lock.acquire(blocking=True):
            raise HarvestTimeoutError(f"waited too long for another process's token refresh of connection {conn.name}")
        try:
            stored = self._load(conn)
            if stored.grant.generation != seen or not force:  # another process may have refreshed meanwhile
                usable = self._usable(stored)
                if usable is not None:
                    return usable
            return self._rotate(conn, stored)
        finally:
            if lock is not None:
                with contextlib.suppress(redis.exceptions.LockError):  # expired: the next holder re-reads the store
                    lock.release()

    def _cluster_lock(self, connection_id: int) -> redis.lock.Lock | None:
        if self.redis is None:
            return None
        h = self.settings.harvest
        hold_s = 2 * (h.timeout_s + h.connect_timeout_s) + 10
        lock: redis.lock.Lock = self.redis.lock(
            f"{LOCK_PREFIX}{connection_id}", timeout=hold_s, blocking_timeout=hold_s
        )
        return lock

    def _rotate(self, conn: ConnectionRecord, stored: store.GrantTokens) -> str:
        """Refresh with the stored refresh token, store the rotated one, then hand out the access token."""
        grant = stored.grant
        refresh_token = decrypt_secret(stored.refresh_token_encrypted, self.settings.secret_key, connection=conn.name)
        oauth = self._oauth(conn)
        try:
            try:
                tokens = oauth.refresh(refresh_token)
            except (HarvestTimeoutError, HarvestConnectionError):
                log.warning("connection %s: the token refresh got no answer; sending it once more", conn.name)
                try:
                    tokens = oauth.refresh(refresh_token)
                except GrantRefusedError as exc:
                    raise self._gone(conn, grant, f"{LOST_ANSWER} ({exc.error})") from None
        except GrantRefusedError as exc:
            newer = store.load_tokens(self.engine, conn.id)
            if newer is not None and newer.grant.generation != grant.generation:
                usable = self._usable(newer)
                if usable is not None:
                    return usable
            raise self._gone(conn, grant, reauth_reason(exc)) from None
        self.refreshes += 1
        key = self.settings.secret_key
        stored_ok = store.store_refreshed(
            self.engine,
            grant.id,
            grant.generation,
            refresh_token_encrypted=encrypt_secret(tokens.refresh_token, key),
            access_token_encrypted=encrypt_secret(tokens.access_token, key),
            access_expires_at=datetime.fromtimestamp(tokens.expires_at, UTC),
        )
        if not stored_ok:  # a new consent was stored meanwhile: its tokens win
            log.warning("connection %s: a newer authorization was stored during a refresh; using it", conn.name)
            return self._usable(self._load(conn)) or tokens.access_token.get_secret_value()
        log.info("connection %s: access token refreshed (generation %d)", conn.name, grant.generation + 1)
        return self._cache_new(conn.id, tokens, grant)

    def _cache_new(self, connection_id: int, tokens: TokenSet, grant: GrantRecord) -> str:
        life = tokens.expires_at - self._wall()
        margin = min(self.settings.harvest.token_refresh_margin_s, max(0.0, life) / 4)
        token = tokens.access_token.get_secret_value()
        self._cache[connection_id] = _Cached(token, tokens.expires_at - margin)
        return token

    def _gone(self, conn: ConnectionRecord, grant: GrantRecord, reason: str) -> ReauthRequiredError:
        """Record that the grant needs a new consent (logged once), hold its items, and the error to raise."""
        self._cache.pop(conn.id, None)
        if store.mark_needs_reauth(self.engine, grant.id, grant.generation, reason):
            log.warning(
                "connection %s needs a new consent: %s; its items wait (connect again with: "
                "ghexport connect --partner --name %s)",
                conn.name,
                reason,
                conn.name,
            )
        self.holds.hold(conn.limit_key, f"needs_reauth: {reason}")
        error = ReauthRequiredError(f"connection {conn.name} needs a new consent: {reason}")
        store_items.mark_queued_waiting(self.engine, conn.id, NEEDS_REAUTH_CAUSE, str(error))
        return error

    def rejected(self, conn: ConnectionRecord, token: str) -> None:
        """Greenhouse answered 401 to a token just refreshed: the authorization is gone."""
        stored = self._load(conn)
        if self._usable(stored) == token:
            raise self._gone(conn, stored.grant, "Greenhouse answered 401 to a freshly refreshed access token")

    def _oauth(self, conn: ConnectionRecord) -> PartnerOAuth:
        secret = decrypt_secret(conn.client_secret_encrypted, self.settings.secret_key, connection=conn.name)
        return PartnerOAuth(
            self.http,
            Credential(client_id=conn.client_id, client_secret=secret),
            self.settings.harvest_token_url,
            self.settings.harvest_introspect_url,
            wall=self._wall,
        )


def _waiting(conn: ConnectionRecord, grant: GrantRecord) -> str:
    since = f" since {aware(grant.since).isoformat(timespec='seconds')}" if grant.since else ""
    return f"connection {conn.name} needs a new consent{since}: {grant.reason or 'authorization gone'}"


@dataclass(frozen=True)
class ConnectionTokens:
    """One connection's view of the keeper: :class:`~shared.harvest.partner.AccessTokens`."""

    keeper: GrantKeeper
    conn: ConnectionRecord

    def token(self) -> str:
        """The access token to send now."""
        return self.keeper.token(self.conn)

    def renew(self, stale: str) -> str:
        """A fresher token after a 401 to ``stale``."""
        return self.keeper.renew(self.conn, stale)

    def rejected(self, token: str) -> None:
        """A fresh token was answered 401 too: the consent is gone (raises ReauthRequiredError)."""
        self.keeper.rejected(self.conn, token)


def encrypted_tokens(tokens: TokenSet, settings: Settings) -> tuple[str, str, datetime]:
    """A token answer as stored: encrypted refresh token, encrypted access token, expiry."""
    key = settings.secret_key
    return (
        encrypt_secret(tokens.refresh_token, key),
        encrypt_secret(tokens.access_token, key),
        datetime.fromtimestamp(tokens.expires_at, UTC),
    )

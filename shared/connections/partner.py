"""Partner connections: the customer's OAuth consent in two steps, for the CLI and for the platform's backend.

:func:`begin_partner_consent` records what the connect asks for under a random, single-use ``state`` (only
its SHA-256 is stored) that expires after ``GHX_PARTNER__CONSENT_TIMEOUT_S``, and returns Greenhouse's
authorization URL. The customer consents in a browser; Greenhouse redirects to the redirect URI with
``code`` and ``state`` (or ``error``). :func:`complete_partner_consent` takes that redirect's parameters,
uses the ``state`` up (wrong, used or expired: one line naming the cause, nothing stored), exchanges the
code at once (it lives a minute), introspects the token (the customer's organization, who acts, the
scopes), runs the same checks as a custom connect, and stores the connection with its tokens encrypted.
Connecting again under the same name renews the connection's authorization (only for the same
organization), clears ``needs_reauth`` and lets its waiting items go on.

``ghexport connect --partner`` calls both, serving a loopback redirect URI itself; a web backend receiving
the redirect calls :func:`complete_partner_consent` from its handler (the HTTP API will expose both).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Unpack

from pydantic import SecretStr
from sqlalchemy.engine import Engine

from shared.connections.crypto import decrypt_secret, encrypt_secret
from shared.connections.grants import encrypted_tokens
from shared.connections.service import (
    DEFAULT_READBACK_WAIT_S,
    ConnectResult,
    PartnerGrant,
    duplicate_policy_of,
    run_checks,
    save_connection,
)
from shared.errors import ConnectionNotFoundError, ConsentError, GrantRefusedError, UserError
from shared.harvest.auth import Credential
from shared.harvest.client import HarvestClient
from shared.harvest.holds import Holds
from shared.harvest.partner import PartnerOAuth, authorize_url, callback_code, new_state, require_redirect
from shared.harvest.scopes import REQUIRED
from shared.harvest.transport import TransportOptions
from shared.profiles.fields import FieldSettings
from shared.settings import Settings
from shared.store import grants as store
from shared.store.models import ConsentRequest, DuplicatePolicy, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartnerConsent:
    """A consent begun: the URL to send the customer's browser to, the ``state`` it carries, its expiry."""

    authorize_url: str
    state: str
    redirect_uri: str
    expires_at: datetime


def required_scopes() -> list[str]:
    """The scopes the exporter asks a customer to grant (every one ``connect`` checks), in a stable order."""
    return sorted({p.scope for p in REQUIRED})


def state_hash(state: str) -> str:
    """What the store keeps of a ``state`` (a leaked table cannot complete a consent)."""
    return hashlib.sha256(state.encode()).hexdigest()


def begin_partner_consent(
    settings: Settings,
    engine: Engine,
    *,
    name: str,
    client_id: str,
    client_secret: SecretStr,
    user_email: str,
    redirect_uri: str | None = None,
    source_name: str | None = None,
    prospects_only: bool = False,
    enable_pools: bool = False,
    duplicate_policy: DuplicatePolicy | str = DuplicatePolicy.LINK,
    fields: FieldSettings | None = None,
    verify: Literal["prospect"] | int | None = None,
    tenant_id: str | None = None,
    return_url: str | None = None,
) -> PartnerConsent:
    """Record a partner connect and return Greenhouse's authorization URL for the customer's consent.

    ``tenant_id`` (the platform customer the connection will belong to) and ``return_url`` (where the HTTP
    API's consent callback sends the browser back) are remembered with the request. Raises
    :class:`UserError` for empty or contradictory options (before anything is recorded) and
    :class:`~shared.errors.ConfigurationError` without a usable ``GHX_SECRET_KEY``."""
    name, client_id, user_email = name.strip(), client_id.strip(), user_email.strip()
    if not name or not client_id or not user_email or not client_secret.get_secret_value():
        raise UserError("connect --partner needs --name, --client-id, --client-secret and --user-email (none empty)")
    if verify is not None and verify != "prospect" and prospects_only:
        raise UserError("--verify-job cannot be used with --prospects-only; use --verify-prospect")
    policy = duplicate_policy_of(duplicate_policy)
    redirect = require_redirect(redirect_uri or settings.partner.redirect_uri)
    state = new_state()
    expires_at = utcnow() + timedelta(seconds=settings.partner.consent_timeout_s)
    options: dict[str, Any] = {
        "user_email": user_email,
        "source_name": (source_name or settings.export.source_name).strip(),
        "prospects_only": prospects_only,
        "enable_pools": enable_pools,
        "duplicate_policy": policy.value,
        "fields": fields.to_stored() if fields is not None else None,
        "verify": verify,
        "tenant_id": tenant_id,
        "return_url": return_url,
    }
    store.save_consent_request(
        engine,
        ConsentRequest(
            state_hash=state_hash(state),
            connection_name=name,
            client_id=client_id,
            client_secret_encrypted=encrypt_secret(client_secret, settings.secret_key),
            redirect_uri=redirect,
            options=options,
            expires_at=expires_at,
        ),
    )
    url = authorize_url(settings.harvest_authorize_url, client_id, redirect, required_scopes(), state)
    log.info("connect --partner %s: consent begun (client %s, redirect %s)", name, client_id, redirect)
    return PartnerConsent(url, state, redirect, expires_at)


_REFUSALS = {
    store.CONSENT_UNKNOWN: "the consent answer's state matches no connect in progress (a wrong or forged state)",
    store.CONSENT_USED: "the consent answer's state was already used (each consent completes once)",
    store.CONSENT_EXPIRED: "the consent answer came after its state expired (GHX_PARTNER__CONSENT_TIMEOUT_S)",
}


def complete_partner_consent(
    settings: Settings,
    engine: Engine,
    params: Mapping[str, str],
    *,
    holds: Holds | None = None,
    readback_wait_s: float = DEFAULT_READBACK_WAIT_S,
    **client_kw: Unpack[TransportOptions],
) -> ConnectResult:
    """Finish a partner connect from the redirect's query parameters (``code`` and ``state``, or ``error``).

    Every refusal raises :class:`ConsentError` with one line naming the cause, and nothing is stored: a
    wrong, used or expired ``state``, a denied consent, a code Greenhouse refuses (used, expired), an
    inactive token; the connect checks raise as for a custom connect. ``holds``: the cluster's credential
    holds, lifted for the connection (its waiting items go on at once)."""
    state = params.get("state") or ""
    taken = store.take_consent_request(engine, state_hash(state)) if state else store.ConsentTaken(None, "unknown")
    if taken.request is None:
        raise ConsentError(
            f"{_REFUSALS[taken.refusal or store.CONSENT_UNKNOWN]}; run connect --partner again; nothing was stored"
        )
    request = taken.request
    code = callback_code(params)
    secret = decrypt_secret(request.client_secret_encrypted, settings.secret_key, connection=request.connection_name)
    credential = Credential(client_id=request.client_id, client_secret=secret)
    http = client_kw.get("http_client")
    if http is None:
        raise UserError("complete_partner_consent needs the process's http_client (Resources.harvest_options())")
    oauth = PartnerOAuth(http, credential, settings.harvest_token_url, settings.harvest_introspect_url)
    try:
        tokens = oauth.exchange_code(code, request.redirect_uri)
    except GrantRefusedError as exc:
        detail = f": {exc.description}" if exc.description else ""
        raise ConsentError(
            f"Greenhouse refused the authorization code ({exc.error}{detail}); a code works once and within a "
            "minute: run connect --partner again; nothing was stored"
        ) from None
    seen = oauth.introspect(tokens.access_token)
    if not seen.active or seen.organization_id is None:
        raise ConsentError("Greenhouse reports the new token inactive or without an organization; nothing was stored")
    name = request.connection_name
    _same_organization(engine, name, seen.organization_id, seen.organization_name)
    options = request.options
    reader = HarvestClient(
        settings,
        credential.model_copy(update={"organization_id": seen.organization_id}),
        tokens=_StaticTokens(tokens.access_token.get_secret_value()),
        **client_kw,
    )
    log.info("connect --partner %s: organization %s (%s), acting as user %s", name, seen.organization_id,
             seen.organization_name, seen.sub)  # fmt: skip
    try:
        checked = run_checks(
            reader,
            user_email=options["user_email"],
            source_name=options["source_name"],
            verify=options.get("verify"),
            readback_wait_s=readback_wait_s,
        )
    finally:
        reader.close()
    refresh_enc, access_enc, access_expires_at = encrypted_tokens(tokens, settings)
    fields = options.get("fields")
    conn, created = save_connection(
        engine,
        partner=PartnerGrant(
            organization_id=seen.organization_id,
            organization_name=seen.organization_name,
            sub=seen.sub,
            user_role=seen.user_role,
            scopes=sorted(seen.scopes) or checked.scopes,
            refresh_token_encrypted=refresh_enc,
            access_token_encrypted=access_enc,
            access_expires_at=access_expires_at,
        ),
        name=name,
        client_id=request.client_id,
        encrypted=request.client_secret_encrypted,
        user_email=options["user_email"],
        user=checked.user,
        source=checked.source,
        prospects_only=bool(options["prospects_only"]),
        enable_pools=bool(options["enable_pools"]),
        duplicate_policy=DuplicatePolicy(options["duplicate_policy"]),
        scopes=checked.scopes,
        fields=FieldSettings.from_stored(fields) if fields is not None else None,
        tenant_id=options.get("tenant_id"),
    )
    if holds is not None and holds.lift(conn.limit_key):
        log.info("connect --partner %s: consent restored; its waiting items go on", name)
    result = checked.result(conn, created, options["user_email"])
    org = f"{seen.organization_name} ({seen.organization_id})" if seen.organization_name else str(seen.organization_id)
    result.messages.insert(
        1,
        f"Greenhouse organization {org}: records are written as the user who consented (id {seen.sub}, a service "
        f"account or that user) and name {options['user_email']} as recruiter or prospect owner",
    )
    return result


def _same_organization(engine: Engine, name: str, organization_id: int, organization_name: str | None) -> None:
    """A connection renewed by a new consent must stay with its customer: refuse another organization's."""
    from shared.connections.service import get_connection

    try:
        conn = get_connection(engine, name)
    except ConnectionNotFoundError:
        return
    if conn.organization_id is not None and conn.organization_id != organization_id:
        raise ConsentError(
            f"connection {name} belongs to Greenhouse organization {conn.organization_id}, but the consent came from "
            f"organization {organization_id} ({organization_name}); connect it under another --name; nothing was stored"
        )


class _StaticTokens:
    """The access token of a consent being completed (not stored yet): no refresh during the checks."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def renew(self, stale: str) -> str:
        return self._token

    def rejected(self, token: str) -> None:
        """Nothing to record: the connect fails with the 401."""

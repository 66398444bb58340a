"""Connections of the calling tenant: connect (custom, or partner consent), list, get, remove, and what a
connection can export to (open jobs, prospect pools), and the secret of its Greenhouse webhook.

A tenant's connection ``N`` is stored as ``T:N`` (:mod:`shared.connections.tenancy`); routes take and show
``N``. Another tenant's connection is 404. The partner consent is two requests: ``POST
/v1/connections/partner`` (the authorization URL for the customer's browser) and the browser's redirect to
``GET /v1/partner/consent-callback`` (no API key: the consent's single-use ``state`` is the proof), which
completes the connect and sends the browser back to the platform's ``return_url`` with
``?connection=N&status=connected`` or ``?error=<cause>``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from producer import api
from producer.web.deps import ResDep, ScopeDep
from producer.web.problems import Problem, problem_responses
from shared.connections import tenancy
from shared.connections.partner import state_hash
from shared.connections.service import connect, connection_summary, disconnect
from shared.connections.webhooks import set_webhook_secret
from shared.errors import ConnectCheckError, ConsentError
from shared.profiles.fields import FieldSettings
from shared.resources import Resources
from shared.store.grants import grant_states
from shared.store.records import ConnectionRecord
from shared.store.tenants import consent_context

log = logging.getLogger(__name__)

router = APIRouter(tags=["connections"], responses=problem_responses(401, 404))
consent_router = APIRouter(tags=["connections"])

CONSENT_CALLBACK_PATH = "/v1/partner/consent-callback"
_NAME_PATTERN = f"^{tenancy.CONNECTION_NAME_RE.pattern}$"


class ConnectIn(BaseModel):
    """The options of ``ghexport connect``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN, description="The connection's name for this tenant.", examples=["main"])
    client_id: str = Field(min_length=1, max_length=500, description="Harvest v3 (OAuth) client id.")
    client_secret: SecretStr = Field(min_length=1, max_length=1000, description="Harvest v3 (OAuth) client secret.")
    user_email: str = Field(
        min_length=3, max_length=320, description="The acting Greenhouse user's email, exactly (case sensitive)."
    )
    source_name: str | None = Field(default=None, max_length=200, description="Default: GHX_EXPORT__SOURCE_NAME.")
    prospects_only: bool = False
    enable_pools: bool = False
    on_duplicate: Literal["link", "create", "skip"] = "link"
    verify_prospect: bool = Field(default=False, description="Export a test prospect and read it back.")
    verify_job: int | None = Field(default=None, gt=0, description="Export a test candidate to this open job.")
    fields: FieldSettings | None = Field(default=None, description="Which optional parts to send (default: all).")

    @model_validator(mode="after")
    def _one_verification(self) -> ConnectIn:
        if self.verify_prospect and self.verify_job is not None:
            raise ValueError("use either verify_prospect or verify_job, not both")
        return self

    def options(self, tenant_id: str | None) -> dict[str, Any]:
        """The keyword options of :func:`shared.connections.service.connect` (the name stored for the tenant)."""
        return {
            "name": tenancy.stored_name(tenant_id, self.name),
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "user_email": self.user_email,
            "source_name": self.source_name,
            "prospects_only": self.prospects_only,
            "enable_pools": self.enable_pools,
            "duplicate_policy": self.on_duplicate,
            "fields": self.fields,
            "verify": "prospect" if self.verify_prospect else self.verify_job,
        }


class PartnerConnectIn(ConnectIn):
    """A partner connect: the options of ``ghexport connect --partner``, and where the browser goes back to."""

    return_url: str = Field(
        max_length=tenancy.MAX_URL_CHARS,
        pattern=tenancy.HTTP_URL_PATTERN,
        description="The platform's page the customer's browser is sent back to once the consent is done.",
        examples=["https://platform.example/settings/greenhouse"],
    )


class Connected(BaseModel):
    """A connection stored (``created`` false: an existing one was updated)."""

    connection: dict[str, Any]
    created: bool
    verified_candidate_id: int | None
    messages: list[str]


class ConsentBegun(BaseModel):
    """Send the customer's browser to ``authorize_url`` before ``expires_at``."""

    authorize_url: str
    expires_at: datetime
    redirect_uri: str = Field(description="The consent callback Greenhouse redirects to (registered with it).")


class ConnectionList(BaseModel):
    connections: list[dict[str, Any]]


class Removed(BaseModel):
    name: str
    removed: Literal[True] = True
    items_failed: int


class Jobs(BaseModel):
    jobs: list[dict[str, Any]]


class Pools(BaseModel):
    pools: list[dict[str, Any]]


class WebhookSecretIn(BaseModel):
    """The secret key configured on the customer's Greenhouse webhook (Configure > Dev Center > Web Hooks)."""

    model_config = ConfigDict(extra="forbid")

    secret: SecretStr = Field(min_length=1, max_length=1000)


class WebhookConfigured(BaseModel):
    connection: str
    webhook_url: str = Field(description="The endpoint to configure on the Greenhouse webhook.")


def summary(res: Resources, tenant_id: str | None, conn: ConnectionRecord) -> dict[str, Any]:
    """The connection as ``connections --json`` shows it, named as the tenant knows it."""
    doc = connection_summary(conn, grant_states(res.engine).get(conn.id))
    return {**doc, "name": tenancy.local_name(tenant_id, conn.name)}


@router.post(
    "/connections",
    status_code=status.HTTP_201_CREATED,
    summary="Connect a Greenhouse account (custom credential)",
    responses={200: {"description": "An existing connection was updated"}, **problem_responses(409, 422, 502, 503)},
)
def create_connection(body: ConnectIn, res: ResDep, scope: ScopeDep, response: Response) -> Connected:
    """Check the credential, its scopes, the user and the source (as ``ghexport connect``), then store it."""
    result = connect(res.settings, res.engine, **body.options(scope), tenant_id=scope, **res.harvest_options())
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return Connected(
        connection=summary(res, scope, result.connection),
        created=result.created,
        verified_candidate_id=result.verified_candidate_id,
        messages=result.messages,
    )


@router.post(
    "/connections/partner",
    status_code=status.HTTP_201_CREATED,
    summary="Begin a partner connection: the customer's consent",
    responses=problem_responses(400, 422),
)
def begin_partner(body: PartnerConnectIn, res: ResDep, scope: ScopeDep) -> ConsentBegun:
    """Record the connect and answer Greenhouse's authorization URL; the consent callback completes it."""
    return_url = tenancy.check_callback_url(body.return_url)
    redirect_uri = res.settings.api.base_url + CONSENT_CALLBACK_PATH
    consent = api.begin_partner_consent(
        res, **body.options(scope), redirect_uri=redirect_uri, tenant_id=scope, return_url=return_url
    )
    return ConsentBegun(authorize_url=consent.authorize_url, expires_at=consent.expires_at, redirect_uri=redirect_uri)


@consent_router.get(
    "/partner/consent-callback",
    status_code=status.HTTP_303_SEE_OTHER,
    summary="The consent's browser redirect (no API key)",
    response_class=RedirectResponse,
    responses={
        303: {"description": "Back to the platform's return_url with ?connection=&status=connected or ?error="},
        **problem_responses(400),
    },
)
def consent_callback(
    res: ResDep,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=500)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=2000)] = None,
) -> RedirectResponse:
    """Complete a consent begun through this API, then send the browser back to its ``return_url``."""
    context = consent_context(res.engine, state_hash(state)) if state else None
    return_url = context.options.get("return_url") if context is not None else None
    if context is None or not return_url:  # never redirect anywhere a request names: only to a stored URL
        raise Problem(400, "this consent answer matches no consent begun through the API", slug="consent-unknown")
    tenant_id = context.options.get("tenant_id")
    if error:
        cause = error[:100]
    elif context.used:
        cause = "consent_used"
    elif context.expired:
        cause = "consent_expired"
    else:
        cause = None
    if cause is None:
        params = {k: v for k, v in (("code", code), ("state", state)) if v is not None}
        try:
            result = api.complete_partner_consent(res, params)
        except ConsentError:
            cause = "consent_failed"
        except ConnectCheckError:
            cause = "checks_failed"
        except Exception as exc:  # any other failure still sends the customer back, with a cause
            log.warning("consent callback: the connect failed (%s)", type(exc).__name__)
            cause = "connect_failed"
        else:
            name = tenancy.local_name(tenant_id, result.connection.name)
            return RedirectResponse(_with_query(return_url, connection=name, status="connected"), status_code=303)
    return RedirectResponse(_with_query(return_url, error=cause), status_code=303)


def _with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query (its own parameters kept)."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


@router.get("/connections", summary="List connections")
def list_connections(res: ResDep, scope: ScopeDep) -> ConnectionList:
    """The tenant's live connections (never a secret)."""
    grants = grant_states(res.engine)
    rows = [
        {**connection_summary(c, grants.get(c.id)), "name": tenancy.local_name(scope, c.name)}
        for c in tenancy.tenant_connections(res.engine, scope)
    ]
    return ConnectionList(connections=rows)


@router.get("/connections/{name}", summary="Get a connection")
def get_connection(name: str, res: ResDep, scope: ScopeDep) -> dict[str, Any]:
    """The connection as ``connections --json`` shows it."""
    return summary(res, scope, tenancy.tenant_connection(res.engine, scope, name))


@router.delete("/connections/{name}", summary="Remove a connection")
def delete_connection(name: str, res: ResDep, scope: ScopeDep) -> Removed:
    """Remove it: its secret is wiped, its queued and sending items fail with ``connection_removed``."""
    conn = tenancy.tenant_connection(res.engine, scope, name)
    return Removed(name=name, items_failed=disconnect(res.engine, conn.name))


@router.get("/connections/{name}/jobs", summary="Open jobs", responses=problem_responses(502, 503))
def jobs(name: str, res: ResDep, scope: ScopeDep) -> Jobs:
    """The open jobs of the connection's Greenhouse (export targets of kind ``job``)."""
    conn = tenancy.tenant_connection(res.engine, scope, name)
    return Jobs(jobs=api.open_jobs(res, conn.name))


@router.get("/connections/{name}/pools", summary="Prospect pools", responses=problem_responses(502, 503))
def pools(name: str, res: ResDep, scope: ScopeDep) -> Pools:
    """The prospect pools of the connection's Greenhouse with their stages (targets of kind ``prospect``)."""
    conn = tenancy.tenant_connection(res.engine, scope, name)
    return Pools(pools=api.prospect_pools(res, conn.name))


@router.put("/connections/{name}/greenhouse-webhook", summary="Store the Greenhouse webhook's secret")
def put_webhook_secret(name: str, body: WebhookSecretIn, res: ResDep, scope: ScopeDep) -> WebhookConfigured:
    """Store (encrypted) the secret key of the customer's Greenhouse webhook; Greenhouse signs with it."""
    conn = tenancy.tenant_connection(res.engine, scope, name)
    set_webhook_secret(res.settings, res.engine, conn.name, body.secret)
    url = f"{res.settings.api.base_url}/v1/greenhouse/webhooks/{quote(conn.name, safe='')}"
    return WebhookConfigured(connection=name, webhook_url=url)

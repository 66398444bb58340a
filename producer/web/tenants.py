"""Tenants (platform admin) and a tenant's callback URL.

``POST /v1/tenants``, ``GET /v1/tenants``: platform-admin keys only. ``GET /v1/tenants/{id}``: an admin key,
or the tenant's own key (another tenant's id: 404). ``PUT /v1/callbacks`` registers the tenant's callback URL
and answers its signing secret, the only time it is shown (registering again draws a new one);
``GET /v1/callbacks`` shows the URL only; ``DELETE /v1/callbacks`` stops the callbacks.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from producer.web.deps import AdminDep, CallerDep, ResDep, TenantDep
from producer.web.problems import not_found, problem_responses
from shared.connections import tenancy
from shared.store import tenants as store
from shared.store.tenants import TenantRecord

router = APIRouter(tags=["tenants"], responses=problem_responses(401))


class TenantIn(BaseModel):
    """A new tenant: the platform's id for the customer (a slug) and a display name."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=f"^{tenancy.TENANT_ID_RE.pattern}$", examples=["acme"])
    name: str | None = Field(default=None, min_length=1, max_length=200)


class TenantOut(BaseModel):
    """A tenant (its callback secret is never shown again)."""

    id: str
    name: str
    callback_url: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: TenantRecord) -> TenantOut:
        return cls(
            id=record.id,
            name=record.name,
            callback_url=record.callback_url,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class TenantList(BaseModel):
    tenants: list[TenantOut]


class CallbackIn(BaseModel):
    """Where the tenant's signed callbacks go."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=tenancy.MAX_URL_CHARS, pattern=tenancy.HTTP_URL_PATTERN, examples=["https://platform.example/hooks"]
    )


class CallbackRegistered(BaseModel):
    """The registered URL and its Standard Webhooks signing secret (shown this once)."""

    url: str
    secret: str = Field(description="whsec_...: verify each callback's webhook-signature with it.")


class CallbackOut(BaseModel):
    url: str | None


@router.post(
    "/tenants",
    status_code=status.HTTP_201_CREATED,
    summary="Create a tenant (admin)",
    responses=problem_responses(403, 409, 422),
)
def create_tenant(body: TenantIn, res: ResDep, _admin: AdminDep) -> TenantOut:
    """A new tenant; 409 when the id is taken."""
    return TenantOut.of(tenancy.create_tenant(res.engine, body.id, body.name))


@router.get("/tenants", summary="List tenants (admin)", responses=problem_responses(403))
def list_tenants(res: ResDep, _admin: AdminDep) -> TenantList:
    """Every tenant, by id."""
    return TenantList(tenants=[TenantOut.of(t) for t in store.list_tenants(res.engine)])


@router.get("/tenants/{tenant_id}", summary="Get a tenant", responses=problem_responses(404))
def get_tenant(tenant_id: str, res: ResDep, who: CallerDep) -> TenantOut:
    """The tenant: for an admin key, or the tenant's own key."""
    record = store.get_tenant(res.engine, tenant_id)
    if record is None or (not who.is_admin and who.tenant_id != tenant_id):
        raise not_found(f"tenant {tenant_id}")
    return TenantOut.of(record)


@router.put(
    "/callbacks",
    summary="Register the callback URL; answers its signing secret once",
    responses=problem_responses(400, 404, 422),
)
def register_callback(body: CallbackIn, res: ResDep, tenant: TenantDep) -> CallbackRegistered:
    """Register (or replace) the tenant's callback URL with a new signing secret."""
    secret = tenancy.register_callback(res.settings, res.engine, tenant, body.url)
    return CallbackRegistered(url=tenancy.check_callback_url(body.url), secret=secret.get_secret_value())


@router.get("/callbacks", summary="The callback URL", responses=problem_responses(400, 404))
def get_callback(res: ResDep, tenant: TenantDep) -> CallbackOut:
    """The tenant's callback URL (null when none); the secret is never shown again."""
    record = tenancy.require_tenant(res.engine, tenant)
    return CallbackOut(url=record.callback_url)


@router.delete(
    "/callbacks",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop the callbacks",
    responses=problem_responses(400, 404),
)
def delete_callback(res: ResDep, tenant: TenantDep) -> Response:
    """Remove the tenant's callback URL and secret: no more callbacks are written for it."""
    tenancy.remove_callback(res.engine, tenant)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

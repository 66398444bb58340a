"""API keys over HTTP (platform-admin keys only), as ``ghexport api-keys`` does on the command line.

``POST /v1/api-keys`` answers the new key once (only its SHA-256 is stored); ``GET /v1/api-keys`` lists
prefixes, names, creation, last use and revocation; ``DELETE /v1/api-keys/{prefix}`` revokes (at once: the
next request with that key gets 401).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from producer.web.deps import AdminDep, ResDep
from producer.web.problems import not_found, problem_responses
from shared.connections import tenancy
from shared.errors import UserError
from shared.store import tenants as store
from shared.store.tenants import ApiKeyRecord

router = APIRouter(tags=["api keys"], responses=problem_responses(401, 403))


class ApiKeyIn(BaseModel):
    """A new key: of a tenant (``tenant_id``), or a platform-admin key (``admin: true``)."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(default=None, pattern=f"^{tenancy.TENANT_ID_RE.pattern}$")
    admin: bool = False
    name: str = Field(default="", max_length=200, description="What the key is for (shown in lists).")

    @model_validator(mode="after")
    def _one_owner(self) -> ApiKeyIn:
        if (self.tenant_id is None) == (not self.admin):
            raise ValueError("give either tenant_id or admin: true")
        return self


class ApiKeyOut(BaseModel):
    """A key as listed: never the key itself."""

    prefix: str
    tenant_id: str | None
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> ApiKeyOut:
        return cls(
            prefix=record.prefix,
            tenant_id=record.tenant_id,
            name=record.name,
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
        )


class ApiKeyCreated(ApiKeyOut):
    """The new key: ``key`` is shown this once."""

    key: str


class ApiKeyList(BaseModel):
    api_keys: list[ApiKeyOut]


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (admin)",
    responses=problem_responses(404, 422),
)
def create_api_key(body: ApiKeyIn, res: ResDep, _admin: AdminDep) -> ApiKeyCreated:
    """A new key of the tenant (404 for an unknown tenant) or a platform-admin key."""
    new = tenancy.create_api_key(res.engine, tenant_id=body.tenant_id, name=body.name)
    return ApiKeyCreated(**ApiKeyOut.of(new.record).model_dump(), key=new.key.get_secret_value())


@router.get("/api-keys", summary="List API keys (admin)")
def list_api_keys(
    res: ResDep,
    _admin: AdminDep,
    tenant_id: Annotated[str | None, Query(description="Only this tenant's keys.")] = None,
) -> ApiKeyList:
    """Keys, oldest first (every key, or one tenant's)."""
    return ApiKeyList(api_keys=[ApiKeyOut.of(k) for k in store.list_api_keys(res.engine, tenant_id=tenant_id)])


@router.delete("/api-keys/{prefix}", summary="Revoke an API key (admin)", responses=problem_responses(404))
def revoke_api_key(prefix: str, res: ResDep, _admin: AdminDep) -> ApiKeyOut:
    """Revoke the key with this prefix (revoking again changes nothing)."""
    try:
        return ApiKeyOut.of(tenancy.revoke_api_key(res.engine, prefix, tenant_id=None))
    except UserError:
        raise not_found(f"API key {prefix}") from None

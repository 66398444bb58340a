"""Who calls, and for which tenant: the dependencies every authenticated route declares.

``Authorization: Bearer <API key>``: :func:`caller` proves the key (constant-time hash comparison, revoked keys
refused) and answers 401 otherwise, the same problem whether the key is missing, malformed, unknown or revoked.
:func:`tenant_of` is the scope a route works in: a tenant key's own tenant, or for a platform-admin key the
tenant named by the ``X-Tenant`` header (None without it: every tenant, connections by their stored names).
:func:`tenant_required` insists on a tenant (callback registration). A tenant key naming another tenant in
``X-Tenant`` gets 404, as for any resource of another tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producer.web.problems import Problem, not_found
from shared.connections.tenancy import authenticate
from shared.resources import Resources
from shared.store.tenants import get_tenant

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ghx_...`")


def get_res(request: Request) -> Resources:
    """The process's resources (built once by ``ghexport api``, or given to ``create_app`` by a test)."""
    res: Resources = request.app.state.res
    return res


ResDep = Annotated[Resources, Depends(get_res)]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the API key's tenant (None: a platform-admin key) and the key's public prefix."""

    tenant_id: str | None
    key_prefix: str

    @property
    def is_admin(self) -> bool:
        """A platform-admin key: every tenant's resources, and tenant administration."""
        return self.tenant_id is None


def _unauthorized() -> Problem:
    return Problem(
        401,
        "a valid API key is required: Authorization: Bearer <key>",
        slug="unauthorized",
        headers={"WWW-Authenticate": "Bearer"},
    )


def caller(
    res: ResDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Caller:
    """The caller proven by the request's API key; 401 when there is none, or it is unknown or revoked."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized()
    key = authenticate(res.engine, credentials.credentials.strip())
    if key is None:
        raise _unauthorized()
    return Caller(key.tenant_id, key.prefix)


CallerDep = Annotated[Caller, Depends(caller)]


def admin(who: CallerDep) -> Caller:
    """A platform-admin caller; 403 for a tenant's key (the route exists for everyone, its use does not)."""
    if not who.is_admin:
        raise Problem(403, "this route needs a platform-admin API key", slug="admin-only")
    return who


AdminDep = Annotated[Caller, Depends(admin)]


def tenant_of(
    who: CallerDep,
    res: ResDep,
    x_tenant: Annotated[
        str | None,
        Header(
            alias="X-Tenant",
            description="Platform-admin keys only: act for this tenant (a tenant key's own tenant is implied).",
        ),
    ] = None,
) -> str | None:
    """The tenant the request works for: the key's own; for an admin key ``X-Tenant`` (None without it)."""
    wanted = x_tenant.strip() if x_tenant else None
    if who.tenant_id is not None:
        if wanted and wanted != who.tenant_id:
            raise not_found(f"tenant {wanted}")
        return who.tenant_id
    if wanted and get_tenant(res.engine, wanted) is None:
        raise not_found(f"tenant {wanted}")
    return wanted or None


ScopeDep = Annotated[str | None, Depends(tenant_of)]


def tenant_required(scope: ScopeDep) -> str:
    """The tenant the request works for; 400 for an admin key without ``X-Tenant``."""
    if scope is None:
        raise Problem(400, "a platform-admin key must name the tenant in the X-Tenant header", slug="tenant-required")
    return scope


TenantDep = Annotated[str, Depends(tenant_required)]

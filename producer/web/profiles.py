"""Per-profile status through one of the tenant's connections: every export of the profile, and the summary
behind the platform's "exported to Greenhouse" mark (``ghexport status --connection NAME --profile ID --json``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from producer import api
from producer.web.deps import ResDep, ScopeDep
from producer.web.problems import problem_responses
from shared.connections import tenancy

router = APIRouter(tags=["profiles"], responses=problem_responses(401, 404))


@router.get("/connections/{name}/profiles/{profile_id:path}", summary="Profile status")
def profile_status(name: str, profile_id: str, res: ResDep, scope: ScopeDep) -> dict[str, Any]:
    """``exported``, ``greenhouse_candidate_id``, ``status``, ``sync_state``, ``in_progress`` and ``exports``
    (newest first). A profile never exported through the connection has ``exports: []``."""
    conn = tenancy.tenant_connection(res.engine, scope, name)
    doc = api.profile_status(res, conn.name, profile_id)
    return {**doc, "connection": name}

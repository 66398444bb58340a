"""The Harvest v3 permissions the export needs, as an admin sees them, and how to probe each one.

Greenhouse shows v1-style permission names next to v3 scopes (``harvest:<resource>:<action>``); the
mapping is ``docs/harvest.md`` section 4. Every probe is free of side effects: a list
route is read with ``per_page=1``; a write or destroy route is sent an empty body or a nonexistent id
(``0``), so Harvest answers 403 when the scope is missing and 422/404 when it is present (the scope is
checked before validation). Paths are relative to ``/v3``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

ProbeMethod = Literal["GET", "POST", "PATCH", "DELETE"]

MISSING_STATUS = 403
"""The probe answer that means the scope is missing; any other answer means it is granted."""


class Permission(NamedTuple):
    """One permission the export needs: the name an admin sees, its v3 scope, and a harmless probe."""

    name: str
    scope: str
    method: ProbeMethod
    path: str

    @property
    def label(self) -> str:
        """``Add Candidate (harvest:candidates:create)``: what an error message shows."""
        return f"{self.name} ({self.scope})"


REQUIRED: tuple[Permission, ...] = (
    Permission("Add Candidate", "harvest:candidates:create", "POST", "/candidates"),
    Permission("List Candidates", "harvest:candidates:list", "GET", "/candidates"),
    Permission("Edit Candidate", "harvest:candidates:update", "PATCH", "/candidates/0"),
    Permission("Merge Candidates", "harvest:candidates:merge", "POST", "/candidates/0/merge"),
    Permission("Anonymize Candidate", "harvest:candidates:anonymize", "PATCH", "/candidates/0/anonymize"),
    Permission("Delete Candidate", "harvest:candidates:destroy", "DELETE", "/candidates/0"),
    Permission("Add Application", "harvest:applications:create", "POST", "/applications"),
    Permission("Update Application", "harvest:applications:update", "PATCH", "/applications/0"),
    Permission("List Applications", "harvest:applications:list", "GET", "/applications"),
    Permission("Add Attachment", "harvest:attachments:create", "POST", "/attachments"),
    Permission("List Attachments", "harvest:attachments:list", "GET", "/attachments"),
    Permission("Add Note", "harvest:notes:create", "POST", "/notes"),
    Permission("Add Education", "harvest:candidate_educations:create", "POST", "/candidate_educations"),
    Permission("Delete Education", "harvest:candidate_educations:destroy", "DELETE", "/candidate_educations/0"),
    Permission("List Educations", "harvest:candidate_educations:list", "GET", "/candidate_educations"),
    Permission("Add Employment", "harvest:candidate_employments:create", "POST", "/candidate_employments"),
    Permission("Delete Employment", "harvest:candidate_employments:destroy", "DELETE", "/candidate_employments/0"),
    Permission("List Employments", "harvest:candidate_employments:list", "GET", "/candidate_employments"),
    Permission("Add New Candidate Tags", "harvest:candidate_tags:create", "POST", "/candidate_tags"),
    Permission("List Candidate Tags", "harvest:candidate_tags:list", "GET", "/candidate_tags"),
    Permission("Add a Candidate Tag", "harvest:applied_candidate_tags:create", "POST", "/applied_candidate_tags"),
    Permission("List Applied Candidate Tags", "harvest:applied_candidate_tags:list", "GET", "/applied_candidate_tags"),
    Permission("List Prospect Pools", "harvest:prospect_pools:list", "GET", "/prospect_pools"),
    Permission("List Prospect Pool Stages", "harvest:prospect_pool_stages:list", "GET", "/prospect_pool_stages"),
    Permission("List Sources", "harvest:sources:list", "GET", "/sources"),
    Permission("List Jobs", "harvest:jobs:list", "GET", "/jobs"),
    Permission("List Users", "harvest:users:list", "GET", "/users"),
    Permission("List Openings For a Job", "harvest:openings:list", "GET", "/openings"),
    Permission(
        "Get Degrees, Disciplines and Schools",
        "harvest:custom_field_options:list",
        "GET",
        "/custom_field_options",
    ),
    Permission("Get Close Reasons", "harvest:close_reasons:list", "GET", "/close_reasons"),
)
"""Every permission the export needs, in the order an admin is told about them."""

REQUIRED_SCOPES: tuple[str, ...] = tuple(dict.fromkeys(p.scope for p in REQUIRED))
"""The v3 scopes of :data:`REQUIRED`, without repeats."""


def missing_message(client_id: str, missing: Iterable[Permission]) -> str:
    """One line naming every missing permission and where an admin grants it."""
    labels = [p.label for p in missing]
    plural = "s" if len(labels) != 1 else ""
    return (
        f"the Greenhouse credential {client_id} lacks {len(labels)} permission{plural} the export needs: "
        + ", ".join(labels)
        + "; in Greenhouse: Configure > Dev Center > API Credentials, edit the Harvest v3 (OAuth) "
        "credential and grant them"
    )

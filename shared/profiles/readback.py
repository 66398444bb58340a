"""What a read-back of an exported record must show, and what it shows instead (sync confirmation).

Greenhouse writes asynchronously: right after a create, a read may not show the record (404, or an empty
list), then show it without everything yet. An exported item is confirmed once the record and its
application show what was sent: :func:`expected_record` says what that is, from the same mapping the
export used; :func:`differences` compares it with one read-back. Differences name fields and Greenhouse ids,
never values: they are stored on the item and shown to operators (no PII).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.harvest.models import Application, Candidate
from shared.profiles.mapping import MappedCandidate, Target

NOT_READABLE = "record not readable yet"


@dataclass(frozen=True)
class Expected:
    """What Greenhouse should show for one exported item."""

    candidate_id: int
    application_id: int | None
    target: Target
    first_name: str | None = None
    """None: not checked (the record was already there: its name is its own)."""
    last_name: str | None = None
    emails: tuple[str, ...] = ()
    """Addresses that must be on the record (compared case-insensitively); empty: not checked."""
    source_id: int | None = None
    """The source the application must be credited to; None: not checked (a person already in Greenhouse
    may hold an application of their own on the target, which the item adopted)."""


def expected_record(
    mapped: MappedCandidate,
    target: Target,
    *,
    candidate_id: int,
    application_id: int | None,
    created_here: bool,
) -> Expected:
    """What to find for an item that exported ``mapped`` to ``target``. ``created_here``: the item created
    the record, so its name and emails are ours to check; otherwise (a person found by email, or exported
    before) only the application is."""
    if not created_here:
        return Expected(candidate_id, application_id, target)
    create = mapped.create
    return Expected(
        candidate_id,
        application_id,
        target,
        first_name=create.first_name,
        last_name=create.last_name,
        emails=tuple(e.value for e in create.email_addresses),
        source_id=target.source_id,
    )


def differences(expected: Expected, candidate: Candidate | None, applications: Sequence[Application]) -> list[str]:
    """What the read-back lacks or shows differently; empty when it matches.

    ``candidate`` is the record as read (None: not shown), ``applications`` its applications as read.
    """
    if candidate is None:
        return [NOT_READABLE]
    found: list[str] = []
    if expected.first_name is not None and (candidate.first_name or "") != expected.first_name:
        found.append("first_name differs")
    if expected.last_name is not None and (candidate.last_name or "") != expected.last_name:
        found.append("last_name differs")
    shown = {str(e.get("value", "")).casefold() for e in candidate.email_addresses}
    missing = [n for n, email in enumerate(expected.emails, 1) if email.casefold() not in shown]
    if missing:
        found.append(f"{len(missing)} of {len(expected.emails)} emails missing (#{', #'.join(map(str, missing))})")
    found.extend(_application_differences(expected, applications))
    return found


def _application_differences(expected: Expected, applications: Sequence[Application]) -> list[str]:
    target = expected.target
    mine = [a for a in applications if a.candidate_id in (None, expected.candidate_id)]
    if expected.application_id is not None:
        app = next((a for a in mine if a.id == expected.application_id), None)
        if app is None:
            return [f"application {expected.application_id} not shown"]
    else:  # an older item without a stored application id: any application on the target will do
        app = next((a for a in mine if _on_target(a, target)), None)
        if app is None:
            return ["no application on the target shown"]
    where = f"application {app.id}"
    found: list[str] = []
    if target.kind == "job":
        if app.job_id != target.job_id:
            found.append(f"{where}: job {app.job_id} shown, {target.job_id} expected")
    else:
        if app.prospect is not True:
            found.append(f"{where}: not a prospect application")
        if target.pool_id is not None and app.prospect_pool_id != target.pool_id:
            found.append(f"{where}: prospect pool {app.prospect_pool_id} shown, {target.pool_id} expected")
        if target.stage_id is not None and app.prospect_pool_stage_id != target.stage_id:
            found.append(f"{where}: pool stage {app.prospect_pool_stage_id} shown, {target.stage_id} expected")
    if expected.source_id is not None and app.source_id != expected.source_id:
        found.append(f"{where}: source {app.source_id} shown, {expected.source_id} expected")
    return found


def _on_target(app: Application, target: Target) -> bool:
    if target.kind == "job":
        return app.job_id == target.job_id
    return app.prospect is True and (target.pool_id is None or app.prospect_pool_id == target.pool_id)

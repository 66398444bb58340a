"""The checks ``ghexport connect`` runs against Greenhouse before it stores a connection.

Each check raises a :class:`ConnectCheckError` subclass whose message says exactly what to fix; none
of them writes anything to Greenhouse except :func:`verify_export`, which creates one test candidate on
request. Messages name client ids, user emails and ids (operator data), never a secret.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Literal

from shared.errors import AuthenticationError, ConnectCheckError, InvalidRequestError, PermissionDeniedError
from shared.harvest.client import HarvestClient
from shared.harvest.models import CreateCandidate, EmailAddress, Source, User
from shared.harvest.scopes import MISSING_STATUS, REQUIRED, Permission, missing_message
from shared.profiles.mapping import Target

log = logging.getLogger(__name__)

PROSPECTING = "Prospecting"
TEST_FIRST_NAME = "Greenhouse Export"
TEST_LAST_NAME = "Test"
READBACK_POLL_S = 0.5


class CredentialRefusedError(ConnectCheckError):
    """The token endpoint refused the client id or secret."""


class MissingPermissionsError(ConnectCheckError):
    """The credential lacks scopes; ``missing`` lists every one of them."""

    def __init__(self, message: str, missing: list[Permission]) -> None:
        super().__init__(message)
        self.missing = missing


class UserMappingError(ConnectCheckError):
    """No active Greenhouse user has exactly the connecting email."""


class SourceProblemError(ConnectCheckError):
    """The source is missing or has another strategy than Prospecting."""


class VerificationError(ConnectCheckError):
    """The test export was refused or could not be read back."""


def check_credential(reader: HarvestClient) -> None:
    """Mint a token for the credential; raise :class:`CredentialRefusedError` when Greenhouse refuses it."""
    try:
        reader.mint_token()
    except AuthenticationError:
        raise CredentialRefusedError(
            f"Greenhouse refused the client id {reader.credential.client_id} or its client secret: check "
            "both against the Harvest v3 (OAuth) credential in Configure > Dev Center > API Credentials"
        ) from None


def check_scopes(reader: HarvestClient, required: tuple[Permission, ...] = REQUIRED) -> list[str]:
    """Probe every permission; return the granted scopes, or raise :class:`MissingPermissionsError` naming
    every missing one. Probes carry no ``sub`` and have no side effects (see :mod:`shared.harvest.scopes`)."""
    missing: list[Permission] = []
    for perm in required:
        path = perm.path + ("?per_page=1" if perm.method == "GET" else "")
        status = reader.probe(perm.method, path)
        if status == MISSING_STATUS:
            missing.append(perm)
    if missing:
        raise MissingPermissionsError(missing_message(reader.credential.client_id, missing), missing)
    return list(dict.fromkeys(p.scope for p in required))


def _emails(user: User) -> list[str]:
    return [e for e in (user.primary_email, *user.emails) if e]


def user_name(user: User) -> str | None:
    """The user's name as Greenhouse shows it (``name``, else first and last name), or None."""
    full = user.name or " ".join(p for p in (user.first_name, user.last_name) if p)
    return full.strip() or None


def find_user(reader: HarvestClient, email: str) -> User:
    """The active Greenhouse user whose primary or other email equals ``email`` exactly (case sensitive).

    Harvest's ``primary_email`` filter ignores case, so the comparison is ours. A user matching only
    when case is ignored is offered as "did you mean"; a deactivated user is refused.
    """
    users = reader.list_users(primary_email=email)
    if not any(email in _emails(u) for u in users):
        users = reader.list_users()  # the address may be a secondary email, which the filter ignores
    exact = [u for u in users if email in _emails(u)]
    active = [u for u in exact if not u.deactivated]
    if active:
        return active[0]
    if exact:
        user = exact[0]
        raise UserMappingError(
            f"the Greenhouse user with the email {email} (id {user.id}) is deactivated; reactivate them "
            "in Configure > Users, or connect with the email of an active user"
        )
    folded = email.casefold()
    near = sorted({e for u in users if not u.deactivated for e in _emails(u) if e.casefold() == folded and e != email})
    if near:
        raise UserMappingError(
            f"no Greenhouse user has exactly the email {email}; did you mean {' or '.join(near)}? "
            "(emails are compared case sensitively)"
        )
    raise UserMappingError(
        f"no Greenhouse user has the email {email}; connect with the email of your Greenhouse user "
        "(Configure > Users), exactly as it is written there"
    )


def _how_to_create(name: str) -> str:
    return (
        f"In Greenhouse: Configure > Custom Options > Sources: add a source named {name} "
        f"with the strategy {PROSPECTING}"
    )


def find_source(reader: HarvestClient, name: str) -> Source:
    """The source named exactly ``name`` whose strategy is Prospecting; raise :class:`SourceProblemError`
    explaining how to create it, or that it exists with another strategy."""
    sources = reader.list_sources()
    named = [s for s in sources if s.name == name]
    for source in named:
        if source.type is not None and source.type.name == PROSPECTING:
            return source
    if named:
        strategy = named[0].type.name if named[0].type is not None else None
        raise SourceProblemError(
            f"the source {name} exists with the strategy {strategy or 'none'}, but the export needs the "
            f"strategy {PROSPECTING}; {_how_to_create(name)} (or pass --source-name)"
        )
    near = sorted({s.name for s in sources if s.name.casefold() == name.casefold()})
    hint = f" (did you mean {' or '.join(near)}? names are compared exactly)" if near else ""
    raise SourceProblemError(f"there is no source named {name}{hint}; {_how_to_create(name)}")


def verification_email() -> str:
    """A fresh address for the verification candidate (``ghexport-verify+<random>@example.com``)."""
    return f"ghexport-verify+{secrets.token_hex(4)}@example.com"


def verify_export(
    reader: HarvestClient,
    *,
    target: Literal["prospect"] | int,
    user: User,
    source: Source,
    wait_s: float,
    poll_s: float = READBACK_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Export one test candidate as ``user`` (a prospect, or to the open job ``target``) and read it back.

    Returns its Greenhouse id. New records appear after a delay, so the read is repeated every
    ``poll_s`` for up to ``wait_s``. Raises :class:`VerificationError` when Greenhouse refuses the
    export (naming the user) or the candidate cannot be read back in time (naming its id).
    """
    kind: Literal["job", "prospect"] = "prospect" if target == "prospect" else "job"
    job_id = None if target == "prospect" else int(target)
    app = Target(kind=kind, job_id=job_id, source_id=source.id, user_id=user.id).application()
    body = CreateCandidate(
        first_name=TEST_FIRST_NAME,
        last_name=TEST_LAST_NAME,
        email_addresses=[EmailAddress(value=verification_email(), type="other")],
        application=app,
    )
    what = "a prospect" if job_id is None else f"a candidate on job {job_id}"
    try:
        created = reader.with_sub(user.id).create_candidate(body)
    except PermissionDeniedError as exc:
        scope = f" (missing {exc.missing_scope})" if exc.missing_scope else ""
        raise VerificationError(
            f"Greenhouse refused to let user {user.primary_email} (id {user.id}) create {what}{scope}: "
            "give them the permission to add candidates and manage prospects (Configure > Users)"
        ) from None
    except InvalidRequestError as exc:
        raise VerificationError(f"Greenhouse refused the test export of {what}: {exc}") from None
    candidate_id = created.candidate.id
    log.info("test candidate %s created; reading it back", candidate_id)
    deadline = clock() + wait_s
    while True:
        if any(c.id == candidate_id for c in reader.get_candidates([candidate_id])):
            return candidate_id
        if clock() >= deadline:
            raise VerificationError(
                f"the test candidate {candidate_id} was created but could not be read back within "
                f"{wait_s:g}s; look for it in Greenhouse, then connect again"
            )
        sleep(min(poll_s, max(0.0, deadline - clock())))

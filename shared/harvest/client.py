"""The Harvest v3 client: one class, injectable transport, typed models in and out, only our errors out.

Typed methods over :class:`shared.harvest.transport.HarvestTransport` (auth, shared limiter, quick retries
of safe calls, pagination). Every Harvest path the exporter uses is a constant here, with its evidence tag
from ``docs/harvest.md``: a correction is one edit.
"""

from __future__ import annotations

import logging
import math
import mimetypes
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from shared.errors import InvalidRequestError
from shared.harvest.models import (
    Application,
    AppliedTag,
    ApplyTag,
    Attachment,
    AttachmentType,
    Candidate,
    CreateApplication,
    CreateAttachment,
    CreateCandidate,
    CreatedCandidate,
    CreateEducation,
    CreateEmployment,
    CreateNote,
    CreateTag,
    CustomFieldKey,
    CustomFieldOption,
    Education,
    Employment,
    Job,
    Note,
    ProspectPool,
    ProspectPoolStage,
    Source,
    Tag,
    User,
)
from shared.harvest.transport import HarvestTransport, chunk_ids

# --- every Harvest path, in one place (evidence tags from docs/harvest.md) ---------
CANDIDATES = "/v3/candidates"  # POST create, GET ?email= / ?ids= [3P SVMCP, OGMCP live]
APPLICATIONS = "/v3/applications"  # [P WMIG]; list filters candidate_ids, job_ids [3P]
EDUCATIONS = "/v3/candidate_educations"  # [3P SVMCP, AIRBYTE]
EMPLOYMENTS = "/v3/candidate_employments"  # [3P SVMCP, AIRBYTE]
CANDIDATE_TAGS = "/v3/candidate_tags"  # tag definitions [3P SVMCP]; create body {name} [?]
APPLIED_TAGS = "/v3/applied_candidate_tags"  # {candidate_id, candidate_tag_id} [3P OGMCP live]
ATTACHMENTS = "/v3/attachments"  # [P REF-ATT]; list filters application_ids, candidate_ids, type [P]
NOTES = "/v3/notes"  # [3P SVMCP, OGMCP]
USERS = "/v3/users"  # ?primary_email= [3P SVMCP, AIRBYTE]
SOURCES = "/v3/sources"  # [3P SVMCP]
JOBS = "/v3/jobs"  # ?status=open [P PAGE example]
PROSPECT_POOLS = "/v3/prospect_pools"  # [P REF-PP]
PROSPECT_POOL_STAGES = "/v3/prospect_pool_stages"  # ?prospect_pool_ids= [3P]; nested path on pool page [?]
CUSTOM_FIELD_OPTIONS = "/v3/custom_field_options"  # ?custom_field_key=degree|discipline|school_name [3P]

# created_at range on GET /v3/candidates: ONE parameter of operator|timestamp pairs joined by `|`,
# `created_at=gte|<ts>` or `created_at=gte|<ts>|lte|<ts>` (operators gte, lte, gt, lt) [P list-endpoints guide;
# 3P AIRBYTE; docs/harvest.md section 5, settled 2026-12-07]. The bracket form `created_at[gte]=` is not a v3
# parameter (unknown parameters are a 422), nor are v1-style `created_after` / `created_before`; never send
# `created_at` and `updated_at` in one request. A 200 does not prove the filter was applied [3P OGMCP], so
# list_candidates_created re-filters what comes back.
CREATED_AT = "created_at"


def _created_at_range(low: str, high: str | None = None) -> str:
    """The value of :data:`CREATED_AT` for inclusive bounds (ISO 8601 timestamps): ``gte|<low>[|lte|<high>]``."""
    return f"gte|{low}" if high is None else f"gte|{low}|lte|{high}"


# Whether POST /v3/attachments takes `content_type` is unknown [?] (docs/harvest.md, attachments and section 10): v1
# required it with base64 content [P G11]; the v3 page shows no such member, and v3 refuses unknown members.
# So it is learned from the answers: sent without it, and on a 422 that names `content_type` (missing, or not
# allowed) the upload goes again once the other way; the answer is kept per Harvest URL and credential for
# the life of the process.
_CONTENT_TYPE_WANTED: dict[tuple[str, str], bool] = {}
_CONTENT_TYPE_LOCK = threading.Lock()
_MIME = mimetypes.MimeTypes(filenames=())  # built-in table only: the same answer on every machine
log = logging.getLogger(__name__)


class HarvestClient(HarvestTransport):
    """Harvest v3 for the exporter: typed writes (sent once) and reads (paginated, quick retries).

    ``HarvestClient(settings, credential, *, sub=None, http_client=None, token_cache=None, limiter=None)``;
    an ``http_client`` built here is owned and closed by :meth:`close`; an injected one is not.
    """

    # --- writes (sent once; a RetryableError other than 429 means the outcome is unknown) -----------

    def create_candidate(self, body: CreateCandidate) -> CreatedCandidate:
        """``POST /v3/candidates``: the candidate and, when ``body.application`` is set, its application."""
        return self._create(CANDIDATES, body, CreatedCandidate)

    def create_application(self, body: CreateApplication) -> Application:
        """``POST /v3/applications`` for an existing candidate (job or prospect)."""
        return self._create(APPLICATIONS, body, Application)

    def create_education(self, body: CreateEducation) -> Education:
        """``POST /v3/candidate_educations``."""
        return self._create(EDUCATIONS, body, Education)

    def create_employment(self, body: CreateEmployment) -> Employment:
        """``POST /v3/candidate_employments``."""
        return self._create(EMPLOYMENTS, body, Employment)

    def create_tag(self, name: str) -> Tag:
        """``POST /v3/candidate_tags``: define a tag."""
        return self._create(CANDIDATE_TAGS, CreateTag(name=name), Tag)

    def apply_tag(self, candidate_id: int, tag_id: int) -> AppliedTag:
        """``POST /v3/applied_candidate_tags``: put an existing tag on a candidate."""
        return self._create(APPLIED_TAGS, ApplyTag(candidate_id=candidate_id, candidate_tag_id=tag_id), AppliedTag)

    def create_attachment(self, body: CreateAttachment) -> Attachment:
        """``POST /v3/attachments`` (to an application). A base64 upload carries ``content_type`` only once
        this credential's Greenhouse has asked for it: a 422 naming ``content_type`` sends the upload again
        once, the other way (a 422 wrote nothing), and the answer is remembered in this process."""
        if body.content is None:  # a url upload: Greenhouse fetches the file and types it
            return self._create(ATTACHMENTS, body, Attachment)
        key = (self.settings.harvest_url, self.credential.key)
        wanted = _CONTENT_TYPE_WANTED.get(key, False)
        kind = _MIME.guess_type(body.filename, strict=False)[0] or "application/octet-stream"
        try:
            return self._create(
                ATTACHMENTS, body.model_copy(update={"content_type": kind if wanted else None}), Attachment
            )
        except InvalidRequestError as exc:
            if not any(e.field == "content_type" for e in exc.field_errors):
                raise
            log.info("attachments: Greenhouse %s content_type (%s); sending again %s it",
                     "refused" if wanted else "asked for", exc, "without" if wanted else "with")  # fmt: skip
        with _CONTENT_TYPE_LOCK:
            _CONTENT_TYPE_WANTED[key] = not wanted
        return self._create(ATTACHMENTS, body.model_copy(update={"content_type": None if wanted else kind}), Attachment)

    def create_note(self, body: CreateNote) -> Note:
        """``POST /v3/notes``."""
        return self._create(NOTES, body, Note)

    # --- reads (GET, quick retries, full pagination) -------------------------------------------------

    def find_candidates_by_email(self, email: str) -> list[Candidate]:
        """Candidates with this email (exact, case-insensitive match [3P])."""
        return self._list(CANDIDATES, Candidate, {"email": email})

    def list_candidates_created(self, since: datetime, until: datetime | None = None) -> list[Candidate]:
        """Candidates whose ``created_at`` lies in ``[since, until]`` (``until`` None: up to now), by id.

        Sends one :data:`CREATED_AT` range, ``gte|<since>`` or ``gte|<since>|lte|<until>`` (ISO 8601 UTC,
        milliseconds, ``Z``; a naive datetime is taken as UTC; the bounds are widened to whole milliseconds, the
        precision Harvest shows), then keeps only the candidates whose own ``created_at`` is in that range: a
        candidate without a readable ``created_at`` is left out. Candidates Greenhouse is still creating are not
        listed yet.
        """
        low = _to_millis(since, math.floor)
        high = _to_millis(until, math.ceil) if until is not None else None
        params = {CREATED_AT: _created_at_range(_iso_millis(low), None if high is None else _iso_millis(high))}
        found = self._list(CANDIDATES, Candidate, params)
        return [c for c in found if (t := c.created) is not None and low <= t and (high is None or t <= high)]

    def get_candidates(self, ids: Sequence[int]) -> list[Candidate]:
        """Candidates by id (``?ids=`` in chunks of 50); unknown ids are simply absent."""
        return self._list_by(CANDIDATES, Candidate, "ids", ids)

    def list_applications(
        self, *, candidate_ids: Sequence[int] | None = None, job_ids: Sequence[int] | None = None
    ) -> list[Application]:
        """Applications, filtered by candidates and/or jobs (an empty filter list returns nothing)."""
        if candidate_ids is not None and job_ids is not None:
            return [
                app
                for jobs in chunk_ids(job_ids)
                for app in self._list_by(APPLICATIONS, Application, "candidate_ids", candidate_ids, job_ids=jobs)
            ]
        if candidate_ids is not None:
            return self._list_by(APPLICATIONS, Application, "candidate_ids", candidate_ids)
        if job_ids is not None:
            return self._list_by(APPLICATIONS, Application, "job_ids", job_ids)
        return self._list(APPLICATIONS, Application)

    def list_attachments(
        self,
        *,
        application_ids: Sequence[int] | None = None,
        candidate_ids: Sequence[int] | None = None,
        type: AttachmentType | None = None,
    ) -> list[Attachment]:
        """Attachments on these applications and/or on these candidates' applications, optionally of one
        ``type`` (an empty id list returns nothing). Each ``url`` expires 7 days after this call [P]."""
        extra: dict[str, str] = {"type": type} if type is not None else {}
        if application_ids is not None and candidate_ids is not None:
            return [
                item
                for apps in chunk_ids(application_ids)
                for item in self._list_by(
                    ATTACHMENTS, Attachment, "candidate_ids", candidate_ids, application_ids=apps, **extra
                )
            ]
        if application_ids is not None:
            return self._list_by(ATTACHMENTS, Attachment, "application_ids", application_ids, **extra)
        if candidate_ids is not None:
            return self._list_by(ATTACHMENTS, Attachment, "candidate_ids", candidate_ids, **extra)
        return self._list(ATTACHMENTS, Attachment, extra or None)

    def list_educations(self, candidate_ids: Sequence[int]) -> list[Education]:
        """Educations of these candidates."""
        return self._list_by(EDUCATIONS, Education, "candidate_ids", candidate_ids)

    def list_employments(self, candidate_ids: Sequence[int]) -> list[Employment]:
        """Employments of these candidates."""
        return self._list_by(EMPLOYMENTS, Employment, "candidate_ids", candidate_ids)

    def list_applied_tags(self, candidate_ids: Sequence[int]) -> list[AppliedTag]:
        """Tag applications (``candidate_id``, ``candidate_tag_id``) of these candidates."""
        return self._list_by(APPLIED_TAGS, AppliedTag, "candidate_ids", candidate_ids)

    def list_notes(self, candidate_ids: Sequence[int]) -> list[Note]:
        """Notes on these candidates."""
        return self._list_by(NOTES, Note, "candidate_ids", candidate_ids)

    def list_users(self, *, primary_email: str | None = None) -> list[User]:
        """Users, optionally the one with this primary email."""
        return self._list(USERS, User, {"primary_email": primary_email} if primary_email else None)

    def list_sources(self) -> list[Source]:
        """Every source."""
        return self._list(SOURCES, Source)

    def list_jobs(self, *, status: str | None = "open") -> list[Job]:
        """Jobs visible to the acting user, by status (None: all)."""
        return self._list(JOBS, Job, {"status": status} if status else None)

    def list_prospect_pools(self) -> list[ProspectPool]:
        """Every prospect pool."""
        return self._list(PROSPECT_POOLS, ProspectPool)

    def list_prospect_pool_stages(self, pool_ids: Sequence[int] | None = None) -> list[ProspectPoolStage]:
        """Stages of these pools (None: of every pool)."""
        if pool_ids is None:
            return self._list(PROSPECT_POOL_STAGES, ProspectPoolStage)
        return self._list_by(PROSPECT_POOL_STAGES, ProspectPoolStage, "prospect_pool_ids", pool_ids)

    def list_custom_field_options(self, key: CustomFieldKey) -> list[CustomFieldOption]:
        """Options of the ``degree`` / ``discipline`` / ``school_name`` fields."""
        return self._list(CUSTOM_FIELD_OPTIONS, CustomFieldOption, {"custom_field_key": key})

    def list_tags(self) -> list[Tag]:
        """Every tag definition."""
        return self._list(CANDIDATE_TAGS, Tag)


def _to_millis(moment: datetime, rounding: Callable[[float], int]) -> datetime:
    """``moment`` in UTC (naive: taken as UTC), rounded by ``rounding`` to a whole millisecond."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    utc = aware.astimezone(UTC)
    millis = rounding(utc.microsecond / 1000)
    return utc.replace(microsecond=0) + timedelta(milliseconds=millis)


def _iso_millis(moment: datetime) -> str:
    """Harvest's timestamp form: ``2026-01-02T03:04:05.678Z`` (``moment`` is UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

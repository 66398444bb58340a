"""``POST /v1/exports``: record an export batch, as ``ghexport export`` does.

Two bodies, one route:

- ``application/json``: ``{"connection", "target": {"kind", "job_id" | "pool_id", "stage_id"}, "user_email"?,
  "include_exported", "new_record", "dummy_emails", "profiles": [...]}`` (at most ``GHX_API__MAX_JSON_BYTES``);
- ``application/x-ndjson``: one profile a line (the CLI's ``PROFILES.jsonl``), the same options as query
  parameters, up to ``GHX_API__MAX_BODY_BYTES``. The body is read as it streams in: each chunk's complete lines
  are validated (in a worker thread, so the event loop stays free) and only the valid profiles are kept, so a
  10,000-profile body is never held twice.

Bad profiles never stop the batch: each is reported in ``rejected`` with its line (NDJSON) or position in
``profiles`` (JSON, from 1), its id when readable, and the field, as the CLI does. No valid profile at all: 422.

``Idempotency-Key``: the SHA-256 of the request (its options and body bytes, hashed while they stream in) is
recorded with the batch under the key. The same key and request again answer that batch (200, nothing new
recorded or enqueued, ``replayed: true``); the same key with another request is a 409.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, ValidationError, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from starlette.concurrency import run_in_threadpool

from producer import api
from producer.web.deps import ResDep, ScopeDep
from producer.web.middleware import NDJSON
from producer.web.problems import Problem, problem_responses
from shared.connections import tenancy
from shared.profiles.model import LineError, ProfileReader, ReadResult
from shared.store.models import TargetKind

router = APIRouter(tags=["exports"], responses=problem_responses(401, 404))

MAX_IDEMPOTENCY_KEY_CHARS = 255
M = TypeVar("M", bound=BaseModel)


class TargetIn(BaseModel):
    """Where the batch goes: a job (candidates with an application) or prospects (optionally a pool and stage)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["job", "prospect"]
    job_id: int | None = Field(default=None, gt=0)
    pool_id: int | None = Field(default=None, gt=0)
    stage_id: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> TargetIn:
        if self.kind == "job":
            if self.job_id is None:
                raise ValueError("a job target needs job_id")
            if self.pool_id is not None or self.stage_id is not None:
                raise ValueError("pool_id and stage_id apply to prospect targets only")
        else:
            if self.job_id is not None:
                raise ValueError("job_id applies to job targets only")
            if self.stage_id is not None and self.pool_id is None:
                raise ValueError("stage_id needs pool_id: a prospect stage belongs to a pool")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The rules of :meth:`_consistent` in the document: a job target names its job, a prospect target
        may name a pool and a stage (a stage needs its pool)."""
        positive: dict[str, Any] = {"type": ["integer", "null"], "exclusiveMinimum": 0}
        return {
            "title": "Target",
            "description": "Where the batch goes: a job (candidates with an application) or prospects.",
            "oneOf": [
                {
                    "title": "JobTarget",
                    "type": "object",
                    "properties": {"kind": {"const": "job"}, "job_id": {"type": "integer", "exclusiveMinimum": 0}},
                    "required": ["kind", "job_id"],
                    "additionalProperties": False,
                },
                {
                    "title": "ProspectTarget",
                    "type": "object",
                    "properties": {"kind": {"const": "prospect"}, "pool_id": positive, "stage_id": positive},
                    "required": ["kind"],
                    "additionalProperties": False,
                    "dependentRequired": {"stage_id": ["pool_id"]},
                },
            ],
        }

    def target(self) -> api.ExportTarget:
        if self.kind == "job":
            assert self.job_id is not None
            return api.ExportTarget.job(self.job_id)
        return api.ExportTarget(TargetKind.PROSPECT, pool_id=self.pool_id, stage_id=self.stage_id)


class ExportOptions(BaseModel):
    """The options of ``ghexport export``."""

    model_config = ConfigDict(extra="forbid")

    connection: str = Field(min_length=1, max_length=200, description="The connection's name (for this tenant).")
    target: TargetIn
    user_email: str | None = Field(
        default=None,
        max_length=320,
        description="Act as this Greenhouse user (exact email); default: the connection's.",
    )
    include_exported: bool = Field(default=False, description="Also export profiles exported before.")
    new_record: bool = Field(default=False, description="With include_exported: a new record, not the earlier one.")
    dummy_emails: bool = Field(default=False, description="Give profiles without an email a dummy address.")

    def canonical(self) -> bytes:
        """The options as canonical JSON bytes (what the idempotency hash covers besides the body)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()


class ExportRequest(ExportOptions):
    """An export with its profiles inline (``application/json``)."""

    profiles: list[dict[str, Any]] = Field(
        min_length=1,
        description="Profiles as in PROFILES.jsonl (id, first_name and last_name required); a bad one is "
        "reported in `rejected` by its position (from 1), the others are exported.",
    )


class Rejected(BaseModel):
    """A profile that could not be read: its line (NDJSON) or position (JSON), id when readable, field, reason."""

    line: int
    id: str | None
    field: str | None
    error: str


class ExportCreated(BaseModel):
    """The batch recorded (``replayed``: recorded earlier under the same Idempotency-Key and request)."""

    batch_id: str
    enqueued: int = Field(description="Items this request enqueued (0 for a replay).")
    skipped: int = Field(description="Profiles exported before through the connection, recorded as skipped.")
    rejected: list[Rejected]
    replayed: bool


_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ExportRequest"}},
            NDJSON: {
                "schema": {"type": "string", "description": "One profile (a JSON object) a line"},
            },
        },
    }
}


@router.post(
    "/exports",
    status_code=status.HTTP_201_CREATED,
    summary="Export profiles (JSON, or NDJSON streamed)",
    openapi_extra=_BODY_DOC,
    responses={
        200: {"description": "A replay: the batch recorded earlier under this Idempotency-Key and request"},
        **problem_responses(409, 413, 415, 422, 502, 503),
    },
)
async def create_export(
    request: Request,
    response: Response,
    res: ResDep,
    scope: ScopeDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY_CHARS,
            description="The same key and request give the same batch; the same key with another request: 409.",
        ),
    ] = None,
    connection: Annotated[str | None, Query(max_length=200, description="NDJSON only: the connection.")] = None,
    kind: Annotated[Literal["job", "prospect"] | None, Query(description="NDJSON only: the target kind.")] = None,
    job_id: Annotated[int | None, Query(gt=0, description="NDJSON only.")] = None,
    pool_id: Annotated[int | None, Query(gt=0, description="NDJSON only.")] = None,
    stage_id: Annotated[int | None, Query(gt=0, description="NDJSON only.")] = None,
    user_email: Annotated[str | None, Query(max_length=320, description="NDJSON only.")] = None,
    include_exported: Annotated[bool, Query(description="NDJSON only.")] = False,
    new_record: Annotated[bool, Query(description="NDJSON only.")] = False,
    dummy_emails: Annotated[bool, Query(description="NDJSON only.")] = False,
) -> ExportCreated:
    """Record a batch of the profiles and enqueue one task per profile to export (see the module's doc)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    hasher = hashlib.sha256()
    if media == NDJSON:
        query = {
            "connection": connection,
            "target": {"kind": kind, "job_id": job_id, "pool_id": pool_id, "stage_id": stage_id},
            "user_email": user_email,
            "include_exported": include_exported,
            "new_record": new_record,
            "dummy_emails": dummy_emails,
        }
        options = _validated(ExportOptions, query, where="query")
        hasher.update(b"ndjson\n" + options.canonical() + b"\n")
        read = await _read_ndjson(request, hasher)
    elif media in ("application/json", ""):
        body = await request.body()
        hasher.update(b"json\n" + body)
        options, read = await run_in_threadpool(_read_json, body)
    else:
        raise Problem(415, f"send application/json or {NDJSON}, not {media!r}", slug="unsupported-media-type")

    conn = tenancy.tenant_connection(res.engine, scope, options.connection)
    if not read.profiles:
        raise _nothing_to_export(read.errors)
    idempotency = (scope or "", idempotency_key, hasher.hexdigest()) if idempotency_key else None
    result = await run_in_threadpool(
        lambda: api.export_profiles(
            res,
            connection_name=conn.name,
            profiles=read.profiles,
            rejected=read.errors,
            target=options.target.target(),
            user_email=options.user_email,
            include_exported=options.include_exported,
            new_record=options.new_record,
            dummy_emails=options.dummy_emails,
            idempotency=idempotency,
        )
    )
    if result.replayed:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/batches/{result.batch_id}"
    return ExportCreated(
        batch_id=result.batch_id,
        enqueued=result.enqueued,
        skipped=result.skipped,
        rejected=[Rejected(**e.as_dict()) for e in result.rejected],
        replayed=result.replayed,
    )


def _validated(model: type[M], data: Any, *, where: str) -> M:
    """``data`` as ``model``; a 422 naming the field (located in ``where``: body or query) otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if where == "query":  # the query names target's members directly: kind, job_id...
            for e in errors:
                loc = tuple(e["loc"])
                e["loc"] = (where, *(loc[1:] if loc[:1] == ("target",) and len(loc) > 1 else loc))
        else:
            for e in errors:
                e["loc"] = (where, *e["loc"])
        raise RequestValidationError(errors) from None


def _read_json(body: bytes) -> tuple[ExportOptions, ReadResult]:
    """The options and the profiles of a JSON body (a worker thread: parsing 1 MiB takes a moment)."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, RecursionError):
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "the body is not valid JSON", "type": "json_invalid"}]
        ) from None
    request = _validated(ExportRequest, data, where="body")
    reader = ProfileReader()
    for position, obj in enumerate(request.profiles, start=1):
        reader.add_object(position, obj)
    options = ExportOptions.model_validate(request.model_dump(exclude={"profiles"}))
    return options, reader.result


async def _read_ndjson(request: Request, hasher: Any) -> ReadResult:
    """Read an NDJSON body as it streams in: hash every byte, validate each complete line, keep only the valid
    profiles. A chunk's lines are validated in a worker thread (in order: one reader, one chunk at a time)."""
    reader = ProfileReader()
    tail = bytearray()
    lineno = 0
    async for chunk in request.stream():
        if not chunk:
            continue
        hasher.update(chunk)
        cut = chunk.rfind(b"\n")
        if cut < 0:  # no line ends in this chunk: only the tail grows (searched in new bytes only)
            tail += chunk
            continue
        complete = bytes(tail) + chunk[:cut]
        tail = bytearray(chunk[cut + 1 :])
        lines = complete.split(b"\n")
        await run_in_threadpool(_feed, reader, lineno, lines)
        lineno += len(lines)
    if tail:
        await run_in_threadpool(_feed, reader, lineno, [bytes(tail)])
    return reader.result


def _feed(reader: ProfileReader, before: int, lines: list[bytes]) -> None:
    for offset, raw in enumerate(lines, start=1):
        try:
            text: str | None = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        reader.add(before + offset, text)


def _nothing_to_export(errors: list[LineError]) -> Problem:
    """422: no profile of the request could be read; every reason listed, the first one named."""
    first = errors[0] if errors else None
    return Problem(
        422,
        f"nothing to export: no valid profile in the request ({first})" if first else "nothing to export: no profile",
        slug="no-valid-profile",
        line=first.line if first else None,
        profile_id=first.profile_id if first else None,
        field=first.field if first else None,
        errors=[e.as_dict() for e in errors],
    )

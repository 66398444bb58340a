"""``POST /v1/greenhouse/webhooks/{connection}``: Greenhouse's own webhooks coming in.

Greenhouse cannot send an API key: the authentication is the ``Signature`` header, an HMAC-SHA256 of the raw
body under the secret configured for the connection (``ghexport connections webhook-secret``, or
:func:`shared.connections.webhooks.set_webhook_secret`). So the route reads the body as bytes, as received
(size-limited), and hands them to :func:`shared.connections.webhooks.receive_greenhouse_webhook`, which verifies
them before parsing anything and applies each ``Greenhouse-Event-ID`` once. ``{connection}`` is the
connection's stored name (``tenant:name`` for one created through the API).

Answers: 200 as soon as the event is applied, was applied before, or is an action we ignore (Greenhouse treats
anything but 200 as a failure and retries for 15 hours); 401 for an unsigned or wrongly signed delivery, one
addressed to a connection without a secret, or to none (one answer for all: nothing leaks which connections
exist); 400 for a signed body that is not Greenhouse's shape; 413 for a body over ``GHX_API__MAX_JSON_BYTES``.
Nothing changes unless the answer is 200.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from producer.web.deps import ResDep
from producer.web.problems import Problem, problem_responses
from shared.connections.webhooks import receive_greenhouse_webhook
from shared.errors import WebhookPayloadError, WebhookSignatureError

router = APIRouter(tags=["greenhouse"])

_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Greenhouse's webhook body, verified over its raw bytes (never re-serialized).",
    "required": ["action"],
    "properties": {
        "action": {"type": "string", "examples": ["delete_candidate"]},
        "payload": {"type": "object", "description": "For delete_candidate: {person: {id, deleted_application_ids}}"},
    },
}
_HEADERS: list[dict[str, Any]] = [
    {
        "name": "Signature",
        "in": "header",
        "required": True,
        "description": "`sha256 <hex HMAC-SHA256 of the raw body under the connection's webhook secret>`",
        "schema": {"type": "string"},
    },
    {
        "name": "Greenhouse-Event-ID",
        "in": "header",
        "required": False,
        "description": "The event's id: each is applied once (without it, the body's SHA-256 is its id).",
        "schema": {"type": "string"},
    },
]


class WebhookAck(BaseModel):
    """What the delivery did (Greenhouse reads only the status; this is for whoever replays one by hand)."""

    event_id: str
    action: str
    applied: bool = Field(description="This delivery changed the person ledger.")
    duplicate: bool = Field(description="The event was applied before: nothing was done.")


async def _raw_body(request: Request, limit: int) -> bytes:
    """The request body as received, at most ``limit`` bytes (413 beyond it, counted while it streams)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Problem(413, f"the request body is larger than {limit} bytes", slug="too-large", limit_bytes=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"the request body is larger than {limit} bytes", slug="too-large", limit_bytes=limit)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/greenhouse/webhooks/{connection}",
    response_model=WebhookAck,
    summary="Receive a Greenhouse webhook (delete_candidate) for a connection",
    responses=problem_responses(400, 401, 413),
    openapi_extra={
        "security": [],
        "parameters": _HEADERS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}},
    },
)
async def receive_webhook(
    request: Request,
    res: ResDep,
    connection: Annotated[str, Path(description="The connection's stored name (tenant:name for API connections).")],
) -> WebhookAck:
    """Verify the delivery's signature with the connection's webhook secret and apply it once: a deleted or
    merged-away record is forgotten by the person ledger; other actions are acknowledged and ignored."""
    raw = await _raw_body(request, res.settings.api.max_json_bytes)
    try:
        outcome = await run_in_threadpool(receive_greenhouse_webhook, res, connection, raw, request.headers)
    except WebhookSignatureError as exc:
        raise Problem(
            401, str(exc), slug="webhook-signature", headers={"WWW-Authenticate": 'Signature realm="greenhouse"'}
        ) from None
    except WebhookPayloadError as exc:
        raise Problem(400, str(exc), slug="webhook-payload") from None
    return WebhookAck(
        event_id=outcome.event_id, action=outcome.action, applied=outcome.applied, duplicate=outcome.duplicate
    )

"""The calling tenant's callback events: list them, and deliver them again (``ghexport callbacks list|redeliver``).

The workers deliver every event on their own, retrying for about 15 hours before it is dead
(:mod:`workers.callbacks`); these routes let the platform see what was delivered, what waits and what is dead,
and ask for events again (a redelivered event keeps its id, the ``webhook-id`` it deduplicates by). Registering
the URL is ``PUT /v1/callbacks`` (:mod:`producer.web.tenants`). Another tenant's event is 404; a platform-admin
key sees every tenant's unless it names one in ``X-Tenant``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, Field

from producer.web.deps import ResDep, ScopeDep
from producer.web.problems import not_found, problem_responses
from shared.store import outbox
from shared.store.outbox import EventRecord

router = APIRouter(tags=["callbacks"], responses=problem_responses(401, 404))

State = Literal["pending", "delivered", "dead"]


class EventOut(BaseModel):
    """A callback event and where its delivery is."""

    id: str = Field(description="The event's id: the `webhook-id` of every attempt, stable forever.")
    tenant_id: str
    type: str = Field(description="`item.<status>`, `batch.completed`, `connection.needs_reauth`, ...")
    state: State = Field(description="`pending` (to be delivered), `delivered` (a 2xx came back) or `dead`.")
    attempts: int = Field(description="Delivery attempts made so far (0 again after a redelivery).")
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When a pending event is tried next (null otherwise).")
    delivered_at: datetime | None
    last_error: str | None = Field(description="Why the last failed attempt failed (HTTP status, timeout...).")
    payload: dict[str, Any] = Field(description="The body sent: `{type, timestamp, data}`.")

    @classmethod
    def of(cls, event: EventRecord) -> EventOut:
        pending = event.state.value == "pending"
        return cls(
            id=event.id,
            tenant_id=event.tenant_id,
            type=event.type,
            state=event.state.value,
            attempts=event.attempts,
            created_at=event.created_at,
            next_attempt_at=event.next_attempt_at if pending else None,
            delivered_at=event.delivered_at,
            last_error=event.last_error,
            payload=event.payload,
        )


class EventList(BaseModel):
    """Events, newest first."""

    events: list[EventOut]


class Redelivered(BaseModel):
    """The events put back for delivery."""

    redelivered: list[str]


EventId = Annotated[str, Path(max_length=40, description="An event id (`msg_...`).")]


@router.get("/callbacks/events", summary="List callback events, newest first")
def list_events(
    res: ResDep,
    scope: ScopeDep,
    state: Annotated[State | None, Query(description="Only events in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Newest events returned at most.")] = 100,
) -> EventList:
    """The tenant's events (every tenant's for an admin key without ``X-Tenant``)."""
    found = outbox.list_events(res.engine, tenant_id=scope, state=state, limit=limit)
    return EventList(events=[EventOut.of(e) for e in found])


@router.get("/callbacks/events/{event_id}", summary="One callback event")
def get_event(event_id: EventId, res: ResDep, scope: ScopeDep) -> EventOut:
    """The event; 404 when it is not the tenant's."""
    found = outbox.get_events(res.engine, [event_id], tenant_id=scope)
    if not found:
        raise not_found(f"callback event {event_id}")
    return EventOut.of(found[0])


@router.post(
    "/callbacks/events/{event_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Deliver one event again",
)
def redeliver_event(event_id: EventId, res: ResDep, scope: ScopeDep) -> EventOut:
    """Put the event back for delivery, whatever its state: same id, attempts from 0, due now."""
    if not outbox.redeliver(res.engine, event_ids=[event_id], tenant_id=scope):
        raise not_found(f"callback event {event_id}")
    return EventOut.of(outbox.get_events(res.engine, [event_id], tenant_id=scope)[0])


@router.post(
    "/callbacks/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Deliver every dead event again",
)
def redeliver_dead(res: ResDep, scope: ScopeDep) -> Redelivered:
    """Put every dead event of the tenant back for delivery (e.g. once its receiver is fixed)."""
    return Redelivered(redelivered=outbox.redeliver(res.engine, dead=True, tenant_id=scope))

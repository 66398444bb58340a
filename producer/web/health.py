"""``/v1/health`` (the process answers) and ``/v1/ready`` (the store and the broker answer too): no API key.

A load balancer or the compose health check polls ``/v1/ready``: 503 with the failing check named while the
store or the broker is unreachable, so no request is routed to an instance that would fail it. Each check
runs in a worker thread with a deadline, so a black-holed host never holds the answer longer than
:data:`CHECK_TIMEOUT_S`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import anyio
from fastapi import APIRouter
from pydantic import BaseModel

from producer.web.deps import ResDep
from producer.web.problems import Problem, problem_responses
from shared.resources import Resources, translate_error
from shared.store import db

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 5.0


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    """Every dependency answered."""

    status: Literal["ready"] = "ready"
    checks: dict[str, str]


@router.get("/health", summary="The process is alive")
async def health() -> Health:
    """Answers as long as the process serves requests (no dependency is checked)."""
    return Health()


def store_ping(res: Resources) -> None:
    """``SELECT 1`` on the result store."""
    db.ping(res.engine)


def broker_ping(res: Resources) -> None:
    """PING the broker's Redis (or open a connection to another broker), and the limiter's Redis."""
    if res.broker_redis is not None:
        res.broker_redis.ping()
    else:
        with res.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
    res.redis.ping()


async def _check(probe: Callable[[Resources], None], res: Resources) -> str | None:
    """None when ``probe`` passes in time, else why not (first line, no secret: URLs are not repeated)."""
    try:
        with anyio.fail_after(CHECK_TIMEOUT_S):
            await anyio.to_thread.run_sync(probe, res, abandon_on_cancel=True)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:
        known = translate_error(exc)
        return type(known or exc).__name__
    return None


@router.get("/ready", summary="The store and the broker answer", responses=problem_responses(503))
async def ready(res: ResDep) -> Ready:
    """200 when the result store and the broker (and the limiter's Redis) answer; else 503 naming the check."""
    failures = {name: await _check(probe, res) for name, probe in (("store", store_ping), ("broker", broker_ping))}
    checks = {name: why or "ok" for name, why in failures.items()}
    if any(failures.values()):
        bad = ", ".join(f"{name}: {why}" for name, why in failures.items() if why)
        raise Problem(503, f"not ready ({bad})", slug="not-ready", checks=checks, headers={"Retry-After": "5"})
    return Ready(checks=checks)

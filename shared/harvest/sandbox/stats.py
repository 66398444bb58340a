"""Counters the sandbox keeps about the traffic it saw (for tests, the demo and benchmarks)."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from typing import TypedDict

MAX_INVALID = 1000


class InvalidRequest(TypedDict):
    """One 4xx the sandbox sent (other than a 429), and why."""

    route: str
    status: int
    reason: str


class StatsSnapshot(TypedDict):
    """:meth:`Stats.snapshot`: what tests, the demo and benchmarks read about the traffic."""

    total_requests: int
    requests: dict[str, dict[str, int]]
    """Route key -> status (``"dropped"`` for a dropped connection) -> count."""
    rate_limited: int
    faults: dict[str, int]
    invalid: list[InvalidRequest]
    max_in_window: dict[str, int]


class Stats:
    """Requests by route and status, 429s, faults, invalid requests and peak window use per credential."""

    def __init__(self) -> None:
        self.total_requests = 0
        self.by_route: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.rate_limited = 0
        self.faults: Counter[str] = Counter()
        self.invalid: deque[InvalidRequest] = deque(maxlen=MAX_INVALID)
        self.max_in_window: dict[str, int] = {}

    def record(self, route: str, status: int | str, reason: str | None = None) -> None:
        """Count one finished request; ``status`` is ``"dropped"`` for a dropped connection."""
        self.total_requests += 1
        self.by_route[route][str(status)] += 1
        if status == 429:
            self.rate_limited += 1
        elif isinstance(status, int) and 400 <= status < 500:
            self.invalid.append({"route": route, "status": status, "reason": reason or ""})

    def window_peak(self, client_id: str, in_window: int) -> None:
        """Remember the most requests seen in one rolling window for a credential."""
        if in_window > self.max_in_window.get(client_id, 0):
            self.max_in_window[client_id] = in_window

    def snapshot(self) -> StatsSnapshot:
        """JSON-serialisable view."""
        return {
            "total_requests": self.total_requests,
            "requests": {route: dict(counts) for route, counts in self.by_route.items()},
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "invalid": list(self.invalid),
            "max_in_window": dict(self.max_in_window),
        }

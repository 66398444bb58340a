"""Fault injection: scripted faults for chosen requests and random faults on writes (``fault_rate``).

Kinds: ``error_before`` (500, nothing written), ``error_after`` (the write is applied, then 500),
``drop_before`` / ``drop_after`` (connection dropped with no response, before or after applying),
``slow`` (sleep ``latency_ms`` or :data:`DEFAULT_SLOW_S`, then proceed normally).
"""

from __future__ import annotations

from shared.harvest.sandbox.state import Fault, SandboxConfig, State

FAULT_KINDS = ("error_before", "error_after", "drop_before", "drop_after", "slow")
RANDOM_KINDS = ("error_before", "error_after", "drop_after")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_SLOW_S = 2.0


class DropConnectionError(Exception):
    """Raised by :meth:`Sandbox.handle` when the connection must be dropped without a response.

    ``MockTransport`` callers see :class:`httpx.RemoteProtocolError`; the loopback server closes the socket.
    """


def add_fault(state: State, kind: str, method: str, path: str, count: int) -> Fault:
    """Queue a fault for the next ``count`` requests matching ``method`` and ``path``."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    if count < 1:
        raise ValueError("count must be at least 1")
    fault = Fault(kind, method.upper(), path, count)
    state.faults.append(fault)
    return fault


def take_fault(state: State, config: SandboxConfig, method: str, path: str, template: str | None) -> str | None:
    """The fault kind for this request, if any: scripted faults first, then ``fault_rate`` on /v3 writes."""
    for fault in state.faults:
        if fault.method == method and fault.path in (path, template):
            fault.count -= 1
            if fault.count <= 0:
                state.faults.remove(fault)
            return fault.kind
    is_write = method in WRITE_METHODS and path.startswith("/v3/")
    if is_write and config.fault_rate > 0 and state.rng.random() < config.fault_rate:
        return state.rng.choice(RANDOM_KINDS)
    return None

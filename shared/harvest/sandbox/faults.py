"""Fault injection: scripted faults for chosen requests, random faults on writes (``fault_rate``) and on
reads (``read_fault_rate``).

Kinds: ``error_before`` (500, nothing written), ``error_after`` (the write is applied, then 500),
``unavailable`` (503, nothing written), ``drop_before`` / ``drop_after`` (connection dropped with no
response, before or after applying), ``slow`` (sleep :attr:`SandboxConfig.slow_s`, default
:data:`~shared.harvest.sandbox.state.DEFAULT_SLOW_S`, then proceed normally), ``slow_after`` (apply the
request and count it in the stats, then sleep ``slow_s`` before the normal answer: the write has landed
while the client still waits, so a test can kill the client in between). Neither sleep holds the state's
lock: other requests are served meanwhile.

Random write faults hit /v3 writes and draw from :attr:`SandboxConfig.fault_kinds` (default
:data:`RANDOM_KINDS`); random read faults hit /v3 GETs and ``POST /token`` and draw from
:data:`READ_RANDOM_KINDS` (transient kinds that never apply anything). Scripted faults come first.
"""

from __future__ import annotations

import math

from shared.harvest.sandbox.state import Fault, SandboxConfig, State

FAULT_KINDS = ("error_before", "error_after", "unavailable", "drop_before", "drop_after", "slow", "slow_after")
RANDOM_KINDS = ("error_before", "error_after", "drop_after")
READ_RANDOM_KINDS = ("error_before", "unavailable", "drop_before", "slow")
BEFORE_KINDS = frozenset({"error_before", "unavailable", "drop_before"})
"""Kinds that answer (or drop) before the request is applied."""
AFTER_KINDS = frozenset({"error_after", "drop_after"})
"""Kinds that apply the request, then answer 500 or drop."""
SLOW_BEFORE = "slow"
"""Sleeps ``slow_s``, then the request is applied and answered."""
SLOW_AFTER = "slow_after"
"""The request is applied (and counted), then sleeps ``slow_s`` before its normal answer."""
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class DropConnectionError(Exception):
    """Raised by :meth:`Sandbox.handle` when the connection must be dropped without a response.

    ``MockTransport`` callers see :class:`httpx.RemoteProtocolError`; the loopback server closes the socket.
    """


def _check_kind(kind: str) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")


def _check_rate(name: str, rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1")


def check_config(config: SandboxConfig) -> None:
    """Raise ``ValueError`` for fault settings the sandbox cannot honour."""
    _check_rate("fault_rate", config.fault_rate)
    _check_rate("read_fault_rate", config.read_fault_rate)
    if config.fault_kinds is not None:
        if not config.fault_kinds:
            raise ValueError("fault_kinds must name at least one kind (None: the default kinds)")
        for kind in config.fault_kinds:
            _check_kind(kind)
    if not 0.0 <= config.slow_s < math.inf:
        raise ValueError("slow_s must be a finite number of seconds, 0 or more")


def add_fault(state: State, kind: str, method: str, path: str, count: int) -> Fault:
    """Queue a fault for the next ``count`` requests matching ``method`` and ``path``."""
    _check_kind(kind)
    if count < 1:
        raise ValueError("count must be at least 1")
    fault = Fault(kind, method.upper(), path, count)
    state.faults.append(fault)
    return fault


def _scripted(state: State, method: str, path: str, template: str | None) -> str | None:
    for fault in state.faults:
        if fault.method == method and fault.path in (path, template):
            fault.count -= 1
            if fault.count <= 0:
                state.faults.remove(fault)
            return fault.kind
    return None


def _random(state: State, rate: float, kinds: tuple[str, ...]) -> str | None:
    """One of ``kinds`` with probability ``rate`` (no draw at all when ``rate`` is 0: seeded runs stay put)."""
    if rate > 0 and state.rng.random() < rate:
        return state.rng.choice(kinds)
    return None


def take_fault(state: State, config: SandboxConfig, method: str, path: str, template: str | None) -> str | None:
    """The fault kind for this request, if any: scripted faults first, then ``fault_rate`` on /v3 writes,
    ``read_fault_rate`` on /v3 GETs and ``POST /token``."""
    scripted = _scripted(state, method, path, template)
    if scripted is not None:
        return scripted
    api = path.startswith("/v3/")
    if api and method in WRITE_METHODS:
        return _random(state, config.fault_rate, config.fault_kinds or RANDOM_KINDS)
    if (api and method == "GET") or (method == "POST" and path == "/token"):
        return _random(state, config.read_fault_rate, READ_RANDOM_KINDS)
    return None

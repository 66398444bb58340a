"""Per-credential circuit breaker: when Greenhouse keeps failing for a credential, stop sending for a while.

``failures`` consecutive transient failures of one credential (a 5xx, a timeout, a dropped or refused
connection, the token endpoint included) *open* its circuit: every process of the cluster then gets
:class:`CircuitOpenError` before sending anything (no rate-limit budget spent, no attempt wasted) until the
pause (``open_s``) is over. Then exactly one caller, cluster-wide, is let through as the *probe*
(half-open); the others keep getting :class:`CircuitOpenError` with a short ``retry_after_s`` until the
probe's answer is recorded. Any answer that is not a 5xx (2xx, 4xx, 429) closes the circuit and resets the
count; a failed probe opens it again with the pause doubled, up to ``max_open_s``. A probe whose answer is
never recorded (its process died) does not hold the circuit: its token expires after ``probe_ttl_s``.

Writes also have a circuit of their own per credential, counted and closed by writes alone: Greenhouse may
fail every write while reads still answer, and each answered read would otherwise reset the count, so such
an outage would never open anything. A write asks both circuits; its probe is a write. While only the write
circuit is open, reads (lookups, read-backs, reconciliation) go on.

State lives in Redis, one hash per credential (``ghx:cb:<client id>``: ``fails``, ``opened_at``,
``until``, ``pause``, ``probe``, ``probe_until``; times in Redis ``TIME`` milliseconds, so the hosts' clocks
never meet), its write circuit the hash ``ghx:cb:<client id>:writes``, changed only by the atomic scripts
below, plus the SET ``ghx:cb`` of circuits that are not closed (for :meth:`RedisCircuitBreaker.states`, an
operator console's view). The probe is remembered per thread and circuit: the thread that was let through
records its outcome, or releases it unsent.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from shared.errors import CircuitOpenError
from shared.harvest.limiter_scripts import LUA_HELPERS
from shared.settings import BreakerSettings

if TYPE_CHECKING:
    import redis

log = logging.getLogger("ghexport.harvest")

KEY_PREFIX = "ghx:cb:"
"""A credential's state is the hash ``<prefix><client id>``; the prefix without its colon names the SET of
credentials whose circuit is not closed."""
STATE_TTL_MS = 24 * 3600 * 1000
"""A credential nobody used for a day is forgotten (closed)."""
PROBE_BUSY_MS = 1000
"""``retry_after_s`` (ms) given while another caller's probe is out."""
WRITES = ":writes"
"""A credential's write circuit is the circuit ``<client id><WRITES>`` (its hash, its member of the SET)."""

_PRELUDE = LUA_HELPERS

BEFORE = (
    _PRELUDE
    + """
-- KEYS: state. ARGV: probe id, probe ttl ms, busy ms.
-- Returns {wait_ms, is_probe, fails, probe_out}: wait 0 means send (is_probe 1: as the circuit's one probe).
local now = now_ms()
local f = redis.call('HMGET', KEYS[1], 'until', 'probe_until', 'fails')
local untl = num(f[1])
if not untl then return {0, 0, 0, 0} end
local fails = num(f[3]) or 0
if now < untl then return {untl - now, 0, fails, 0} end
local pu = num(f[2])
if pu and now < pu then return {math.min(tonumber(ARGV[3]), pu - now), 0, fails, 1} end
redis.call('HSET', KEYS[1], 'probe', ARGV[1], 'probe_until', now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], """
    + str(STATE_TTL_MS)
    + """)
return {0, 1, fails, 0}
"""
)

RECORD = (
    _PRELUDE
    + """
-- KEYS: state, index. ARGV: ok (1/0), probe id ('' when not the probe), failures, open ms, max open ms,
-- credential. Returns {change, fails, pause_ms}; change: 0 none, 1 closed again, 2 opened, 3 probe failed.
local now = now_ms()
local f = redis.call('HMGET', KEYS[1], 'until', 'fails', 'pause', 'probe')
local untl, fails, pause = num(f[1]), num(f[2]) or 0, num(f[3]) or 0
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  if untl then
    redis.call('SREM', KEYS[2], ARGV[6])
    return {1, fails, pause}
  end
  return {0, 0, 0}
end
fails = fails + 1
if not untl then
  if fails >= tonumber(ARGV[3]) then
    pause = tonumber(ARGV[4])
    redis.call('HSET', KEYS[1], 'fails', fails, 'opened_at', now, 'until', now + pause, 'pause', pause)
    redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
    redis.call('SADD', KEYS[2], ARGV[6])
    redis.call('PEXPIRE', KEYS[1], """
    + str(STATE_TTL_MS)
    + """)
    return {2, fails, pause}
  end
  redis.call('HSET', KEYS[1], 'fails', fails)
  redis.call('PEXPIRE', KEYS[1], """
    + str(STATE_TTL_MS)
    + """)
  return {0, fails, 0}
end
if ARGV[2] ~= '' and f[4] == ARGV[2] then
  pause = math.min(math.max(pause, 1) * 2, tonumber(ARGV[5]))
  redis.call('HSET', KEYS[1], 'fails', fails, 'until', now + pause, 'pause', pause)
  redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
  return {3, fails, pause}
end
-- a request sent before the circuit opened failed late: counted, the pause is left alone
redis.call('HSET', KEYS[1], 'fails', fails)
return {0, fails, pause}
"""
)

RELEASE = """
-- KEYS: state. ARGV: probe id. The probe was let through but not sent: another caller may probe now.
if redis.call('HGET', KEYS[1], 'probe') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
  return 1
end
return 0
"""

READ = (
    _PRELUDE
    + """
-- KEYS: state. Returns {now, fails, opened_at, until, pause, probe_until} ('' for absent members).
local f = redis.call('HMGET', KEYS[1], 'fails', 'opened_at', 'until', 'pause', 'probe_until')
local out = {now_ms()}
for i = 1, 5 do out[i + 1] = f[i] or '' end
return out
"""
)

CircuitState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerState:
    """One credential's circuit as an operator sees it (epoch seconds of Redis ``TIME``)."""

    state: CircuitState
    """``closed`` (sending), ``open`` (pausing until ``open_until``), ``half_open`` (pause over: one probe
    request may go, or is out)."""
    failures: int
    """Consecutive transient failures so far."""
    opened_at: float | None = None
    open_until: float | None = None
    pause_s: float = 0.0
    """The current pause (doubled after each failed probe, up to ``max_open_s``); 0 when closed."""
    probe_out: bool = False
    """A probe request is out and its answer not recorded yet."""
    writes_only: bool = False
    """Only the credential's writes are paused (its write circuit): its reads are answered."""


CLOSED = BreakerState("closed", 0)


class CircuitBreaker(Protocol):
    """What the Harvest transport asks of the breaker, keyed by the credential's client id."""

    def before_send(self, key: str, *, write: bool = False) -> None:
        """Return when a request may be sent now; raise :class:`CircuitOpenError` while the circuit is open
        (or another caller's probe is out). A ``write`` asks the write circuit too."""

    def record(self, key: str, ok: bool, *, write: bool = False) -> None:
        """The request let through by :meth:`before_send` got an answer that is not a 5xx (``ok``), or a 5xx,
        a timeout or a connection failure (not ``ok``); a ``write`` counts in the write circuit too."""

    def release(self, key: str) -> None:
        """The request let through by :meth:`before_send` was not sent after all (the limiter refused it):
        if it was the probe, another caller may probe at once."""

    def blocked(self, key: str) -> bool:
        """True while the circuit (or the write circuit) is open and its pause not over, or a probe is out."""

    def state(self, key: str) -> BreakerState:
        """The circuit of ``key`` now; while it is closed, its write circuit (``writes_only``)."""

    def states(self) -> dict[str, BreakerState]:
        """Every credential whose circuit or write circuit is not closed."""


class NullCircuitBreaker:
    """Never opens (no Redis, breaker disabled, tests)."""

    def before_send(self, key: str, *, write: bool = False) -> None:
        """Always lets the request through."""

    def record(self, key: str, ok: bool, *, write: bool = False) -> None:
        """Forgets the outcome."""

    def release(self, key: str) -> None:
        """Nothing to give back."""

    def blocked(self, key: str) -> bool:
        """Never blocked."""
        return False

    def state(self, key: str) -> BreakerState:
        """Always closed."""
        return CLOSED

    def states(self) -> dict[str, BreakerState]:
        """No circuit is ever open."""
        return {}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt(value: object) -> float | None:
    text = _text(value)
    return float(text) if text else None


class RedisCircuitBreaker:
    """The breaker shared by every process through Redis (see the module docstring)."""

    def __init__(
        self,
        redis_client: redis.Redis,
        settings: BreakerSettings,
        *,
        probe_ttl_s: float = 40.0,
        key_prefix: str = KEY_PREFIX,
    ) -> None:
        self.redis = redis_client
        self.settings = settings
        self.probe_ttl_s = probe_ttl_s
        """How long a probe's answer is waited for before another caller may probe (HTTP timeout + margin)."""
        self.key_prefix = key_prefix
        self.index_key = key_prefix.rstrip(":")
        self._probes = threading.local()
        self._before = redis_client.register_script(BEFORE)
        self._record = redis_client.register_script(RECORD)
        self._release = redis_client.register_script(RELEASE)
        self._read = redis_client.register_script(READ)

    def _key(self, key: str) -> str:
        return self.key_prefix + key

    def _probe_ids(self) -> dict[str, str]:
        ids: dict[str, str] | None = getattr(self._probes, "by_key", None)
        if ids is None:
            ids = {}
            self._probes.by_key = ids
        return ids

    def before_send(self, key: str, *, write: bool = False) -> None:
        """Let the request through, as the probe when the pause is over; else raise :class:`CircuitOpenError`.
        A ``write`` must pass the write circuit too (its probe is a write)."""
        self._ask(key, key)
        if write:
            try:
                self._ask(key + WRITES, key)
            except CircuitOpenError:
                self._give_back(key)  # not sent after all: the credential's probe, if it was one, is free
                raise

    def _ask(self, circuit: str, key: str) -> None:
        probe_id = uuid.uuid4().hex
        args: list[str | int] = [probe_id, max(1, int(self.probe_ttl_s * 1000)), PROBE_BUSY_MS]
        wait_ms, is_probe, fails, probe_out = (int(v) for v in self._before(keys=[self._key(circuit)], args=args))
        if wait_ms <= 0:
            if is_probe:
                self._probe_ids()[circuit] = probe_id
                log.debug("circuit %s half open: one probe request goes to Greenhouse", circuit)
            return
        wait_s = wait_ms / 1000.0
        times, requests = ("writes", "writes") if circuit != key else ("times", "requests")
        if probe_out:
            what = f"a test request is checking whether it answers again; next try in {wait_s:.1f} s"
        else:
            what = f"pausing its {requests}; next try in {wait_s:.1f} s"
        raise CircuitOpenError(
            f"Greenhouse failed {fails} {times} in a row for credential {key}: {what}",
            retry_after_s=wait_s,
            failures=fails,
        )

    def record(self, key: str, ok: bool, *, write: bool = False) -> None:
        """Count a failure (opening the circuit at ``failures``), or close the circuit on an answer; a
        ``write`` counts in the write circuit too (only writes close it)."""
        self._count(key, key, ok)
        if write:
            self._count(key + WRITES, key, ok)

    def _count(self, circuit: str, key: str, ok: bool) -> None:
        probe_id = self._probe_ids().pop(circuit, "")
        s = self.settings
        args: list[str | int] = [
            "1" if ok else "0",
            probe_id,
            max(1, s.failures),
            max(1, int(s.open_s * 1000)),
            max(1, int(max(s.max_open_s, s.open_s) * 1000)),
            circuit,
        ]
        change, fails, pause_ms = (int(v) for v in self._record(keys=[self._key(circuit), self.index_key], args=args))
        name, times, requests = (
            ("write circuit", "writes", "writes") if circuit != key else ("circuit", "times", "requests")
        )
        if change == 1:
            log.info("Greenhouse answers again for %s: %s closed", key, name)
        elif change == 2:
            log.warning(
                "Greenhouse failed %d %s in a row for %s: %s open, %s paused for %.1f s",
                fails,
                times,
                key,
                name,
                requests,
                pause_ms / 1000,
            )
        elif change == 3:
            log.debug("probe for %s failed: %s open again for %.1f s", key, name, pause_ms / 1000)

    def release(self, key: str) -> None:
        """Give the probes back when the request let through was not sent."""
        self._give_back(key)
        self._give_back(key + WRITES)

    def _give_back(self, circuit: str) -> None:
        probe_id = self._probe_ids().pop(circuit, None)
        if probe_id is not None:
            self._release(keys=[self._key(circuit)], args=[probe_id])

    def blocked(self, key: str) -> bool:
        """True while the circuit or the write circuit is open and its pause not over, or a probe is out."""
        return any(s.state == "open" or s.probe_out for s in (self._read_state(key), self._read_state(key + WRITES)))

    def state(self, key: str) -> BreakerState:
        """The circuit of ``key`` now (read atomically with Redis ``TIME``); while it is closed, its write
        circuit's (``writes_only``); both closed, the longer run of failures."""
        main = self._read_state(key)
        if main.state != "closed":
            return main
        writes = self._read_state(key + WRITES)
        if writes.state != "closed":
            return writes
        return BreakerState("closed", max(main.failures, writes.failures))

    def _read_state(self, circuit: str) -> BreakerState:
        raw = self._read(keys=[self._key(circuit)])
        now = float(_text(raw[0])) / 1000
        fails, opened, until, pause, probe_until = (_opt(v) for v in raw[1:])
        if until is None:
            return BreakerState("closed", int(fails or 0))
        return BreakerState(
            "open" if now < until / 1000 else "half_open",
            int(fails or 0),
            opened_at=opened / 1000 if opened is not None else None,
            open_until=until / 1000,
            pause_s=(pause or 0) / 1000,
            probe_out=probe_until is not None and now < probe_until / 1000,
            writes_only=circuit.endswith(WRITES),
        )

    def states(self) -> dict[str, BreakerState]:
        """Every credential whose circuit or write circuit is not closed (forgotten ones leave the index)."""
        out: dict[str, BreakerState] = {}
        for member in sorted(_text(m) for m in self.redis.smembers(self.index_key)):
            if self._read_state(member).state == "closed":
                self.redis.srem(self.index_key, member)
            else:
                key = member.removesuffix(WRITES)
                out[key] = self.state(key)
        return out

    def reset(self, key: str) -> None:
        """Close ``key``'s circuits and forget their failures (tests, operator tooling)."""
        self.redis.delete(self._key(key), self._key(key + WRITES))
        self.redis.srem(self.index_key, key, key + WRITES)


def make_breaker(
    redis_client: redis.Redis | None, settings: BreakerSettings, *, probe_ttl_s: float = 40.0
) -> CircuitBreaker:
    """The shared Redis breaker, or :class:`NullCircuitBreaker` when disabled or without Redis."""
    if not settings.enabled or redis_client is None:
        return NullCircuitBreaker()
    return RedisCircuitBreaker(redis_client, settings, probe_ttl_s=probe_ttl_s)

"""Holds: credentials whose parked items must not be released, and why (shared by every process in Redis).

A partner connection whose consent Greenhouse no longer honours is *held*: its items stay parked in its
queue (:mod:`shared.harvest.limiter`), and the workers' pacers release none of them, until a new consent
lifts the hold; then they go on at once, in their order, without any export or retry command. The key is
the one the limiter and the circuit breaker use (:attr:`shared.harvest.auth.Credential.key`). Redis holds
only a copy: the store's grant state is the truth, and the workers' periodic turn writes it here again
(:meth:`CredentialHolds.sync`) if Redis lost it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import redis

HOLDS_KEY = "holds"
"""Hash under the limiter's key prefix: credential key -> the reason it is held."""


class Holds(Protocol):
    """Which credentials are held (:class:`CredentialHolds`, or :class:`NoHolds` without Redis)."""

    def hold(self, key: str, reason: str) -> None: ...

    def lift(self, key: str) -> bool: ...

    def held(self) -> dict[str, str]: ...

    def sync(self, wanted: Mapping[str, str]) -> None: ...


class NoHolds:
    """No Redis, no pacer: nothing is parked, so nothing is held (items wait with a countdown instead)."""

    def hold(self, key: str, reason: str) -> None:
        """Nothing to hold."""

    def lift(self, key: str) -> bool:
        """Nothing was held."""
        return False

    def held(self) -> dict[str, str]:
        """None."""
        return {}

    def sync(self, wanted: Mapping[str, str]) -> None:
        """Nothing to write."""


class CredentialHolds:
    """Holds in one Redis hash (one round trip for the pacer's whole tick)."""

    def __init__(self, redis_client: redis.Redis, key_prefix: str) -> None:
        self.redis = redis_client
        self.name = key_prefix + HOLDS_KEY

    def hold(self, key: str, reason: str) -> None:
        """Hold ``key``'s parked items (idempotent; the reason is what operators see)."""
        self.redis.hset(self.name, key, reason[:300])

    def lift(self, key: str) -> bool:
        """Let ``key``'s parked items go again; True when it was held."""
        return bool(self.redis.hdel(self.name, key))

    def held(self) -> dict[str, str]:
        """Every held key and its reason."""
        raw: dict[bytes | str, bytes | str] = self.redis.hgetall(self.name)
        return {_text(k): _text(v) for k, v in raw.items()}

    def sync(self, wanted: Mapping[str, str]) -> None:
        """Make the holds exactly ``wanted`` (from the store's grant states)."""
        current = self.held()
        stale = [k for k in current if k not in wanted]
        if stale:
            self.redis.hdel(self.name, *stale)
        for key, reason in wanted.items():
            if current.get(key) != reason[:300]:
                self.redis.hset(self.name, key, reason[:300])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""Organizations (Greenhouse customer accounts) of one sandbox: each its own records and, for partner
tokens, its own rate-limit budget.

The default organization is :attr:`Sandbox.state <shared.harvest.sandbox.app.Sandbox.state>`
(:data:`~shared.harvest.sandbox.seed.ORG_ID`); a custom credential's token acts in it. A partner token acts in
the organization it was consented for, and Greenhouse counts the rate limit per customer account, so a partner
client has one budget per organization, kept under :func:`budget_key`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from shared.harvest.sandbox.state import RateLimit, SandboxConfig, State, Token


def budget_key(client_id: str, org_id: int | None) -> str:
    """The rate-limit and stats key of a token: ``client_id`` for a custom credential (``org_id`` None),
    ``f"{client_id}@{org_id}"`` for a partner client in one organization."""
    return client_id if org_id is None else f"{client_id}@{org_id}"


def check_limits(rate_limit: int | None, window_s: float | None) -> None:
    """``ValueError`` unless each of an own rate limit and window is ``None`` or positive (the window finite)."""
    if rate_limit is not None and (isinstance(rate_limit, bool) or not isinstance(rate_limit, int) or rate_limit <= 0):
        raise ValueError("rate_limit must be a positive integer")
    if window_s is not None and not 0 < window_s < math.inf:
        raise ValueError("window_s must be a positive number of seconds")


@dataclass
class Organization:
    """One Greenhouse customer account: its id, name and records, its own rate limit and window for partner
    tokens (``None``: the configuration's), and the service-account user a service-account consent acts as."""

    org_id: int
    name: str
    state: State
    service_account_id: int
    rate_limit: int | None = None
    window_s: float | None = None

    def limit(self, config: SandboxConfig) -> RateLimit:
        """The organization's own limit and window where set, else the configuration's."""
        return RateLimit(
            config.rate_limit if self.rate_limit is None else self.rate_limit,
            config.window_s if self.window_s is None else self.window_s,
        )


class Organizations:
    """The sandbox's organizations by id; the first one given is the default. Guarded by the default
    organization's lock, like everything else."""

    def __init__(self, default: Organization) -> None:
        self.default = default
        self._by_id = {default.org_id: default}

    def add(self, org: Organization) -> None:
        """Register a new organization; ``ValueError`` if its id is taken."""
        if org.org_id in self._by_id:
            raise ValueError(f"organization {org.org_id} already exists")
        self._by_id[org.org_id] = org

    def get(self, org_id: int | None) -> Organization:
        """The organization with this id (``None``: the default); ``KeyError`` for an unknown one."""
        if org_id is None:
            return self.default
        try:
            return self._by_id[org_id]
        except KeyError:
            raise KeyError(f"organization {org_id} does not exist") from None

    def of(self, token: Token) -> Organization:
        """The organization a token acts in."""
        return self.get(token.org_id)

    def __contains__(self, org_id: object) -> bool:
        return org_id in self._by_id

    def __iter__(self) -> Iterator[Organization]:
        return iter(list(self._by_id.values()))

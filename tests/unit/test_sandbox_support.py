"""Helpers shared by the sandbox tests: a fake clock and a client bound to a fresh sandbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from shared.harvest.sandbox import Sandbox, SandboxConfig
from shared.harvest.sandbox.seed import ADMIN_USER_ID, CLIENT_ID, CLIENT_SECRET

BASE_URL = "http://sandbox.test"


class FakeClock:
    """A clock the test advances by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    """A sandbox, its clock, recorded sleeps and an ``httpx.Client`` on its MockTransport."""

    sandbox: Sandbox
    clock: FakeClock
    client: httpx.Client
    sleeps: list[float] = field(default_factory=list)

    def token(self, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET, sub: int | None = None) -> str:
        data = {"grant_type": "client_credentials"}
        if sub is not None:
            data["sub"] = str(sub)
        response = self.client.post("/token", auth=(client_id, secret), data=data)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def headers(self, **token_args: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**token_args)}"}

    def __enter__(self) -> Env:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.close()


def make_env(**config: Any) -> Env:
    """A fresh seeded sandbox with ``SandboxConfig(**config)`` and an injected clock and sleep."""
    clock = FakeClock()
    sleeps: list[float] = []
    sandbox = Sandbox(SandboxConfig(**config), clock=clock, sleep=sleeps.append)
    client = httpx.Client(transport=sandbox.transport(), base_url=BASE_URL)
    return Env(sandbox, clock, client, sleeps)


class Api:
    """An authenticated caller (admin ``sub`` by default) for tests that are not about auth."""

    def __init__(self, env: Env, sub: int | None = ADMIN_USER_ID) -> None:
        self.env = env
        self.auth = env.headers(sub=sub)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.env.client.get(path, params=params, headers=self.auth)

    def post(self, path: str, body: object) -> httpx.Response:
        return self.env.client.post(path, json=body, headers=self.auth)

    def patch(self, path: str, body: object) -> httpx.Response:
        return self.env.client.patch(path, json=body, headers=self.auth)

    def delete(self, path: str) -> httpx.Response:
        return self.env.client.delete(path, headers=self.auth)


def fields_of(response: httpx.Response) -> list[str | None]:
    """The ``field`` of each error in a Harvest error body."""
    return [e.get("field") for e in response.json().get("errors") or []]

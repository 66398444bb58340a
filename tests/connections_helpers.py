"""Helpers shared by the connection tests: settings, sandbox, HTTP client and store on SQLite."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from shared.connections.crypto import generate_key
from shared.harvest.client import HarvestClient
from shared.harvest.sandbox import Sandbox, SandboxConfig
from shared.harvest.sandbox.seed import CLIENT_ID, CLIENT_SECRET
from shared.settings import HarvestSettings, LimiterSettings, Settings

HARVEST_URL = "https://harvest.sandbox.test"
TOKEN_URL = "https://auth.sandbox.test/token"


def make_settings(database_url: str, **over: Any) -> Settings:
    """Settings for tests: no env file, a fresh secret key, no quick retries, limiter off."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "harvest_url": HARVEST_URL,
        "harvest_token_url": TOKEN_URL,
        "secret_key": SecretStr(generate_key()),
        "harvest": HarvestSettings(quick_retries=0),
        "limiter": LimiterSettings(enabled=False),
        "broker_url": "memory://",
        "redis_url": "redis://127.0.0.1:1/0",
    }
    values.update(over)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_sandbox(clock: Any = None, **config: Any) -> Sandbox:
    return Sandbox(SandboxConfig(**config), clock=clock)


def http_for(sandbox: Sandbox) -> httpx.Client:
    return httpx.Client(transport=sandbox.transport())


def seeded_reader(settings: Settings, http: httpx.Client) -> HarvestClient:
    """A service-account client on the sandbox's seeded (all scopes) credential."""
    from shared.harvest.auth import Credential

    return HarvestClient(
        settings,
        Credential(client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET)),
        http_client=http,
    )

"""HarvestClient over real HTTP (the client's own httpx.Client) against the sandbox on a loopback port.

The same scenarios as tests/unit/test_client_sandbox.py, plus what only a socket shows: dropped
connections, read timeouts, 429 over the wire.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from shared import errors as e
from shared.harvest.auth import Credential
from shared.harvest.client import HarvestClient
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from shared.settings import HarvestSettings, Settings
from tests.unit.test_client_sandbox import (
    FAULTS,
    Make,
    check_bad_credential,
    check_forbidden,
    check_lookups,
    check_pagination,
    check_read_fault_retried,
    check_validation,
    check_write_fault,
    check_writes,
)


def settings_for(server: SandboxServer, **harvest: object) -> Settings:
    return Settings(
        harvest_url=server.harvest_url,
        harvest_token_url=server.token_url,
        harvest=HarvestSettings(**harvest),  # type: ignore[arg-type]
    )


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(SandboxConfig())


@pytest.fixture
def server(sandbox: Sandbox) -> Iterator[SandboxServer]:
    with SandboxServer(sandbox, port=0) as srv:
        yield srv


@pytest.fixture
def make(server: SandboxServer) -> Iterator[Make]:
    made: list[HarvestClient] = []

    def factory(
        *,
        sub: int | None = None,
        client_id: str = seed.CLIENT_ID,
        secret: str = seed.CLIENT_SECRET,
        timeout_s: float = 5.0,
    ) -> HarvestClient:
        cred = Credential(client_id=client_id, client_secret=SecretStr(secret))
        client = HarvestClient(settings_for(server, timeout_s=timeout_s, quick_retry_max_wait_s=0.05), cred, sub=sub)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


def test_lookups(make: Make) -> None:
    check_lookups(make)


def test_writes(make: Make) -> None:
    check_writes(make)


def test_pagination_over_several_pages(make: Make) -> None:
    check_pagination(make)


def test_forbidden_names_the_scope(make: Make, sandbox: Sandbox) -> None:
    check_forbidden(make, sandbox.add_credential)


def test_validation_field_errors(make: Make) -> None:
    check_validation(make)


def test_bad_credential(make: Make) -> None:
    check_bad_credential(make)


@pytest.mark.parametrize(("kind", "cls"), FAULTS)
def test_write_faults(make: Make, sandbox: Sandbox, kind: str, cls: type[e.HarvestError]) -> None:
    check_write_fault(make, sandbox.inject_fault, kind, cls)


@pytest.mark.parametrize("kind", ["error_before", "drop_before"])
def test_read_faults_retried(make: Make, sandbox: Sandbox, kind: str) -> None:
    check_read_fault_retried(make, sandbox.inject_fault, kind)


def test_slow_write_times_out_with_unknown_outcome(server: SandboxServer, sandbox: Sandbox) -> None:
    sandbox.config.latency_ms = 0
    sandbox.inject_fault("slow", method="POST", path="/v3/candidate_tags")
    cred = Credential(client_id=seed.CLIENT_ID, client_secret=SecretStr(seed.CLIENT_SECRET))
    with HarvestClient(settings_for(server, timeout_s=0.3), cred) as client:
        client.mint_token()
        with pytest.raises(e.HarvestTimeoutError) as info:
            client.create_tag("slow-tag")
    assert info.value.outcome_unknown and info.value.path == "/v3/candidate_tags"


def test_expired_token_remints_once(make: Make, sandbox: Sandbox) -> None:
    client = make()
    client.list_tags()
    sandbox.expire_tokens()
    assert client.list_tags()
    assert sandbox.stats()["requests"]["POST /token"] == {"200": 2}


def test_rate_limited_over_http() -> None:
    sandbox = Sandbox(SandboxConfig(rate_limit=2, window_s=30.0))
    cred = Credential(client_id=seed.CLIENT_ID, client_secret=SecretStr(seed.CLIENT_SECRET))
    with SandboxServer(sandbox, port=0) as server, HarvestClient(settings_for(server), cred) as client:
        client.list_tags()
        client.list_tags()
        with pytest.raises(e.RateLimitedError) as info:
            client.list_tags()
        assert 0 < info.value.retry_after_s <= 30.0
        assert client.last_rate_limit is not None and client.last_rate_limit.remaining == 0
        assert sandbox.stats()["requests"]["GET /v3/candidate_tags"] == {"200": 2, "429": 1}

"""Connections over real HTTP (loopback sandbox server), on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from shared.connections.checks import CredentialRefusedError, MissingPermissionsError, UserMappingError
from shared.connections.lookups import Lookups
from shared.connections.service import (
    CONNECTION_REMOVED,
    connect,
    credential_for,
    disconnect,
    get_connection,
    list_connections,
    load_connection,
)
from shared.connections.targets import check_target
from shared.errors import ConnectionNotFoundError, TargetNotAllowedError
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer
from shared.harvest.sandbox.seed import (
    ALL_SCOPES,
    CLIENT_ID,
    CLIENT_SECRET,
    CLOSED_JOB_ID,
    OPEN_JOB_ID,
    POOL_2_STAGE_ID,
    POOL_ID,
    RECRUITER_EMAIL,
    RECRUITER_USER_ID,
)
from shared.settings import Settings
from shared.store.db import open_store
from shared.store.models import Batch, Item, ItemStatus
from tests.connections_helpers import make_settings


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(rate_limit=10_000))


@pytest.fixture
def server(sandbox: Sandbox) -> Iterator[SandboxServer]:
    with SandboxServer(sandbox) as srv:
        yield srv


@pytest.fixture
def settings(database_url: str, server: SandboxServer) -> Settings:
    return make_settings(database_url, harvest_url=server.harvest_url, harvest_token_url=server.token_url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = open_store(settings.database_url)
    yield eng
    eng.dispose()


def _connect(settings: Settings, engine: Engine, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "name": "acme",
        "client_id": CLIENT_ID,
        "client_secret": SecretStr(CLIENT_SECRET),
        "user_email": RECRUITER_EMAIL,
        "readback_wait_s": 5.0,
        "readback_poll_s": 0.05,
    }
    args.update(kw)
    return connect(settings, engine, **args)  # type: ignore[arg-type]


def test_connect_verify_and_disconnect_over_http(settings, engine, sandbox) -> None:
    result = _connect(settings, engine, verify="prospect", enable_pools=True)

    assert result.connection.user_id == RECRUITER_USER_ID
    cid = result.verified_candidate_id
    assert cid in {c["id"] for c in sandbox.state_snapshot()["candidates"]}
    stored = get_connection(engine, "acme")
    assert CLIENT_SECRET not in stored.client_secret_encrypted
    assert credential_for(stored, settings).client_secret.get_secret_value() == CLIENT_SECRET

    assert stored.id is not None
    with Session(engine) as session:
        session.add(Batch(id="b1", connection_id=stored.id, target_kind="prospect", user_email="x", user_id=1))
        for n, status in enumerate((ItemStatus.QUEUED, ItemStatus.SENDING, ItemStatus.SYNCED)):
            session.add(Item(batch_id="b1", connection_id=stored.id, profile_id=f"p{n}", status=status))
        session.commit()

    assert disconnect(engine, "acme") == 2
    with Session(engine) as session:
        items = sorted(session.exec(select(Item)).all(), key=lambda i: i.profile_id)
    assert [(i.status, i.error) for i in items] == [
        (ItemStatus.FAILED, CONNECTION_REMOVED),
        (ItemStatus.FAILED, CONNECTION_REMOVED),
        (ItemStatus.SYNCED, None),
    ]
    with pytest.raises(ConnectionNotFoundError, match=CONNECTION_REMOVED):
        load_connection(engine, stored.id)

    again = _connect(settings, engine)  # rotation / reconnection revives the same row
    assert again.created is False and again.connection.id == stored.id
    assert [c.name for c in list_connections(engine)] == ["acme"]


def test_connect_failures_over_http(settings, engine, sandbox) -> None:
    with pytest.raises(CredentialRefusedError):
        _connect(settings, engine, client_secret=SecretStr("wrong"))
    sandbox.add_credential("few", "few-secret", [s for s in ALL_SCOPES if s != "harvest:close_reasons:list"])
    with pytest.raises(MissingPermissionsError, match=r"Get Close Reasons \(harvest:close_reasons:list\)"):
        _connect(settings, engine, client_id="few", client_secret=SecretStr("few-secret"))
    with pytest.raises(UserMappingError, match="did you mean"):
        _connect(settings, engine, user_email=RECRUITER_EMAIL.upper())
    assert list_connections(engine) == []


def test_check_target_over_http(settings, engine) -> None:
    conn = _connect(settings, engine, enable_pools=True).connection
    with httpx.Client() as http:
        from shared.connections.service import reader_for

        reader = reader_for(conn, settings, http_client=http)
        assert conn.id is not None
        lookups = Lookups(reader, conn.id, None, 60.0)
        check_target(conn, "job", OPEN_JOB_ID, None, None, lookups)
        with pytest.raises(TargetNotAllowedError, match=f"job {CLOSED_JOB_ID} is not open"):
            check_target(conn, "job", CLOSED_JOB_ID, None, None, lookups)
        with pytest.raises(TargetNotAllowedError, match="does not belong to prospect pool"):
            check_target(conn, "prospect", None, POOL_ID, POOL_2_STAGE_ID, lookups)

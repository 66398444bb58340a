"""Connect, reconnect, list, load and disconnect against the sandbox (MockTransport) and SQLite."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from shared.connections import checks as connect_checks
from shared.connections.checks import (
    CredentialRefusedError,
    MissingPermissionsError,
    SourceProblemError,
    UserMappingError,
)
from shared.connections.crypto import MISSING_KEY, generate_key
from shared.connections.service import (
    CONNECTION_REMOVED,
    ConnectResult,
    connect,
    connection_summary,
    credential_for,
    disconnect,
    get_connection,
    list_connections,
    load_connection,
)
from shared.errors import ConfigurationError, ConnectionNotFoundError, TargetNotAllowedError, UserError
from shared.harvest.sandbox import Sandbox
from shared.harvest.sandbox.seed import (
    ALL_SCOPES,
    CLIENT_ID,
    CLIENT_SECRET,
    CLOSED_JOB_ID,
    DEACTIVATED_EMAIL,
    OPEN_JOB_ID,
    RECRUITER_EMAIL,
    RECRUITER_LOWER_EMAIL,
    RECRUITER_LOWER_USER_ID,
    RECRUITER_USER_ID,
    SOURCE_ID,
    SOURCE_NAME,
)
from shared.harvest.scopes import REQUIRED, REQUIRED_SCOPES
from shared.settings import Settings
from shared.store.db import open_store
from shared.store.models import Batch, Connection, Item, ItemStatus
from tests.connections_helpers import http_for, make_sandbox, make_settings


@pytest.fixture
def sandbox() -> Sandbox:
    return make_sandbox(rate_limit=10_000)


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    client = http_for(sandbox)
    yield client
    client.close()


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = open_store(settings.database_url)
    yield eng
    eng.dispose()


def _connect(settings: Settings, engine: Engine, http: httpx.Client, **kw: Any) -> ConnectResult:
    args: dict[str, Any] = {
        "name": "acme",
        "client_id": CLIENT_ID,
        "client_secret": SecretStr(CLIENT_SECRET),
        "user_email": RECRUITER_EMAIL,
        "http_client": http,
        "readback_wait_s": 0.0,
    }
    args.update(kw)
    return connect(settings, engine, **args)


def test_connect_checks_everything_and_stores_the_connection(
    settings: Settings, engine: Engine, http: httpx.Client
) -> None:
    result = _connect(settings, engine, http, enable_pools=True)

    assert result.created is True
    assert result.user.id == RECRUITER_USER_ID
    assert result.source.id == SOURCE_ID
    assert result.verified_candidate_id is None
    stored = get_connection(engine, "acme")
    assert stored.user_id == RECRUITER_USER_ID
    assert stored.user_email == RECRUITER_EMAIL
    assert (stored.source_id, stored.source_name) == (SOURCE_ID, SOURCE_NAME)
    assert (stored.prospects_only, stored.pools_enabled) == (False, True)
    assert stored.scopes == list(REQUIRED_SCOPES)
    assert stored.removed_at is None
    # encrypted at rest, decryptable with the key
    assert CLIENT_SECRET not in stored.client_secret_encrypted
    assert credential_for(stored, settings).client_secret.get_secret_value() == CLIENT_SECRET
    assert CLIENT_SECRET not in repr(stored) + str(connection_summary(stored)) + repr(result)


def test_distinct_users_whose_emails_differ_only_in_case_map_to_their_own_ids(
    settings: Settings, engine: Engine, http: httpx.Client
) -> None:
    result = _connect(settings, engine, http, name="lower", user_email=RECRUITER_LOWER_EMAIL)
    assert result.connection.user_id == RECRUITER_LOWER_USER_ID != RECRUITER_USER_ID


def test_wrong_secret_is_refused_and_nothing_stored(settings: Settings, engine: Engine, http: httpx.Client) -> None:
    with pytest.raises(CredentialRefusedError) as err:
        _connect(settings, engine, http, client_secret=SecretStr("not-the-secret"))
    assert f"refused the client id {CLIENT_ID} or its client secret" in str(err.value)
    assert "not-the-secret" not in str(err.value)
    assert list_connections(engine) == []


def test_every_missing_scope_is_named_in_one_message(
    settings: Settings, engine: Engine, http: httpx.Client, sandbox: Sandbox
) -> None:
    removed = {"harvest:candidates:merge", "harvest:notes:create", "harvest:prospect_pool_stages:list"}
    sandbox.add_credential("limited", "limited-secret", [s for s in ALL_SCOPES if s not in removed])

    with pytest.raises(MissingPermissionsError) as err:
        _connect(settings, engine, http, client_id="limited", client_secret=SecretStr("limited-secret"))

    assert {p.scope for p in err.value.missing} == removed
    message = str(err.value)
    assert "lacks 3 permissions" in message
    for label in (
        "Merge Candidates (harvest:candidates:merge)",
        "Add Note (harvest:notes:create)",
        "List Prospect Pool Stages (harvest:prospect_pool_stages:list)",
    ):
        assert label in message
    assert "Add Candidate (harvest:candidates:create)" not in message
    assert list_connections(engine) == []


def test_credential_with_no_scope_lists_all_of_them(
    settings: Settings, engine: Engine, http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.add_credential("bare", "bare-secret", [])
    with pytest.raises(MissingPermissionsError) as err:
        _connect(settings, engine, http, client_id="bare", client_secret=SecretStr("bare-secret"))
    assert len(err.value.missing) == len(REQUIRED)


def test_email_differing_only_in_case_is_refused_with_a_suggestion(
    settings: Settings, engine: Engine, http: httpx.Client
) -> None:
    with pytest.raises(UserMappingError) as err:
        _connect(settings, engine, http, user_email="RECRUITER.ONE@sandbox.example")
    message = str(err.value)
    assert message.startswith("no Greenhouse user has exactly the email RECRUITER.ONE@sandbox.example; did you mean")
    assert RECRUITER_EMAIL in message and RECRUITER_LOWER_EMAIL in message
    assert list_connections(engine) == []


def test_unknown_email_is_refused(settings: Settings, engine: Engine, http: httpx.Client) -> None:
    with pytest.raises(UserMappingError, match=r"no Greenhouse user has the email nobody@x\.example;"):
        _connect(settings, engine, http, user_email="nobody@x.example")


def test_deactivated_user_is_refused(settings: Settings, engine: Engine, http: httpx.Client) -> None:
    with pytest.raises(UserMappingError, match="is deactivated"):
        _connect(settings, engine, http, user_email=DEACTIVATED_EMAIL)


def test_missing_source_says_how_to_create_it(settings: Settings, engine: Engine, http: httpx.Client) -> None:
    with pytest.raises(SourceProblemError) as err:
        _connect(settings, engine, http, source_name="Nope")
    assert "there is no source named Nope" in str(err.value)
    assert (
        "In Greenhouse: Configure > Custom Options > Sources: add a source named Nope with the strategy "
        "Prospecting" in str(err.value)
    )


def test_source_with_another_strategy_is_explained(settings: Settings, engine: Engine, http: httpx.Client) -> None:
    with pytest.raises(SourceProblemError, match="the source LinkedIn exists with the strategy Social Media"):
        _connect(settings, engine, http, source_name="LinkedIn")


def test_missing_secret_key_fails_before_any_request(sqlite_url: str, engine: Engine) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with pytest.raises(ConfigurationError) as err:
        _connect(make_settings(sqlite_url, secret_key=None), engine, http)
    assert str(err.value) == MISSING_KEY
    assert calls == []


def _candidate(sandbox: Sandbox, cid: int) -> dict[str, Any]:
    found = [c for c in sandbox.state_snapshot()["candidates"] if c["id"] == cid]
    assert len(found) == 1, f"candidate {cid} not in the sandbox"
    return found[0]


def test_verify_prospect_exports_a_test_candidate_and_reads_it_back(
    settings: Settings, engine: Engine, http: httpx.Client, sandbox: Sandbox
) -> None:
    result = _connect(settings, engine, http, verify="prospect")

    cid = result.verified_candidate_id
    assert cid is not None
    assert f"All good: test candidate exported with Greenhouse id {cid}" in result.messages
    candidate = _candidate(sandbox, cid)
    assert (candidate["first_name"], candidate["last_name"]) == ("Greenhouse Export", "Test")
    assert candidate["email_addresses"][0]["value"].startswith("ghexport-verify+")
    apps = candidate["applications"]
    assert len(apps) == 1 and apps[0]["prospect"] is True and apps[0]["source_id"] == SOURCE_ID


def test_verify_job_exports_to_the_open_job(
    settings: Settings, engine: Engine, http: httpx.Client, sandbox: Sandbox
) -> None:
    result = _connect(settings, engine, http, verify=OPEN_JOB_ID)
    assert result.verified_candidate_id is not None
    apps = _candidate(sandbox, result.verified_candidate_id)["applications"]
    assert [a["job_id"] for a in apps] == [OPEN_JOB_ID]


def test_verify_job_refuses_a_closed_job_and_stores_nothing(
    settings: Settings, engine: Engine, http: httpx.Client, sandbox: Sandbox
) -> None:
    before = len(sandbox.state_snapshot()["candidates"])
    with pytest.raises(TargetNotAllowedError, match=f"job {CLOSED_JOB_ID} is not open \\(status closed\\)"):
        _connect(settings, engine, http, verify=CLOSED_JOB_ID)
    assert len(sandbox.state_snapshot()["candidates"]) == before
    assert list_connections(engine) == []


def test_verify_job_conflicts_with_prospects_only(settings: Settings, engine: Engine, http: httpx.Client) -> None:
    with pytest.raises(UserError, match="--verify-job cannot be used with --prospects-only"):
        _connect(settings, engine, http, verify=OPEN_JOB_ID, prospects_only=True)


def test_readback_waits_for_the_delayed_record(settings: Settings, engine: Engine) -> None:
    now = [1000.0]
    sandbox = make_sandbox(clock=lambda: now[0], visibility_delay_s=5.0)
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    with http_for(sandbox) as http:
        result = _connect(
            settings, engine, http, verify="prospect", readback_wait_s=30.0, readback_poll_s=2.0, sleep=sleep
        )
    assert result.verified_candidate_id is not None
    assert slept and sum(slept) >= 5.0


def test_readback_gives_up_after_the_wait(settings: Settings, engine: Engine) -> None:
    sandbox = make_sandbox(visibility_delay_s=3600.0)
    clock = [0.0]

    def sleep(s: float) -> None:
        clock[0] += s

    with http_for(sandbox) as http, pytest.raises(connect_checks.VerificationError) as err:
        _connect(
            settings,
            engine,
            http,
            verify="prospect",
            readback_wait_s=1.0,
            readback_poll_s=0.5,
            sleep=sleep,
            clock=lambda: clock[0],
        )
    assert "was created but could not be read back within 1s" in str(err.value)
    assert list_connections(engine) == []


def test_secret_never_reaches_a_log_line(
    settings: Settings, engine: Engine, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _connect(settings, engine, http, verify="prospect")
    with pytest.raises(CredentialRefusedError):
        _connect(settings, engine, http, name="bad", client_secret=SecretStr("wrong-" + CLIENT_SECRET))
    assert caplog.records, "connect should log its progress"
    everything = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert CLIENT_SECRET not in everything
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() not in everything


def test_connect_again_rotates_the_secret_and_revives_a_removed_connection(
    settings: Settings, engine: Engine, http: httpx.Client
) -> None:
    first = _connect(settings, engine, http)
    disconnect(engine, "acme")
    second = _connect(settings, engine, http, prospects_only=True)

    assert second.created is False
    assert second.connection.id == first.connection.id
    conn = get_connection(engine, "acme")
    assert conn.removed_at is None and conn.prospects_only is True
    assert conn.client_secret_encrypted != first.connection.client_secret_encrypted  # fresh ciphertext
    assert credential_for(conn, settings).client_secret.get_secret_value() == CLIENT_SECRET
    assert [c.name for c in list_connections(engine)] == ["acme"]


def test_a_changed_key_cannot_decrypt(settings: Settings, engine: Engine, http: httpx.Client) -> None:
    conn = _connect(settings, engine, http).connection
    other = settings.model_copy(update={"secret_key": SecretStr(generate_key())})
    with pytest.raises(ConfigurationError, match="cannot decrypt the stored secret of connection acme"):
        credential_for(conn, other)


def _add_items(engine: Engine, connection_id: int, statuses: Sequence[ItemStatus]) -> None:
    with Session(engine) as session:
        session.add(Batch(id="b1", connection_id=connection_id, target_kind="prospect", user_email="x", user_id=1))
        for n, status in enumerate(statuses):
            session.add(Item(batch_id="b1", connection_id=connection_id, profile_id=f"p{n}", status=status))
        session.commit()


def test_disconnect_fails_unfinished_items_and_keeps_the_row(
    settings: Settings, engine: Engine, http: httpx.Client
) -> None:
    conn = _connect(settings, engine, http).connection
    statuses = [ItemStatus.QUEUED, ItemStatus.SENDING, ItemStatus.EXPORTED, ItemStatus.FAILED]
    _add_items(engine, conn.id, statuses)

    assert disconnect(engine, "acme") == 2

    with Session(engine) as session:
        items = {i.profile_id: i for i in session.exec(select(Item)).all()}
        row = session.get(Connection, conn.id)
    assert [items[f"p{n}"].status for n in range(4)] == [ItemStatus.FAILED] * 2 + [
        ItemStatus.EXPORTED,
        ItemStatus.FAILED,
    ]
    for n in (0, 1):
        assert (items[f"p{n}"].error, items[f"p{n}"].error_cause) == (CONNECTION_REMOVED, "connection_removed")
    assert items["p3"].error is None
    assert row is not None and row.removed_at is not None and row.client_secret_encrypted == ""
    with pytest.raises(ConnectionNotFoundError, match=r"^connection removed$"):
        load_connection(engine, conn.id)
    with pytest.raises(ConnectionNotFoundError, match="was removed"):
        get_connection(engine, "acme")
    assert list_connections(engine) == []
    assert [c.name for c in list_connections(engine, include_removed=True)] == ["acme"]
    with pytest.raises(ConnectionNotFoundError):
        disconnect(engine, "acme")


def test_load_and_get_unknown_connections(engine: Engine) -> None:
    with pytest.raises(ConnectionNotFoundError, match="does not exist"):
        load_connection(engine, 12345)
    with pytest.raises(ConnectionNotFoundError, match="connection ghost does not exist"):
        get_connection(engine, "ghost")

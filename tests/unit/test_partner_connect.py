"""Partner connections against the sandbox (MockTransport), SQLite and fakeredis: consent, refusals, tokens
kept alive and rotated once, needs_reauth, a limit key per customer organization."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import fakeredis
import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from shared.connections.grants import GrantKeeper
from shared.connections.partner import begin_partner_consent, complete_partner_consent, required_scopes
from shared.connections.service import connection_summary, get_connection
from shared.errors import ConsentError, ReauthRequiredError
from shared.harvest.client import HarvestClient
from shared.harvest.holds import CredentialHolds
from shared.harvest.sandbox import Sandbox
from shared.harvest.sandbox import seed as s
from shared.settings import Settings
from shared.store import grants as grant_store
from shared.store.db import open_store
from shared.store.models import Connection, ConnectionKind, GrantState
from tests.connections_helpers import http_for, make_sandbox, make_settings

REDIRECT = "http://127.0.0.1:8766/callback"
ORG_B = 4_700_002


class Clock:
    """One clock for the sandbox and the token keeper (epoch seconds), moved by hand."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> Sandbox:
    box = make_sandbox(clock=clock, rate_limit=10_000, token_ttl_s=600, refresh_token_ttl_s=3600)
    box.add_organization(ORG_B, "Second Customer")
    return box


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    client = http_for(sandbox)
    yield client
    client.close()


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(
        sqlite_url,
        harvest_authorize_url="https://auth.sandbox.test/authorize",
        harvest_introspect_url="https://auth.sandbox.test/introspect",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = open_store(settings.database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def holds() -> CredentialHolds:
    return CredentialHolds(fakeredis.FakeRedis(), "ghx:test:")


def begin(settings: Settings, engine: Engine, name: str = "acme", **kw: Any) -> str:
    consent = begin_partner_consent(
        settings,
        engine,
        name=name,
        client_id=s.PARTNER_CLIENT_ID,
        client_secret=SecretStr(s.PARTNER_CLIENT_SECRET),
        user_email=s.RECRUITER_EMAIL,
        redirect_uri=REDIRECT,
        **kw,
    )
    return consent.authorize_url


def redirect_params(location: str) -> dict[str, str]:
    assert location.startswith(REDIRECT)
    return dict(parse_qsl(urlsplit(location).query))


def connect_partner(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds, **kw: Any
) -> Connection:
    url = begin(settings, engine, **{k: v for k, v in kw.items() if k != "org_id"})
    params = redirect_params(sandbox.consent(url, org_id=kw.get("org_id")))
    complete_partner_consent(settings, engine, params, holds=holds, http_client=http)
    with engine.connect() as conn:
        row = conn.execute(sa.select(Connection).where(Connection.name == kw.get("name", "acme"))).one()
    return Connection.model_validate(row._mapping)


def connection_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(Connection)) or 0)


def test_the_authorize_url_asks_for_every_scope_with_a_random_single_use_state(
    settings: Settings, engine: Engine
) -> None:
    first, second = begin(settings, engine), begin(settings, engine)
    query = dict(parse_qsl(urlsplit(first).query))
    assert first.startswith("https://auth.sandbox.test/authorize?")
    assert query["response_type"] == "code"
    assert query["client_id"] == s.PARTNER_CLIENT_ID
    assert query["redirect_uri"] == REDIRECT
    assert query["scope"].split() == required_scopes()
    assert len(query["state"]) >= 32
    assert query["state"] != dict(parse_qsl(urlsplit(second).query))["state"]
    with engine.connect() as conn:  # only the state's hash is kept
        stored = conn.execute(sa.text("SELECT state_hash FROM consent_requests")).scalars().all()
    assert query["state"] not in stored and len(stored) == 2


def test_a_consent_stores_a_partner_connection_of_the_customer_organization(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds
) -> None:
    row = connect_partner(settings, engine, sandbox, http, holds)
    assert row.kind == ConnectionKind.PARTNER
    assert (row.organization_id, row.organization_name) == (s.ORG_ID, s.ORG_NAME)
    assert row.user_id == s.RECRUITER_USER_ID  # the recruiter, by exact email: owner of what is exported
    conn = get_connection(engine, "acme")
    assert conn.limit_key == f"{s.PARTNER_CLIENT_ID}@{s.ORG_ID}"
    grant = grant_store.grant_states(engine)[conn.id]
    assert grant.state is GrantState.CONNECTED and grant.sub == s.SERVICE_ACCOUNT_USER_ID
    summary = connection_summary(conn, grant)
    assert summary["state"] == "connected" and summary["kind"] == "partner"
    assert summary["organization"] == {"id": s.ORG_ID, "name": s.ORG_NAME}
    with engine.connect() as c:  # tokens are stored encrypted
        raw = " ".join(str(v) for v in c.execute(sa.text("SELECT * FROM grants")).one())
    tokens = grant_store.load_tokens(engine, conn.id)
    assert tokens is not None and tokens.refresh_token_encrypted in raw
    assert sandbox.oauth_stats().codes_exchanged == 1 and sandbox.oauth_stats().introspections == 1


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("deny", r"the consent was denied \(access_denied"),
        ("wrong_state", "matches no connect in progress"),
        ("no_state", "matches no connect in progress"),
    ],
)
def test_a_refused_consent_says_why_in_one_line_and_stores_nothing(
    settings: Settings,
    engine: Engine,
    sandbox: Sandbox,
    http: httpx.Client,
    holds: CredentialHolds,
    tamper: str,
    expected: str,
) -> None:
    url = begin(settings, engine)
    params = redirect_params(sandbox.consent(url, deny=tamper == "deny"))
    if tamper == "wrong_state":
        params["state"] = "forged-" + params["state"]
    if tamper == "no_state":
        params.pop("state")
    with pytest.raises(ConsentError, match=expected) as err:
        complete_partner_consent(settings, engine, params, holds=holds, http_client=http)
    assert "\n" not in str(err.value) and "nothing was stored" in str(err.value)
    assert connection_count(engine) == 0


def test_a_state_completes_once(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds
) -> None:
    params = redirect_params(sandbox.consent(begin(settings, engine)))
    complete_partner_consent(settings, engine, params, holds=holds, http_client=http)
    with pytest.raises(ConsentError, match="already used"):
        complete_partner_consent(settings, engine, params, holds=holds, http_client=http)


def test_a_code_used_twice_is_refused_and_nothing_is_stored(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds
) -> None:
    first = redirect_params(sandbox.consent(begin(settings, engine, name="one")))
    complete_partner_consent(settings, engine, first, holds=holds, http_client=http)
    second = redirect_params(sandbox.consent(begin(settings, engine, name="two")))
    replay = {**second, "code": first["code"]}  # the new connect's state, the old code
    with pytest.raises(ConsentError, match=r"refused the authorization code \(invalid_grant"):
        complete_partner_consent(settings, engine, replay, holds=holds, http_client=http)
    assert [c.name for c in _connections(engine)] == ["one"]
    assert sandbox.oauth_stats().code_reused == 1


def test_an_expired_code_is_refused(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds, clock: Clock
) -> None:
    params = redirect_params(sandbox.consent(begin(settings, engine)))
    clock.t += 61  # a code lives one minute
    with pytest.raises(ConsentError, match="invalid_grant"):
        complete_partner_consent(settings, engine, params, holds=holds, http_client=http)
    assert connection_count(engine) == 0 and sandbox.oauth_stats().code_expired == 1


def test_an_expired_state_is_refused(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds
) -> None:
    params = redirect_params(sandbox.consent(begin(settings, engine)))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE consent_requests SET expires_at = '2000-01-01 00:00:00'"))
    with pytest.raises(ConsentError, match="after its state expired"):
        complete_partner_consent(settings, engine, params, holds=holds, http_client=http)
    assert connection_count(engine) == 0


def test_another_organization_cannot_take_over_a_connection_name(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds
) -> None:
    connect_partner(settings, engine, sandbox, http, holds)
    params = redirect_params(sandbox.consent(begin(settings, engine), org_id=ORG_B))
    with pytest.raises(ConsentError, match=f"belongs to Greenhouse organization {s.ORG_ID}"):
        complete_partner_consent(settings, engine, params, holds=holds, http_client=http)
    assert get_connection(engine, "acme").organization_id == s.ORG_ID


def _connections(engine: Engine) -> list[Connection]:
    with engine.connect() as conn:
        return [Connection.model_validate(r._mapping) for r in conn.execute(sa.select(Connection))]


def keeper_for(settings: Settings, engine: Engine, http: httpx.Client, clock: Clock, **kw: Any) -> GrantKeeper:
    return GrantKeeper(settings, engine, kw.pop("redis", fakeredis.FakeRedis()), http, wall=clock, **kw)


def client_for(settings: Settings, engine: Engine, http: httpx.Client, keeper: GrantKeeper) -> HarvestClient:
    from shared.connections.service import reader_for

    conn = get_connection(engine, "acme")
    return reader_for(conn, settings, tokens=keeper.tokens_for(conn), http_client=http)


def test_access_tokens_are_refreshed_before_they_expire_and_the_rotated_token_is_stored_first(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds, clock: Clock
) -> None:
    connect_partner(settings, engine, sandbox, http, holds)
    keeper = keeper_for(settings, engine, http, clock)
    client = client_for(settings, engine, http, keeper)
    conn = get_connection(engine, "acme")
    before = grant_store.load_tokens(engine, conn.id)
    assert before is not None
    assert client.list_sources()  # the consent's token, no refresh
    assert sandbox.oauth_stats().refreshes == 0
    for hop in range(3):
        clock.t += 590  # 10 s before the 600 s token expires: inside the margin
        assert client.list_sources()
        assert sandbox.oauth_stats().refreshes == hop + 1
    after = grant_store.load_tokens(engine, conn.id)
    assert after is not None and after.grant.generation == before.grant.generation + 3
    assert after.refresh_token_encrypted != before.refresh_token_encrypted
    stats = sandbox.oauth_stats()
    assert (stats.refresh_reused, stats.refresh_expired) == (0, 0)


def test_processes_needing_a_token_at_once_refresh_once(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds, clock: Clock
) -> None:
    connect_partner(settings, engine, sandbox, http, holds)
    shared_redis = fakeredis.FakeRedis()
    keepers = [keeper_for(settings, engine, http, clock, redis=shared_redis) for _ in range(4)]
    conn = get_connection(engine, "acme")
    clock.t += 599
    barrier = threading.Barrier(len(keepers))
    tokens: list[str] = []

    def want(keeper: GrantKeeper) -> None:
        barrier.wait()
        tokens.append(keeper.token(conn))

    threads = [threading.Thread(target=want, args=(k,)) for k in keepers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sandbox.oauth_stats().refreshes == 1
    assert len(set(tokens)) == 1 and sandbox.oauth_stats().refresh_reused == 0


def test_a_revoked_consent_marks_the_connection_needs_reauth_and_holds_its_items(
    settings: Settings,
    engine: Engine,
    sandbox: Sandbox,
    http: httpx.Client,
    holds: CredentialHolds,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    connect_partner(settings, engine, sandbox, http, holds)
    keeper = keeper_for(settings, engine, http, clock, holds=holds)
    client = client_for(settings, engine, http, keeper)
    client.list_sources()
    sandbox.revoke_consent(s.PARTNER_CLIENT_ID, s.ORG_ID)
    with caplog.at_level("WARNING", logger="ghexport.grants"):
        for _ in range(3):
            with pytest.raises(ReauthRequiredError, match="needs a new consent"):
                client.list_sources()
    assert sum("needs a new consent" in r.getMessage() for r in caplog.records) == 1  # logged once
    conn = get_connection(engine, "acme")
    grant = grant_store.grant_states(engine)[conn.id]
    assert grant.state is GrantState.NEEDS_REAUTH and "invalid_grant" in (grant.reason or "")
    assert connection_summary(conn, grant)["state"] == "needs_reauth"
    assert conn.limit_key in holds.held()
    assert sandbox.oauth_stats().refresh_revoked == 1  # the later calls did not try again
    connect_partner(settings, engine, sandbox, http, holds)  # the customer consents again
    assert grant_store.grant_states(engine)[conn.id].state is GrantState.CONNECTED
    assert holds.held() == {}
    assert client.list_sources()  # the keeper reads the new consent's token


def test_a_lost_refresh_answer_is_sent_once_more_then_needs_reauth(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds, clock: Clock
) -> None:
    connect_partner(settings, engine, sandbox, http, holds)
    keeper = keeper_for(settings, engine, http, clock, holds=holds)
    conn = get_connection(engine, "acme")
    clock.t += 599
    sandbox.inject_fault("drop_after", method="POST", path="/token")  # rotated at Greenhouse, answer lost
    with pytest.raises(ReauthRequiredError, match="lost in transit"):
        keeper.token(conn)
    assert sandbox.oauth_stats().refresh_reused == 1


def test_a_refresh_answer_lost_before_greenhouse_got_it_is_sent_again(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds, clock: Clock
) -> None:
    connect_partner(settings, engine, sandbox, http, holds)
    keeper = keeper_for(settings, engine, http, clock, holds=holds)
    conn = get_connection(engine, "acme")
    clock.t += 599
    sandbox.inject_fault("drop_before", method="POST", path="/token")
    assert keeper.token(conn)
    assert sandbox.oauth_stats().refreshes == 1


def test_two_organizations_of_one_partner_have_their_own_limit_keys(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds
) -> None:
    connect_partner(settings, engine, sandbox, http, holds, name="acme")
    connect_partner(settings, engine, sandbox, http, holds, name="globex", org_id=ORG_B)
    keys = {c.name: c.limit_key for c in (get_connection(engine, "acme"), get_connection(engine, "globex"))}
    assert keys == {"acme": f"{s.PARTNER_CLIENT_ID}@{s.ORG_ID}", "globex": f"{s.PARTNER_CLIENT_ID}@{ORG_B}"}


def test_disconnect_wipes_a_partner_connections_tokens(
    settings: Settings, engine: Engine, sandbox: Sandbox, http: httpx.Client, holds: CredentialHolds
) -> None:
    from shared.connections.service import disconnect

    connect_partner(settings, engine, sandbox, http, holds)
    conn_id = get_connection(engine, "acme").id
    disconnect(engine, "acme")
    tokens = grant_store.load_tokens(engine, conn_id)
    assert tokens is not None and (tokens.refresh_token_encrypted, tokens.access_token_encrypted) == ("", "")


def test_the_consent_turn_renews_idle_grants_and_ends_waits_past_the_grace_period(
    sqlite_url: str, sandbox: Sandbox, http: httpx.Client
) -> None:
    from shared.resources import Resources
    from shared.settings import LimiterSettings, PartnerSettings
    from shared.store import batches
    from shared.store.models import Batch, ItemStatus, TargetKind
    from workers.consent import TURN_KEY, ConsentTurn

    settings = make_settings(
        sqlite_url,
        harvest_authorize_url="https://auth.sandbox.test/authorize",
        harvest_introspect_url="https://auth.sandbox.test/introspect",
        limiter=LimiterSettings(enabled=True),
        partner=PartnerSettings(refresh_every_s=0.05, reauth_grace_s=3600),
    )
    redis_client = fakeredis.FakeRedis()
    res = Resources(settings, redis_client=redis_client, http_client=http)
    try:
        connect_partner(settings, res.engine, sandbox, http, res.holds)  # type: ignore[arg-type]
        conn = get_connection(res.engine, "acme")
        turn = ConsentTurn(res, "w1")
        time.sleep(0.1)
        assert turn.turn() == {"renewed": 1, "held": 0, "expired": 0}
        assert turn.turn() is None  # another turn within the interval: someone has it
        assert sandbox.oauth_stats().refreshes == 1
        batch = batches.create_batch(
            res.engine,
            Batch(connection_id=conn.id, target_kind=TargetKind.PROSPECT, user_email=s.RECRUITER_EMAIL, user_id=1),
            [batches.NewItem("p-1", {"id": "p-1", "first_name": "A", "last_name": "B"})],
        )
        sandbox.revoke_consent(s.PARTNER_CLIENT_ID, s.ORG_ID)
        redis_client.delete(TURN_KEY)
        time.sleep(0.1)
        assert turn.turn() == {"renewed": 0, "held": 1, "expired": 0}
        assert conn.limit_key in res.holds.held()
        [item] = batches.batch_items(res.engine, batch.batch_id)
        assert (item.status, item.error_cause, item.attempts) == (ItemStatus.QUEUED, "needs_reauth", 0)
        with res.engine.begin() as c:  # eight days later
            c.execute(sa.text("UPDATE grants SET since = '2000-01-01 00:00:00'"))
        redis_client.delete(TURN_KEY)
        assert turn.turn() == {"renewed": 0, "held": 1, "expired": 1}
        [item] = batches.batch_items(res.engine, batch.batch_id)
        assert (item.status, item.error_cause) == (ItemStatus.FAILED, "reauth_expired")
    finally:
        res.close()

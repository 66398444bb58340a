"""Partner OAuth (authorization-code grant) and several organizations in the sandbox (docs/harvest.md section 3)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from shared.harvest.sandbox import Sandbox, SandboxServer
from shared.harvest.sandbox import seed as s
from tests.unit.test_sandbox_support import BASE_URL, Env, make_env

PARTNER = (s.PARTNER_CLIENT_ID, s.PARTNER_CLIENT_SECRET)
ORG2 = 4_700_002
CLAIMS = "https://auth.greenhouse.io/claims"


@pytest.fixture
def env() -> Iterator[Env]:
    with make_env(rate_limit=50, window_s=30) as e:
        yield e


def _authorize_url(**overrides: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": s.PARTNER_CLIENT_ID,
        "redirect_uri": s.PARTNER_REDIRECT_URI,
        "scope": " ".join(s.ALL_SCOPES),
        "state": "st-42",
        **overrides,
    }
    return f"{BASE_URL}/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def _query(location: str) -> dict[str, str]:
    """The single-valued query members of a redirect's Location."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}


def _code(env: Env, **consent: Any) -> str:
    location = env.sandbox.consent(_authorize_url(), **consent)
    assert location.startswith(s.PARTNER_REDIRECT_URI + "?"), location
    query = _query(location)
    assert query["state"] == "st-42"
    return query["code"]


def _exchange(env: Env, code: str, redirect_uri: str = s.PARTNER_REDIRECT_URI, auth: Any = PARTNER) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    return env.client.post("/token", auth=auth, data=data)


def _connect(env: Env, **consent: Any) -> dict[str, str]:
    """Consent, exchange the code: the token answer."""
    response = _exchange(env, _code(env, **consent))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _refresh(env: Env, refresh_token: str) -> httpx.Response:
    return env.client.post("/token", auth=PARTNER, data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def _bearer(token: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['access_token']}"}


def _introspect(env: Env, token: str, auth: Any = PARTNER) -> httpx.Response:
    return env.client.post("/introspect", auth=auth, data={"token": token})


def _oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_description"} and body["error"] == error


# --- consent --------------------------------------------------------------------------------------


def test_the_consent_page_is_a_form_that_posts_back(env: Env) -> None:
    page = env.client.get(_authorize_url())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "location" not in page.headers
    assert '<form method="post" action="/authorize?' in page.text
    assert "client_id=ghx-sandbox-partner" in page.text and 'name="consent_as"' in page.text
    form = {
        "organization_id": str(s.ORG_ID),
        "user_id": str(s.ADMIN_USER_ID),
        "consent_as": "user",
        "decision": "allow",
    }
    posted = env.client.post(_authorize_url(), data=form)
    assert posted.status_code == 302 and set(_query(posted.headers["location"])) == {"code", "state"}


def test_service_account_consent_acts_as_the_service_account(env: Env) -> None:
    token = _connect(env)
    assert set(token) == {"token_type", "access_token", "refresh_token", "expires_at"}
    assert token["token_type"] == "Bearer" and token["expires_at"].endswith("Z")
    expires = datetime.fromisoformat(token["expires_at"].replace("Z", "+00:00")).timestamp()
    assert expires == pytest.approx(env.clock() + 3600, abs=1)
    users = env.client.get("/v3/users", headers=_bearer(token))
    assert users.status_code == 200  # list endpoints: the service account is a Site Admin
    assert s.SERVICE_ACCOUNT_USER_ID in {u["id"] for u in users.json()}
    info = _introspect(env, token["access_token"]).json()
    assert info["sub"] == str(s.SERVICE_ACCOUNT_USER_ID) and info[CLAIMS]["user_role"] == "site_admin"


def test_user_consent_acts_as_that_user(env: Env) -> None:
    token = _connect(env, user_id=s.RECRUITER_USER_ID, consent_as="user")
    listed = env.client.get("/v3/users", headers=_bearer(token))
    assert listed.status_code == 403 and "Site Admin" in listed.json()["message"]
    created = env.client.post("/v3/candidates", json={"first_name": "A", "last_name": "B"}, headers=_bearer(token))
    assert created.status_code == 201, created.text
    info = _introspect(env, token["access_token"]).json()
    assert (info["sub"], info[CLAIMS]["user_role"]) == (str(s.RECRUITER_USER_ID), "basic")
    admin = _connect(env, user_id=s.ADMIN_USER_ID, consent_as="user")
    assert env.client.get("/v3/users", headers=_bearer(admin)).status_code == 200
    assert _introspect(env, admin["access_token"]).json()["sub"] == str(s.ADMIN_USER_ID)


def test_denied_consent_redirects_access_denied(env: Env) -> None:
    query = _query(env.sandbox.consent(_authorize_url(), deny=True))
    assert query["error"] == "access_denied" and query["state"] == "st-42" and "code" not in query
    stats = env.sandbox.oauth_stats()
    assert (stats.consents_denied, stats.codes_issued) == (1, 0)


def test_only_site_admins_consent_with_a_service_account(env: Env) -> None:
    location = env.sandbox.consent(_authorize_url(), user_id=s.RECRUITER_USER_ID, consent_as="service_account")
    query = _query(location)
    assert query["error"] == "access_denied" and "code" not in query
    assert query["error_description"] == "only Site Admins can authorize with a service account"
    assert query["state"] == "st-42"


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "nobody"},
        {"client_id": None},
        {"redirect_uri": "http://127.0.0.1:8765/elsewhere"},
        {"redirect_uri": s.PARTNER_REDIRECT_URI + "/"},  # matched exactly
        {"redirect_uri": None},
    ],
    ids=["unknown-client", "no-client", "other-uri", "trailing-slash", "no-uri"],
)
def test_bad_client_or_redirect_uri_gets_an_error_page_never_a_redirect(env: Env, overrides: dict[str, Any]) -> None:
    url = _authorize_url(**overrides)
    for response in (env.client.get(url), env.client.post(url, data={"user_id": str(s.ADMIN_USER_ID)})):
        assert response.status_code == 400 and response.headers["content-type"].startswith("text/html")
        assert "location" not in response.headers
    with pytest.raises(ValueError, match=r"client_id|redirect_uri"):
        env.sandbox.consent(url)
    assert env.sandbox.oauth_stats().codes_issued == 0


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "harvest:candidates:list harvest:secrets:list"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
    ],
    ids=["token-response-type", "no-response-type", "unknown-scope", "no-scope"],
)
def test_request_errors_redirect_with_the_state(env: Env, overrides: dict[str, Any], error: str) -> None:
    response = env.client.get(_authorize_url(**overrides))
    assert response.status_code == 302
    query = _query(response.headers["location"])
    assert response.headers["location"].startswith(s.PARTNER_REDIRECT_URI + "?")
    assert (query["error"], query["state"]) == (error, "st-42") and query["error_description"]
    assert "code" not in _query(env.sandbox.consent(_authorize_url(**overrides)))


def test_a_scope_not_approved_for_the_client_is_invalid_scope(env: Env) -> None:
    env.sandbox.add_partner_client("narrow", "pw", ["harvest:candidates:list"], ["https://p.example/cb"])
    allowed = _authorize_url(client_id="narrow", redirect_uri="https://p.example/cb", scope="harvest:candidates:list")
    assert "code" in _query(env.sandbox.consent(allowed))
    wider = _authorize_url(
        client_id="narrow", redirect_uri="https://p.example/cb", scope="harvest:candidates:list harvest:users:list"
    )
    query = _query(env.sandbox.consent(wider))
    assert query["error"] == "invalid_scope" and "harvest:users:list" in query["error_description"]


@pytest.mark.parametrize(
    ("consent", "why"),
    [
        ({"user_id": 999}, "not an active user"),
        ({"user_id": s.DEACTIVATED_USER_ID}, "not an active user"),
        ({"org_id": 123}, "organization 123 does not exist"),
        ({"consent_as": "robot"}, "consent_as"),
    ],
    ids=["unknown-user", "deactivated-user", "unknown-org", "bad-consent-as"],
)
def test_bad_consent_forms_get_an_error_page(env: Env, consent: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        env.sandbox.consent(_authorize_url(), **consent)
    assert env.sandbox.oauth_stats().codes_issued == 0


# --- code exchange --------------------------------------------------------------------------------


def test_a_code_is_single_use(env: Env) -> None:
    code = _code(env)
    assert _exchange(env, code).status_code == 200
    _oauth_error(_exchange(env, code), 400, "invalid_grant")
    stats = env.sandbox.oauth_stats()
    assert (stats.codes_issued, stats.codes_exchanged, stats.code_reused) == (1, 1, 1)


def test_a_code_expires_after_a_minute(env: Env) -> None:
    fresh, stale = _code(env), _code(env)
    env.clock.advance(59.9)
    assert _exchange(env, fresh).status_code == 200
    env.clock.advance(0.1)
    _oauth_error(_exchange(env, stale), 400, "invalid_grant")
    assert env.sandbox.oauth_stats().code_expired == 1


def test_the_redirect_uri_must_match_at_exchange(env: Env) -> None:
    code = _code(env)
    _oauth_error(_exchange(env, code, redirect_uri="http://127.0.0.1:8765/other"), 400, "invalid_grant")
    _oauth_error(_exchange(env, code, redirect_uri=""), 400, "invalid_request")
    exchanged = env.client.post(  # the guide's curl form: parameters in the query string
        "/token",
        auth=PARTNER,
        params={"grant_type": "authorization_code", "code": code, "redirect_uri": s.PARTNER_REDIRECT_URI},
    )
    assert exchanged.status_code == 200, exchanged.text


def test_a_code_is_bound_to_its_client(env: Env) -> None:
    env.sandbox.add_partner_client("other", "pw", s.ALL_SCOPES, [s.PARTNER_REDIRECT_URI])
    code = _code(env)
    _oauth_error(_exchange(env, code, auth=("other", "pw")), 400, "invalid_grant")
    _oauth_error(_exchange(env, code, auth=(s.PARTNER_CLIENT_ID, "wrong")), 401, "invalid_client")
    assert _exchange(env, code).status_code == 200


def test_client_credentials_are_refused_for_partners(env: Env) -> None:
    refused = env.client.post("/token", auth=PARTNER, data={"grant_type": "client_credentials"})
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "unauthorized_client",
        "error_description": "The Client Credentials Flow is not available for Greenhouse partners",
    }
    assert env.sandbox.oauth_stats().client_credentials_refused == 1
    assert env.client.get("/v3/sources", headers=env.headers()).status_code == 200  # custom credentials still work
    custom = env.client.post("/token", auth=(s.CLIENT_ID, s.CLIENT_SECRET), data={"grant_type": "refresh_token"})
    _oauth_error(custom, 400, "unsupported_grant_type")


# --- refresh ----------------------------------------------------------------------------------------


def test_refresh_rotates_and_a_used_refresh_token_is_dead(env: Env) -> None:
    first = _connect(env)
    env.clock.advance(600)
    refreshed = _refresh(env, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert set(second) == {"token_type", "access_token", "refresh_token", "expires_at"}
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert env.client.get("/v3/sources", headers=_bearer(second)).status_code == 200
    _oauth_error(_refresh(env, first["refresh_token"]), 400, "invalid_grant")
    assert _refresh(env, second["refresh_token"]).status_code == 200
    stats = env.sandbox.oauth_stats()
    assert (stats.refreshes, stats.refresh_reused) == (2, 1)


def test_a_refresh_token_expires_after_a_day_unused(env: Env) -> None:
    token = _connect(env)
    env.clock.advance(86_399)
    kept = _refresh(env, token["refresh_token"])
    assert kept.status_code == 200  # used in time: the new one lives another day
    env.clock.advance(86_399)
    late = kept.json()
    env.clock.advance(1)
    _oauth_error(_refresh(env, late["refresh_token"]), 400, "invalid_grant")
    assert env.sandbox.oauth_stats().refresh_expired == 1


def test_refresh_needs_a_known_token_of_this_client(env: Env) -> None:
    env.sandbox.add_partner_client("other", "pw", s.ALL_SCOPES, [s.PARTNER_REDIRECT_URI])
    token = _connect(env)
    stolen = env.client.post(
        "/token", auth=("other", "pw"), data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    )
    _oauth_error(stolen, 400, "invalid_grant")
    _oauth_error(_refresh(env, "made-up"), 400, "invalid_grant")
    _oauth_error(_refresh(env, ""), 400, "invalid_request")
    assert _refresh(env, token["refresh_token"]).status_code == 200


# --- revocation and introspection -------------------------------------------------------------------


def test_revoking_consent_kills_access_and_refresh_tokens(env: Env) -> None:
    env.sandbox.add_organization(ORG2, "Second Org")
    token = _connect(env)
    other_org = _connect(env, org_id=ORG2)
    assert env.client.get("/v3/sources", headers=_bearer(token)).status_code == 200
    assert env.sandbox.revoke_consent(s.PARTNER_CLIENT_ID, s.ORG_ID) == 2  # one access, one refresh token
    denied = env.client.get("/v3/sources", headers=_bearer(token))
    assert denied.status_code == 401 and denied.json() == {"message": "Unauthorized"}
    _oauth_error(_refresh(env, token["refresh_token"]), 400, "invalid_grant")
    assert env.sandbox.oauth_stats().refresh_revoked == 1
    assert _introspect(env, token["access_token"]).json() == {"active": False}
    assert env.client.get("/v3/sources", headers=_bearer(other_org)).status_code == 200  # another org: untouched
    assert _refresh(env, other_org["refresh_token"]).status_code == 200


def test_revoking_through_the_admin_route(env: Env) -> None:
    token = _connect(env)
    response = env.client.post("/_sandbox/revoke", json={"client_id": s.PARTNER_CLIENT_ID, "org_id": s.ORG_ID})
    assert response.status_code == 200 and response.json() == {"revoked": 2}
    assert env.client.get("/v3/sources", headers=_bearer(token)).status_code == 401
    unknown = env.client.post("/_sandbox/revoke", json={"client_id": "nobody", "org_id": s.ORG_ID})
    assert unknown.status_code == 400


def test_introspection_claims(env: Env) -> None:
    env.sandbox.add_organization(ORG2, "Second Org")
    token = _connect(env, org_id=ORG2)
    info = _introspect(env, token["access_token"])
    assert info.status_code == 200
    assert info.json() == {
        "active": True,
        "client_id": s.PARTNER_CLIENT_ID,
        "sub": str(s.SERVICE_ACCOUNT_USER_ID),
        "scope": " ".join(sorted(s.ALL_SCOPES)),
        "exp": int(env.clock() + 3600),
        CLAIMS: {"organization": {"id": ORG2, "name": "Second Org"}, "user_role": "site_admin"},
    }
    assert _introspect(env, token["refresh_token"]).json() == {"active": False}  # access tokens only
    assert _introspect(env, token["access_token"], auth=(s.CLIENT_ID, s.CLIENT_SECRET)).json() == {"active": False}
    _oauth_error(_introspect(env, token["access_token"], auth=(s.PARTNER_CLIENT_ID, "x")), 401, "invalid_client")
    env.clock.advance(3600)
    assert _introspect(env, token["access_token"]).json() == {"active": False}
    assert env.sandbox.oauth_stats().introspections == 4


def test_introspection_of_custom_credentials_tokens(env: Env) -> None:
    custom = (s.CLIENT_ID, s.CLIENT_SECRET)
    as_recruiter = env.token(sub=s.RECRUITER_USER_ID)
    info = _introspect(env, as_recruiter, auth=custom).json()
    assert (info["active"], info["sub"], info[CLAIMS]["user_role"]) == (True, str(s.RECRUITER_USER_ID), "basic")
    assert info[CLAIMS]["organization"] == {"id": s.ORG_ID, "name": s.ORG_NAME}
    no_sub = _introspect(env, env.token(), auth=custom).json()
    assert (no_sub["sub"], no_sub[CLAIMS]["user_role"]) == (str(s.SERVICE_ACCOUNT_USER_ID), "site_admin")


def test_scopes_removed_from_the_client_apply_at_once(env: Env) -> None:
    token = _connect(env)
    assert env.client.get("/v3/sources", headers=_bearer(token)).status_code == 200
    fewer = [sc for sc in s.ALL_SCOPES if sc != "harvest:sources:list"]
    env.sandbox.add_partner_client(s.PARTNER_CLIENT_ID, s.PARTNER_CLIENT_SECRET, fewer, [s.PARTNER_REDIRECT_URI])
    assert env.client.get("/v3/sources", headers=_bearer(token)).status_code == 403
    refreshed = _refresh(env, token["refresh_token"]).json()
    assert "harvest:sources:list" not in _introspect(env, refreshed["access_token"]).json()["scope"].split()


def test_partner_and_custom_client_ids_do_not_overlap(env: Env) -> None:
    with pytest.raises(ValueError, match="custom credential"):
        env.sandbox.add_partner_client(s.CLIENT_ID, "pw", s.ALL_SCOPES, [s.PARTNER_REDIRECT_URI])
    with pytest.raises(ValueError, match="partner client"):
        env.sandbox.add_credential(s.PARTNER_CLIENT_ID, "pw", s.ALL_SCOPES)


# --- organizations ------------------------------------------------------------------------------------


def test_organizations_are_isolated(env: Env) -> None:
    env.sandbox.add_organization(ORG2, "Second Org")
    org2 = _bearer(_connect(env, org_id=ORG2))
    home = _bearer(_connect(env))
    body = {"first_name": "Only", "last_name": "There", "email_addresses": [{"value": "o@t.example", "type": "work"}]}
    created = env.client.post("/v3/candidates", json=body, headers=org2)
    assert created.status_code == 201, created.text
    cid = created.json()["candidate"]["id"]

    def emails(headers: dict[str, str]) -> list[int]:
        response = env.client.get("/v3/candidates", params={"email": "o@t.example"}, headers=headers)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()]

    assert emails(org2) == [cid]
    assert emails(home) == [] and emails(env.headers()) == []  # the default org, by partner or custom token
    assert cid in env.sandbox.org_state(ORG2).candidates and cid not in env.sandbox.state.candidates
    assert [c["id"] for c in env.sandbox.state_snapshot(ORG2)["candidates"]] == [s.EXISTING_CANDIDATE_ID, cid]
    assert [c["id"] for c in env.sandbox.state_snapshot()["candidates"]] == [s.EXISTING_CANDIDATE_ID]
    assert env.client.get("/_sandbox/state", params={"org_id": ORG2}).json()["candidates"][1]["id"] == cid
    with pytest.raises(KeyError):
        env.sandbox.org_state(123)
    with pytest.raises(ValueError, match="already exists"):
        env.sandbox.add_organization(ORG2, "Again")


def test_an_attachment_url_of_another_org_serves_that_orgs_file(env: Env) -> None:
    env.sandbox.add_organization(ORG2, "Second Org")
    org2 = _bearer(_connect(env, org_id=ORG2))
    upload = {
        "application_id": s.EXISTING_APPLICATION_ID,
        "filename": "cv.pdf",
        "type": "resume",
        "content": base64.b64encode(b"%PDF-org2").decode(),
    }
    made = env.client.post("/v3/attachments", json=upload, headers=org2)
    assert made.status_code == 201, made.text
    url = httpx.URL(made.json()["url"])
    assert url.params["org_id"] == str(ORG2) and "expires" in url.params
    assert env.client.get(url).content == b"%PDF-org2"
    assert env.client.get(url.copy_remove_param("org_id")).status_code == 404  # the default org has no such file


def test_each_organization_has_its_own_rate_limit_budget(env: Env) -> None:
    env.sandbox.add_organization(ORG2, "Second Org", rate_limit=2, window_s=10)
    home, org2 = _bearer(_connect(env)), _bearer(_connect(env, org_id=ORG2))
    statuses = [env.client.get("/v3/sources", headers=org2).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert [env.client.get("/v3/sources", headers=home).status_code for _ in range(3)] == [200, 200, 200]
    first_home = env.client.get("/v3/sources", headers=home)
    assert first_home.headers["X-RateLimit-Limit"] == "50" and first_home.headers["X-RateLimit-Remaining"] == "46"
    credentials = env.sandbox.stats()["credentials"]
    key2, home_key = f"{s.PARTNER_CLIENT_ID}@{ORG2}", f"{s.PARTNER_CLIENT_ID}@{s.ORG_ID}"
    assert {k: (v["rate_limit"], v["window_s"]) for k, v in credentials.items()} == {
        s.CLIENT_ID: (50, 30.0),
        home_key: (50, 30.0),
        key2: (2, 10.0),
    }
    assert (credentials[key2]["accepted"], credentials[key2]["rate_limited"]) == (2, 1)
    assert (credentials[home_key]["accepted"], credentials[home_key]["rate_limited"]) == (4, 0)
    assert credentials[s.CLIENT_ID]["accepted"] == 0  # the custom credential's budget is its own
    env.clock.advance(10)
    assert env.client.get("/v3/sources", headers=org2).status_code == 200


def test_counters_through_the_admin_route(env: Env) -> None:
    token = _connect(env)
    _refresh(env, token["refresh_token"])
    _introspect(env, token["access_token"])
    body = env.client.get("/_sandbox/oauth").json()
    assert body == asdict(env.sandbox.oauth_stats())
    assert body == {
        "codes_issued": 1,
        "codes_exchanged": 1,
        "code_reused": 0,
        "code_expired": 0,
        "refreshes": 1,
        "refresh_reused": 0,
        "refresh_expired": 0,
        "refresh_revoked": 0,
        "introspections": 1,
        "consents_denied": 0,
        "client_credentials_refused": 0,
    }
    requests = env.sandbox.stats()["requests"]
    assert requests["POST /authorize"] == {"302": 1} and requests["POST /introspect"] == {"200": 1}


# --- over real HTTP ------------------------------------------------------------------------------------


def test_authorize_redirect_and_exchange_over_loopback() -> None:
    with SandboxServer(Sandbox()) as server, httpx.Client(timeout=5) as client:
        assert server.authorize_url == server.url + "/authorize"
        assert server.introspect_url == server.url + "/introspect"
        params = {
            "response_type": "code",
            "client_id": s.PARTNER_CLIENT_ID,
            "redirect_uri": s.PARTNER_REDIRECT_URI,
            "scope": "harvest:candidates:list harvest:sources:list",
            "state": "loop",
        }
        page = client.get(server.authorize_url, params=params)
        assert page.status_code == 200 and "<form" in page.text
        form = {"user_id": str(s.ADMIN_USER_ID), "consent_as": "service_account", "decision": "allow"}
        consented = client.post(server.authorize_url, params=params, data=form)
        assert consented.status_code == 302
        location = consented.headers["location"]
        assert location.startswith(s.PARTNER_REDIRECT_URI + "?") and _query(location)["state"] == "loop"
        data = {"grant_type": "authorization_code", "code": _query(location)["code"]}
        minted = client.post(server.token_url, auth=PARTNER, data={**data, "redirect_uri": s.PARTNER_REDIRECT_URI})
        assert minted.status_code == 200, minted.text
        access = minted.json()["access_token"]
        info = client.post(server.introspect_url, auth=PARTNER, data={"token": access}).json()
        assert info["active"] is True and info["scope"] == "harvest:candidates:list harvest:sources:list"
        sources = client.get(f"{server.harvest_url}/v3/sources", headers={"Authorization": f"Bearer {access}"})
        assert sources.status_code == 200
        jobs = client.get(f"{server.harvest_url}/v3/jobs", headers={"Authorization": f"Bearer {access}"})
        assert jobs.status_code == 403  # only the consented scopes

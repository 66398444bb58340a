"""The sandbox's admin routes that change Greenhouse behind the exporter's back (sync confirmation tests):
edit a candidate's members, or remove it with its applications."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.harvest.sandbox import seed as s
from tests.unit.test_sandbox_support import Api, Env, make_env


@pytest.fixture
def env() -> Iterator[Env]:
    with make_env() as e:
        yield e


def test_edit_changes_what_reads_show(env: Env) -> None:
    api = Api(env)
    cid = s.EXISTING_CANDIDATE_ID
    assert env.client.patch(f"/_sandbox/candidates/{cid}", json={"first_name": "Edited"}).status_code == 200
    assert api.get(f"/v3/candidates?ids={cid}").json()[0]["first_name"] == "Edited"


def test_edit_refuses_unknown_candidates_and_members(env: Env) -> None:
    assert env.client.patch("/_sandbox/candidates/1", json={"first_name": "x"}).status_code == 400
    cid = s.EXISTING_CANDIDATE_ID
    assert env.client.patch(f"/_sandbox/candidates/{cid}", json={"nickname": "x"}).status_code == 400
    assert env.client.patch(f"/_sandbox/candidates/{cid}", json={"id": 5}).status_code == 400


def test_remove_hides_the_candidate_and_its_applications(env: Env) -> None:
    api = Api(env)
    cid = s.EXISTING_CANDIDATE_ID
    assert api.get(f"/v3/applications?candidate_ids={cid}").json() != []
    assert env.client.delete(f"/_sandbox/candidates/{cid}").status_code == 200
    assert api.get(f"/v3/candidates?ids={cid}").json() == []
    assert api.get(f"/v3/applications?candidate_ids={cid}").json() == []
    assert env.client.delete(f"/_sandbox/candidates/{cid}").status_code == 400

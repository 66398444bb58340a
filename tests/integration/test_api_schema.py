"""The HTTP API against its own OpenAPI document, live: the document validates as OpenAPI 3.1, and schemathesis
(requests generated from it, as a client that only read the document would send) finds no 5xx and no answer
that breaks the document's schemas, on every operation, as a tenant with a connection and a batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from tests.integration.live_api import LiveApi, live_api

MAX_EXAMPLES = 10
"""Requests generated per operation (about 30 operations: a few hundred requests)."""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApi, str]]:
    tmp_path: Path = tmp_path_factory.mktemp("api-schema")
    with (
        SandboxServer(Sandbox(SandboxConfig(rate_limit=1000, window_s=10))) as server,
        live_api(tmp_path, server) as live,
    ):
        key = live.tenant_key("acme")
        auth = {"Authorization": f"Bearer {key}"}
        made = httpx.post(
            f"{live.url}/v1/connections",
            json={"name": "main", "client_id": seed.CLIENT_ID, "client_secret": seed.CLIENT_SECRET,
                  "user_email": seed.RECRUITER_EMAIL},
            headers=auth, timeout=60,
        )  # fmt: skip
        assert made.status_code == 201, made.text
        profile = {"id": "p-1", "first_name": "Ada", "last_name": "Quinn", "emails": ["ada@example.org"]}
        export = httpx.post(
            f"{live.url}/v1/exports",
            json={"connection": "main", "target": {"kind": "job", "job_id": seed.OPEN_JOB_ID}, "profiles": [profile]},
            headers=auth, timeout=60,
        )  # fmt: skip
        assert export.status_code == 201, export.text
        yield live, key


def test_the_openapi_document_is_valid_openapi_3_1(api: tuple[LiveApi, str]) -> None:
    live, _ = api
    doc = httpx.get(f"{live.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    assert all(path.startswith("/v1/") for path in doc["paths"]), sorted(doc["paths"])


def test_no_5xx_and_every_answer_matches_the_document(api: tuple[LiveApi, str]) -> None:
    """Every operation of the document, ``MAX_EXAMPLES`` generated requests each, as the tenant. (Schemathesis's
    pytest plugin reads ``item._nodeid``, which pytest 9 no longer has: the operations are driven here with
    Hypothesis directly, one ``@given`` per operation.)"""
    live, key = api
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    failures: list[str] = []
    operations, calls = 0, [0]
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            calls[0] += 1
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {key}"},
                checks=[not_a_server_error, response_schema_conformance],
                timeout=30,
            )
            if response.status_code >= 400 and response.content:  # every error is a problem document
                media = (response.headers.get("content-type") or [""])[0]
                assert media.startswith("application/problem+json"), response.text
                assert {"type", "title", "status"} <= set(json.loads(response.content)), response.text

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then fail once naming them all
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert operations > 20 and calls[0] > 5 * operations, (operations, calls)
    assert not failures, "\n\n".join(failures)

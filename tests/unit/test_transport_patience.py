"""Patient commands and quick workers: the transport's two retry policies, its circuit breaker and its
limiter waits, against scripted MockTransport handlers; the pure retry decisions as tables."""

from __future__ import annotations

import time
from collections.abc import Iterator

import fakeredis
import httpx
import pytest
from pydantic import SecretStr

from shared import errors as e
from shared.harvest.auth import Credential
from shared.harvest.breaker import RedisCircuitBreaker
from shared.harvest.client import HarvestClient
from shared.harvest.limiter import NullRateLimiter, RedisRateLimiter, Ticket
from shared.harvest.models import CreateCandidate
from shared.harvest.ratelimit import describe_retry, is_outage, patient_backoff_s, should_retry_patiently
from shared.settings import BreakerSettings, HarvestSettings, LimiterSettings, Settings

TOKEN_URL = "https://auth.test/token"
HARVEST = "https://harvest.test"
CRED = Credential(client_id="cid", client_secret=SecretStr("s3cr3t-value"))
TOKEN = {"access_token": "tok", "expires_in": 3600}

Step = httpx.Response | type[httpx.TransportError]
"""One scripted answer: a response, or a transport failure raised instead."""


class Script:
    """Answers the token endpoint and Harvest from two scripts (the last step repeats); records requests."""

    def __init__(self, harvest: list[Step], token: list[Step] | None = None) -> None:
        self.harvest = list(harvest)
        self.token = list(token or [httpx.Response(200, json=TOKEN)])
        self.api: list[httpx.Request] = []
        self.mints: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        is_mint = str(request.url) == TOKEN_URL
        (self.mints if is_mint else self.api).append(request)
        steps = self.token if is_mint else self.harvest
        step = steps.pop(0) if len(steps) > 1 else steps[0]
        if isinstance(step, httpx.Response):
            return httpx.Response(step.status_code, headers=step.headers, content=step.content)
        raise step("scripted", request=request)


def r(status: int, body: object = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=[] if body is None else body, headers=headers)


class Waits:
    """``on_wait`` and ``sleep`` of a client: what was announced and what was slept."""

    def __init__(self, real_sleep: bool = False) -> None:
        self.announced: list[tuple[float, str]] = []
        self.slept: list[float] = []
        self.real_sleep = real_sleep

    def on_wait(self, seconds: float, reason: str) -> None:
        self.announced.append((seconds, reason))

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.real_sleep:
            time.sleep(seconds)


def settings(**harvest: object) -> Settings:
    h = HarvestSettings.model_validate({"command_retries": 6, "command_retry_max_wait_s": 20.0, **harvest})
    return Settings(harvest_url=HARVEST, harvest_token_url=TOKEN_URL, harvest=h)


def make(
    script: Script, *, patient: bool = True, waits: Waits | None = None, conf: Settings | None = None, **kw: object
) -> tuple[HarvestClient, Waits]:
    waits = waits or Waits()
    client = HarvestClient(
        conf or settings(),
        CRED,
        http_client=httpx.Client(transport=httpx.MockTransport(script)),
        patient=patient,
        on_wait=waits.on_wait,
        sleep=waits.sleep,
        jitter=lambda: 0.5,
        **kw,  # type: ignore[arg-type]
    )
    return client, waits


# --- patient commands --------------------------------------------------------------------------------


def test_a_read_survives_two_503s_and_says_so() -> None:
    script = Script([r(503, {"message": "down"}), r(503, {"message": "down"}), r(200, [{"id": 1, "name": "J"}])])
    client, waits = make(script)
    assert [j.id for j in client.list_jobs()] == [1]
    assert len(script.api) == 3
    assert waits.slept == pytest.approx([1.125, 2.25])  # 1 s doubled, plus an eighth (jitter 0.5 of a quarter)
    assert [reason for _, reason in waits.announced] == [
        "Greenhouse answered HTTP 503 to GET /v3/jobs; retrying in 1.1 s (1 of 6)",
        "Greenhouse answered HTTP 503 to GET /v3/jobs; retrying in 2.2 s (2 of 6)",
    ]


def test_timeouts_and_dropped_connections_are_retried_for_reads() -> None:
    script = Script([httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ConnectError, r(200)])
    client, waits = make(script)
    assert client.list_tags() == []
    assert len(script.api) == 4
    reasons = [reason for _, reason in waits.announced]
    assert reasons[0].startswith("Greenhouse did not answer GET /v3/candidate_tags in time; retrying in")
    assert reasons[1].startswith("the connection to Greenhouse failed (GET /v3/candidate_tags); retrying in")


def test_a_429_waits_its_retry_after() -> None:
    script = Script([r(429, {"message": "slow down"}, **{"Retry-After": "8"}), r(200)])
    client, waits = make(script)
    assert client.list_sources() == []
    assert waits.slept == [8.0]
    assert waits.announced == [
        (8.0, "Greenhouse's rate limit refused GET /v3/sources (HTTP 429); waiting 8 s (1 of 6)")
    ]


def test_gives_up_after_the_command_retries_naming_the_cause() -> None:
    client, waits = make(Script([r(503, {"message": "maintenance"})]), conf=settings(command_retries=2))
    with pytest.raises(e.ServerError) as info:
        client.list_jobs()
    assert info.value.tries == 3 and len(waits.slept) == 2
    assert str(info.value) == "gave up after 3 tries: HTTP 503 GET /v3/jobs: maintenance"
    assert not info.value.outcome_unknown


def test_waits_grow_up_to_the_command_maximum() -> None:
    client, waits = make(Script([r(500)]), conf=settings(command_retries=6, command_retry_max_wait_s=5.0))
    with pytest.raises(e.ServerError):
        client.list_jobs()
    assert waits.slept == pytest.approx([1.125, 2.25, 4.5, 5.0, 5.0, 5.0])


def test_creates_are_never_retried() -> None:
    for step in (r(503), r(429, **{"Retry-After": "1"}), httpx.ReadTimeout, httpx.RemoteProtocolError):
        script = Script([step, r(201, {"candidate": {"id": 1}})])
        client, waits = make(script)
        with pytest.raises(e.RetryableError) as info:
            client.create_candidate(CreateCandidate(first_name="A", last_name="B"))
        assert len(script.api) == 1 and waits.slept == [] and waits.announced == []
        assert info.value.tries is None and "gave up" not in str(info.value)


def test_probes_are_retried_they_create_nothing() -> None:
    script = Script([r(500), httpx.RemoteProtocolError, r(422, {"message": "missing first_name"})])
    client, _ = make(script)
    assert client.probe("POST", "/candidates") == 422
    assert [req.content for req in script.api] == [b"{}"] * 3


def test_a_token_mint_is_retried() -> None:
    script = Script([r(200)], token=[r(503), httpx.ConnectTimeout, r(200, TOKEN)])
    client, waits = make(script)
    client.mint_token()
    assert len(script.mints) == 3
    assert waits.announced[0][1].startswith("Greenhouse answered HTTP 503 to the token request; retrying in")


def test_a_write_whose_mint_failed_is_retried_harvest_never_saw_it() -> None:
    script = Script([r(201, {"id": 3, "name": "x"})], token=[r(502), r(200, TOKEN)])
    client, _ = make(script)
    assert client.create_tag("x").id == 3
    assert len(script.api) == 1 and len(script.mints) == 2


def test_the_limiter_waits_for_budget_and_says_so_instead_of_throttling() -> None:
    gate = RedisRateLimiter(
        fakeredis.FakeRedis(),
        LimiterSettings(requests=2, window_s=1.2, max_inline_wait_s=0.0, command_max_wait_s=30.0),
        sleep=time.sleep,
    )
    waits = Waits()
    gate_waits: list[tuple[float, str]] = []
    client, _ = make(Script([r(200)]), waits=waits, limiter=gate)
    client.on_wait = lambda s, why: gate_waits.append((s, why))
    for _ in range(3):  # the third send waits for the first to leave the 1.2 s window
        client.list_tags()
    assert len(gate_waits) == 1
    seconds, reason = gate_waits[0]
    assert 1.0 < seconds <= 1.2 and reason == f"waiting {seconds:.0f} s for the credential's rate-limit budget"

    worker, _ = make(Script([r(200)]), patient=False, limiter=gate)
    with pytest.raises(e.ThrottledError):  # a worker never waits that long: the item is parked instead
        for _ in range(3):
            worker.list_tags()


def test_a_patient_wait_for_budget_has_a_limit() -> None:
    gate = RedisRateLimiter(
        fakeredis.FakeRedis(), LimiterSettings(max_inline_wait_s=0.0, command_max_wait_s=5.0), sleep=lambda _: None
    )
    gate.throttled("cid", gate.acquire("cid"), retry_after_s=60.0)  # another worker's 429
    client, waits = make(Script([r(200)]), limiter=gate)
    with pytest.raises(e.ThrottledError, match="next send in"):
        client.list_tags()
    assert waits.slept == []  # the throttle is not retried on top of the limiter's own wait


# --- the breaker in the transport ----------------------------------------------------------------------


class CountingGate(NullRateLimiter):
    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, key: str, **_: object) -> Ticket:
        self.acquired += 1
        return Ticket(str(self.acquired), self.acquired)


@pytest.fixture
def breaker() -> Iterator[RedisCircuitBreaker]:
    yield RedisCircuitBreaker(
        fakeredis.FakeRedis(), BreakerSettings(failures=2, open_s=0.3, max_open_s=1.0), probe_ttl_s=5.0
    )


def test_an_open_circuit_sends_nothing_and_spends_no_budget(breaker: RedisCircuitBreaker) -> None:
    gate = CountingGate()
    script = Script([r(503)])
    worker, waits = make(script, patient=False, limiter=gate, breaker=breaker, conf=settings(quick_retries=0))
    for _ in range(2):
        with pytest.raises(e.ServerError):
            worker.list_jobs()
    assert breaker.state("cid").state == "open"
    with pytest.raises(e.CircuitOpenError) as info:
        worker.list_jobs()
    assert not info.value.outcome_unknown and info.value.retry_after_s <= 0.3
    assert len(script.api) == 2 and gate.acquired == 2  # no send, no budget
    assert waits.slept == []  # a worker hands the wait back to the queue


def test_answers_that_are_not_5xx_are_successes_and_mint_failures_count(breaker: RedisCircuitBreaker) -> None:
    client, _ = make(Script([r(404, {"message": "no"})], token=[r(503)]), patient=False, breaker=breaker)
    with pytest.raises(e.CircuitOpenError):
        client.list_jobs()  # two failed mints open the circuit: the third quick try is not sent
    assert breaker.state("cid").state == "open"
    breaker.reset("cid")
    client, _ = make(Script([r(503), r(429, **{"Retry-After": "1"}), r(404)]), patient=False, breaker=breaker)
    with pytest.raises(e.RateLimitedError):
        client.list_jobs()  # a 503 (quick retry), then a 429: an answer, the count starts again
    assert breaker.state("cid").failures == 0
    with pytest.raises(e.NotFoundError):
        client.list_jobs()
    assert breaker.state("cid").state == "closed"


def test_a_patient_command_waits_out_an_open_circuit_and_its_probe_closes_it(breaker: RedisCircuitBreaker) -> None:
    script = Script([r(503), r(503), r(200, [{"id": 7, "name": "Ops"}])])
    client, waits = make(
        script, breaker=breaker, waits=Waits(real_sleep=True), conf=settings(command_retry_max_wait_s=0.05)
    )
    assert [j.id for j in client.list_jobs()] == [7]
    assert len(script.api) == 3  # two failures opened the circuit; the probe succeeded
    assert 0.2 < waits.slept[2] <= 0.3  # the circuit's pause
    assert breaker.state("cid").state == "closed"


def test_a_write_waits_for_the_circuit_too_nothing_was_sent(breaker: RedisCircuitBreaker) -> None:
    for _ in range(2):
        breaker.before_send("cid")
        breaker.record("cid", False)
    script = Script([r(201, {"id": 3, "name": "x"})])
    client, waits = make(script, breaker=breaker, waits=Waits(real_sleep=True))
    assert client.create_tag("x").id == 3
    assert len(script.api) == 1 and len(waits.slept) == 1


def test_writes_failing_while_reads_answer_open_the_write_circuit(breaker: RedisCircuitBreaker) -> None:
    """A write-only outage: every answered lookup resets the credential's count, so writes count apart."""
    script = Script([r(200), r(503), r(200), r(503), r(200)])
    worker, _ = make(script, patient=False, breaker=breaker, conf=settings(quick_retries=0))
    for _ in range(2):
        worker.list_jobs()
        with pytest.raises(e.ServerError):
            worker.create_tag("x")
    state = breaker.state("cid")
    assert state.state == "open" and state.writes_only and state.failures == 2
    with pytest.raises(e.CircuitOpenError) as info:
        worker.create_tag("x")
    assert not info.value.outcome_unknown and len(script.api) == 4  # not sent
    worker.list_jobs()  # reads go on
    assert len(script.api) == 5


def test_a_refused_connection_on_a_write_is_not_an_unknown_outcome(breaker: RedisCircuitBreaker) -> None:
    for exc, sent in ((httpx.ConnectError, False), (httpx.ConnectTimeout, False), (httpx.ReadTimeout, True)):
        breaker.reset("cid")
        client, _ = make(Script([exc]), patient=False, breaker=breaker)
        with pytest.raises((e.HarvestConnectionError, e.HarvestTimeoutError)) as info:
            client.create_candidate(CreateCandidate(first_name="A", last_name="B"))
        err = info.value
        assert isinstance(err, e.HarvestConnectionError | e.HarvestTimeoutError)
        assert err.sent is sent and err.outcome_unknown is sent and err.method == "POST"
        assert breaker.state("cid").failures == 1  # a failure of Greenhouse either way


# --- worker mode is unchanged ---------------------------------------------------------------------------


def test_worker_mode_quick_retries_and_nothing_patient() -> None:
    client, waits = make(Script([r(503)]), patient=False)
    with pytest.raises(e.ServerError) as info:
        client.list_jobs()
    assert info.value.tries is None and "gave up" not in str(info.value)
    assert len(waits.slept) == 2 and all(s <= 2.0 for s in waits.slept)  # quick_retries=2, jittered
    assert waits.announced == []
    client, waits = make(Script([r(429, **{"Retry-After": "8"}), r(200)]), patient=False)
    with pytest.raises(e.RateLimitedError):
        client.list_jobs()  # the queue waits, not the worker
    assert waits.slept == []


def test_with_sub_keeps_the_policy(breaker: RedisCircuitBreaker) -> None:
    client, _ = make(Script([r(200)]), breaker=breaker)
    writer = client.with_sub(5)
    assert writer.patient and writer.breaker is breaker and writer.on_wait == client.on_wait


# --- the pure decisions ---------------------------------------------------------------------------------

W = {"method": "GET", "path": "/v3/jobs"}
POST = {"method": "POST", "path": "/v3/candidates"}


@pytest.mark.parametrize(
    ("exc", "safe", "retry"),
    [
        (e.ServerError("x", status=503, **W), True, True),
        (e.ServerError("x", status=503, **POST), False, False),
        (e.ServerError("x", status=503, path="/token"), False, True),  # the mint failed: Harvest not called
        (e.HarvestTimeoutError("x", **W), True, True),
        (e.HarvestConnectionError("x", **W), True, True),
        (e.HarvestConnectionError("x", sent=False, **POST), False, False),  # a write: the queue decides
        (e.RateLimitedError("x", retry_after_s=3, **W), True, True),
        (e.RateLimitedError("x", retry_after_s=3, **POST), False, False),
        (e.ThrottledError("x", retry_after_s=3), True, False),
        (e.CircuitOpenError("x", retry_after_s=3), False, True),
        (e.NotFoundError("x", status=404, **W), True, False),
        (e.AuthenticationError("x", status=401, **W), True, False),
        (ValueError("bug"), True, False),
    ],
)  # fmt: skip
def test_should_retry_patiently(exc: BaseException, safe: bool, retry: bool) -> None:
    assert should_retry_patiently(exc, safe=safe) is retry


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        (e.ServerError("x", status=500), True),
        (e.ServerError("x", status=408), False),
        (e.HarvestTimeoutError("x"), True),
        (e.HarvestConnectionError("x", sent=False), True),
        (e.RateLimitedError("x", retry_after_s=1), False),
        (e.AuthenticationError("x", status=401), False),
    ],
)  # fmt: skip
def test_is_outage(exc: BaseException, outage: bool) -> None:
    assert is_outage(exc) is outage


@pytest.mark.parametrize(
    ("failures", "jitter", "wait"),
    [(1, 0.0, 1.0), (2, 0.0, 2.0), (3, 0.99, 4.99), (5, 0.0, 16.0), (6, 0.0, 20.0), (9, 0.9, 20.0)],
)
def test_patient_backoff(failures: int, jitter: float, wait: float) -> None:
    assert patient_backoff_s(failures, 20.0, jitter) == pytest.approx(wait)


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (e.ServerError("x", status=503, **W),
         "Greenhouse answered HTTP 503 to GET /v3/jobs; retrying in 4 s (2 of 6)"),
        (e.HarvestTimeoutError("x", path="/token"),
         "Greenhouse did not answer the token request in time; retrying in 4 s (2 of 6)"),
        (e.HarvestConnectionError("x", **W),
         "the connection to Greenhouse failed (GET /v3/jobs); retrying in 4 s (2 of 6)"),
        (e.RateLimitedError("x", retry_after_s=4, **W),
         "Greenhouse's rate limit refused GET /v3/jobs (HTTP 429); waiting 4 s (2 of 6)"),
        (e.CircuitOpenError("Greenhouse failed 5 times in a row for credential c: pausing", retry_after_s=4),
         "Greenhouse failed 5 times in a row for credential c: pausing; waiting 4 s"),
    ],
)  # fmt: skip
def test_describe_retry(exc: BaseException, text: str) -> None:
    assert describe_retry(exc, 4.0, 2, 6) == text


def test_gave_up_prefix_only_when_tries_are_set() -> None:
    err = e.ServerError("boom", status=500, **W)
    assert str(err) == "HTTP 500 GET /v3/jobs: boom"
    err.tries = 7
    assert str(err) == "gave up after 7 tries: HTTP 500 GET /v3/jobs: boom"


# --- wiring: Resources and the CLI -------------------------------------------------------------------


def test_resources_give_every_client_the_breaker_and_the_policy(tmp_path: object) -> None:
    from shared.harvest.breaker import NullCircuitBreaker
    from shared.resources import Resources

    base = {"_env_file": None, "database_url": f"sqlite:///{tmp_path}/r.db", "broker_url": "memory://"}
    redis_client = fakeredis.FakeRedis()
    with Resources(Settings(**base), redis_client=redis_client) as command:  # type: ignore[arg-type]
        options = command.harvest_options()
        assert options["patient"] is True and options["on_wait"] is None
        assert isinstance(options["breaker"], RedisCircuitBreaker) and options["breaker"] is command.breaker
        assert command.breaker.probe_ttl_s == 30.0 + 5.0 + 5.0  # timeout + connect timeout + margin
        assert options["limiter"] is command.limiter and options["http_client"] is command.http
    off = Settings(**base, breaker=BreakerSettings(enabled=False))  # type: ignore[arg-type]

    def say(seconds: float, reason: str) -> None: ...

    with Resources(off, redis_client=redis_client, patient=False, on_wait=say) as worker:
        options = worker.harvest_options()
        assert options["patient"] is False and options["on_wait"] is say
        assert isinstance(options["breaker"], NullCircuitBreaker)


def test_the_cli_is_a_patient_command_that_says_why_it_waits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import producer.cli_base as cli

    monkeypatch.setattr(cli, "_resources", None)
    res = cli.resources()
    try:
        assert res.patient and res.on_wait is cli.say_wait
    finally:
        cli.close_resources()
    cli.say_wait(13.2, "waiting 13 s for the credential's rate-limit budget")
    out = capsys.readouterr()
    assert out.out == "" and out.err == "ghexport: waiting 13 s for the credential's rate-limit budget\n"

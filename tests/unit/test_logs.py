"""Logging (``shared/logs.py``): the JSON formatter, the redaction, the choice of format and level, and the
handler :func:`configure_logging` installs on the root logger (a foreign handler is left alone)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from shared.connections.crypto import generate_key
from shared.errors import ConfigurationError
from shared.logs import (
    EMAIL,
    REDACTED,
    JsonFormatter,
    RedactingFilter,
    Redactor,
    choose_format,
    configure_logging,
    process_level,
)
from shared.settings import ObservabilitySettings, Settings


class Tty(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Every test leaves the root logger (handlers, level) and the quietened loggers as it found them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "t")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in quiet.items():
        logging.getLogger(name).setLevel(lvl)


def settings(**log: str) -> Settings:
    """Settings whose log group was set as ``GHX_LOG__*`` variables would set it (``level`` only when given)."""
    return Settings(log=ObservabilitySettings(**log)) if log else Settings()


# --- redaction ---------------------------------------------------------------------------------------------

REDACTIONS = [
    ("lookup of ada.lovelace+gh@mail.example.co.uk failed", f"lookup of {EMAIL} failed"),
    ("GET /v3/candidates?email=ada%40example.org HTTP/1.1", f"GET /v3/candidates?email={EMAIL} HTTP/1.1"),
    ("emails: [Zoe.Q@example.org, x_y@b.io]", f"emails: [{EMAIL}, {EMAIL}]"),
    ("Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl", f"Authorization: Bearer {REDACTED}"),
    ("sent with bearer 0a1b2c3d4e5f6a7b", f"sent with bearer {REDACTED}"),
    ("headers {'authorization': 'Basic b3BzOnB3'}", f"headers {{'authorization': 'Basic {REDACTED}'}}"),
    (
        "body: grant_type=client_credentials&client_secret=s3cr3t-value&client_id=acme",
        f"body: grant_type=client_credentials&client_secret={REDACTED}&client_id=acme",
    ),
    ('{"access_token": "tok_12345678", "expires_at": 1}', f'{{"access_token": "{REDACTED}", "expires_at": 1}}'),
    ("Credentials(client_secret='abc123xyz')", f"Credentials(client_secret='{REDACTED}')"),
    ("GHX_SECRET_KEY=anything-at-all", f"GHX_SECRET_KEY={REDACTED}"),
    ("GHX_FLOWER_BASIC_AUTH=ops:hunter22", f"GHX_FLOWER_BASIC_AUTH={REDACTED}"),
    ("password: hunter22", f"password: {REDACTED}"),
    ("broker redis://ops:pa55w0rd@redis.internal:6379/0", f"broker redis://ops:{REDACTED}@redis.internal:6379/0"),
]

UNTOUCHED = [
    "item 17: exported (batch 3f2a9c, candidate 4501, application 9902)",
    "Task ghexport.export_item[1f2e-44] succeeded in 0.21s: 'exported'",
    "The bearer of bad news asked for a password reset; basic authentication failed for user 12.",
    'FATAL: password authentication failed for user "postgres"',
    "Bearer tokens expire; the token bucket refills; Authorization required",
    "connected to postgresql://postgres@db.internal:5432/ghx and redis://127.0.0.1:6379/2",
    "celery@worker1 ready; 3 of 40 items @ 12/s, retry in 5s (rate_limited)",
    "José Müller wrote 佐藤 at 10:30 on 2024-05-01; see https://example.org/a?b=1&c=2",
]


@pytest.mark.parametrize(("text", "expected"), REDACTIONS)
def test_redaction_replaces_emails_and_secrets(text: str, expected: str) -> None:
    redact = Redactor()
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent: every handler may see the record


@pytest.mark.parametrize("text", UNTOUCHED)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert Redactor()(text) == text


def test_the_process_secrets_and_fernet_shaped_keys_are_redacted_wherever_they_appear() -> None:
    key = generate_key()
    s = Settings(secret_key=SecretStr(key), flower_basic_auth=SecretStr("ops:Tr0ub4dor&3,viewer:c0rrect-h0rse"))
    from shared.logs import settings_secrets

    redact = Redactor(settings_secrets(s))
    text = f"key {key} then Tr0ub4dor&3 and c0rrect-h0rse, pairs ops:Tr0ub4dor&3"
    out = redact(text)
    assert key not in out and "Tr0ub4dor&3" not in out and "c0rrect-h0rse" not in out, out
    assert out == f"key {REDACTED} then {REDACTED} and {REDACTED}, pairs {REDACTED}"
    other_key = generate_key()  # not this process's: caught by its shape
    assert Redactor()(f"key={other_key}.") == f"key={REDACTED}."
    assert Redactor(["ab"])("ab cab") == "ab cab"  # too short to search for


def record(msg: str, *args: object, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    rec = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, exc_info)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_the_filter_redacts_message_arguments_extras_and_traceback() -> None:
    try:
        raise ValueError("no candidate for zoe@example.org (access_token=tok_98765432)")
    except ValueError as e:
        exc = e
    rec = record(
        "lookup %s: %s",
        "ada@example.org",
        "Bearer abcdefgh12345678",
        exc=exc,
        item_id=5,
        note="copy to ada@example.org",
        data={"args": ["ada@example.org"], "exc": "client_secret=xyz123"},
    )
    assert RedactingFilter(Redactor()).filter(rec)
    assert rec.getMessage() == f"lookup {EMAIL}: Bearer {REDACTED}"
    assert vars(rec)["note"] == f"copy to {EMAIL}" and vars(rec)["item_id"] == 5
    assert vars(rec)["data"] == {"args": [EMAIL], "exc": f"client_secret={REDACTED}"}
    assert rec.exc_info is None and rec.exc_text is not None
    assert "ValueError: no candidate for <email> (access_token=<redacted>)" in rec.exc_text
    assert "Traceback (most recent call last)" in rec.exc_text
    text = logging.Formatter().format(rec)
    assert "example.org" not in text and "tok_98765432" not in text and "xyz123" not in text


def test_a_record_whose_arguments_do_not_format_keeps_its_template_only() -> None:
    rec = record("item %s of %s", "ada@example.org")  # one argument for two placeholders
    assert RedactingFilter(Redactor()).filter(rec)
    assert rec.getMessage() == "item %s of %s (log arguments could not be formatted)"


# --- formats -----------------------------------------------------------------------------------------------


def test_json_lines_are_one_object_per_line_with_the_fields() -> None:
    stream = io.StringIO()
    configure_logging(settings(format="json"), stream=stream)
    log = logging.getLogger("ghexport.worker")
    log.info("item %s: %s", 7, "exported", extra={"item_id": 7, "batch_id": "b1", "outcome": "exported"})
    log.warning("two\nlines for ada@example.org")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, lines
    first, second, third = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "process", "message", "item_id", "batch_id", "outcome"}
    assert first["message"] == "item 7: exported" and first["level"] == "INFO" and first["logger"] == "ghexport.worker"
    assert (first["item_id"], first["batch_id"], first["outcome"]) == (7, "b1", "exported")
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second["message"] == f"two\nlines for {EMAIL}"
    assert third["level"] == "ERROR" and "RuntimeError: boom" in third["exc_info"]


def test_text_format_is_one_readable_line() -> None:
    stream = io.StringIO()
    configure_logging(settings(format="text"), stream=stream)
    logging.getLogger("ghexport.worker").warning("item %s: retry for ada@example.org", 3, extra={"item_id": 3})
    (line,) = stream.getvalue().splitlines()
    assert line.endswith(f" WARNING ghexport.worker: item 3: retry for {EMAIL}"), line
    assert not line.startswith("{")


def test_auto_is_text_on_a_terminal_and_json_otherwise() -> None:
    assert choose_format("auto", Tty()) == "text"
    assert choose_format("auto", io.StringIO()) == "json"
    assert choose_format("JSON", Tty()) == "json" and choose_format("text", io.StringIO()) == "text"
    tty = Tty()
    configure_logging(settings(), stream=tty, default_level="INFO")
    logging.getLogger("t").info("hello")
    assert "INFO t: hello" in tty.getvalue() and not tty.getvalue().startswith("{")
    pipe = io.StringIO()
    configure_logging(settings(), stream=pipe, default_level="INFO")
    logging.getLogger("t").info("hello")
    assert json.loads(pipe.getvalue())["message"] == "hello"


def test_invalid_format_or_level_is_a_configuration_error_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="GHX_LOG__FORMAT"):
        configure_logging(settings(format="yaml"), stream=io.StringIO())
    with pytest.raises(ConfigurationError, match="GHX_LOG__LEVEL"):
        configure_logging(settings(level="LOUD"), stream=io.StringIO())


def test_level_is_the_command_s_own_unless_the_setting_asks_for_more() -> None:
    assert process_level(settings(), "WARNING") == logging.WARNING  # default INFO of the setting not set
    assert process_level(settings(level="debug"), "WARNING") == logging.DEBUG
    assert process_level(settings(level="ERROR"), logging.INFO) == logging.INFO  # --loglevel INFO wins
    assert process_level(settings(level="INFO"), logging.DEBUG) == logging.DEBUG


def test_configure_replaces_its_own_handler_and_keeps_foreign_ones() -> None:
    root = logging.getLogger()
    foreign = logging.StreamHandler(io.StringIO())
    root.addHandler(foreign)
    before = len(root.handlers)
    first, second = io.StringIO(), io.StringIO()
    configure_logging(settings(format="json"), stream=first)
    configure_logging(settings(format="json", level="DEBUG"), stream=second)
    assert foreign in root.handlers and len(root.handlers) == before + 1
    logging.getLogger("t").debug("once")
    assert first.getvalue() == "" and json.loads(second.getvalue())["message"] == "once"
    assert root.level == logging.DEBUG
    assert logging.getLogger("httpx").level == logging.WARNING  # request URLs carry emails: held at WARNING


def test_the_json_formatter_alone_writes_extras() -> None:
    rec = record("m", item_id=1, greenhouse_candidate_id=None)
    doc = json.loads(JsonFormatter().format(rec))
    assert doc["item_id"] == 1 and doc["greenhouse_candidate_id"] is None and doc["message"] == "m"

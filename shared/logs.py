"""Logging for every process: human-readable text on a terminal, JSON lines otherwise; secrets and emails redacted.

:func:`configure_logging` gives the root logger one handler on stderr, with the format ``GHX_LOG__FORMAT``
asks for (``text``, ``json``, or ``auto``: text when stderr is a terminal, JSON lines otherwise) and a
:class:`RedactingFilter`. The CLI calls it in ``main()``, the worker from Celery's ``setup_logging`` signal,
so Celery's own lines go through the same handler. A JSON line is one object: ``time`` (UTC, ISO 8601),
``level``, ``logger``, ``process``, ``message``, the record's ``extra=`` fields, and ``exc_info`` (the
traceback as text) when there is one.

Redaction (:class:`Redactor`) rewrites the message, the traceback and every string ``extra`` field before
any of our handlers formats the record: emails (also ``%40``-encoded) become ``<email>``; the value after
``Bearer``, an ``Authorization`` header, ``client_secret``, ``access_token``, ``refresh_token``,
``secret_key``, ``password``, ``api_key`` or ``basic_auth`` (``=`` or ``:``, quoted or not), the password
of a URL (``scheme://user:password@``), anything shaped like a Fernet key, and the exact values of the
process's own secrets (``GHX_SECRET_KEY``, ``GHX_FLOWER_BASIC_AUTH``) become ``<redacted>``. Names cannot be
recognised by a pattern: the code never logs them (messages carry ids).

The lowest layer of ``shared``: imports only :mod:`shared.settings` and :mod:`shared.errors`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from shared.errors import ConfigurationError
from shared.settings import Settings

REDACTED = "<redacted>"
EMAIL = "<email>"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "process", "message")
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}
FORMATS = ("auto", "text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
QUIET_LOGGERS = ("httpx", "httpcore", "fontTools", "fpdf")  # fontTools logs every subset at INFO
"""Held at WARNING: httpx logs every request URL at INFO, and email lookups put addresses in URLs."""
MIN_SECRET_LEN = 6
"""Shorter known secret values are not searched for (they would match ordinary words)."""

_MARK = "_ghx_redacted"
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)([^/\s@<]+)(@)")
_AUTH_SCHEMES = "basic|bearer|digest|token"
_AUTH_HEADER = re.compile(
    rf"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(?:({_AUTH_SCHEMES})\s+)?(?!(?:{_AUTH_SCHEMES})\b)([^\s\"',;}}<]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?:[A-Za-z0-9._~+/-]{16,}|(?=[A-Za-z0-9._~+/-]*\d)[A-Za-z0-9._~+/-]{8,})=*")
_SECRET_NAMES = "client_secret|access_token|refresh_token|id_token|secret_key|api_key|apikey|password|passwd|basic_auth"
_KEY_VALUE = re.compile(rf"(?i)(?<![A-Za-z0-9])({_SECRET_NAMES})([\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;)}}\]<]+)")
_FERNET_KEY = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])")
_EMAIL = re.compile(
    r"(?<![\w.%+/-])[\w.%+-]+(?:@|%40)"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}\b"
)


class Redactor:
    """``redactor(text)``: ``text`` with emails and secrets replaced (see the module docstring).

    ``secrets`` are exact values to hide wherever they appear (shorter than :data:`MIN_SECRET_LEN`: ignored).
    Idempotent: redacting a redacted text changes nothing.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self._known = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub(REDACTED, text)
        text = _URL_PASSWORD.sub(rf"\1{REDACTED}\3", text)
        text = _AUTH_HEADER.sub(_auth_header, text)
        text = _BEARER.sub(rf"\1{REDACTED}", text)
        text = _KEY_VALUE.sub(rf"\1\2{REDACTED}", text)
        text = _FERNET_KEY.sub(REDACTED, text)
        return _EMAIL.sub(EMAIL, text)


def _auth_header(match: re.Match[str]) -> str:
    scheme = f"{match.group(2)} " if match.group(2) else ""
    return f"{match.group(1)}{scheme}{REDACTED}"


def settings_secrets(settings: Settings) -> list[str]:
    """The secret values of ``settings`` a log line must never show: the Fernet key, Flower's credentials
    (each ``user:password`` pair and each password)."""
    out: list[str] = []
    if settings.secret_key is not None:
        out.append(settings.secret_key.get_secret_value())
    if settings.flower_basic_auth is not None:
        for pair in settings.flower_basic_auth.get_secret_value().split(","):
            out += [pair, pair.partition(":")[2]]
    return out


class RedactingFilter(logging.Filter):
    """A handler filter that redacts a record in place (message, traceback, ``extra`` fields), once:
    every handler after the first sees the redacted record. The traceback becomes text (``exc_text``)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _MARK, False):
            return True
        redact = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # bad arguments: keep the template, never the raw arguments
            message = f"{record.msg} (log arguments could not be formatted)"
        record.msg, record.args = redact(message), ()
        if record.exc_info:
            record.exc_text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, self._redact_value(value))
        setattr(record, _MARK, True)
        return True

    def _redact_value(self, value: object) -> object:
        """An ``extra`` value with every string in it redacted: Celery logs ``extra={"data": {...}}`` with
        the same texts as the message (arguments, the exception)."""
        if isinstance(value, str):
            return self.redactor(value)
        if isinstance(value, dict):
            return {k: self._redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._redact_value(v) for v in value]
        return value


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``process``, ``message``, the ``extra``
    fields, ``exc_info`` when there is one."""

    def __init__(self) -> None:
        super().__init__(list(JSON_FIELDS), rename_fields=dict(JSON_NAMES), reserved_attrs=[*RESERVED_ATTRS, _MARK])

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        return stamp.replace("+00:00", "Z")


def choose_format(name: str, stream: TextIO) -> Literal["text", "json"]:
    """``text`` or ``json`` for the setting ``name``: ``auto`` is text on a terminal, JSON otherwise."""
    fmt = name.strip().lower()
    if fmt not in FORMATS:
        raise ConfigurationError(f"invalid setting GHX_LOG__FORMAT: {name!r} (choose {', '.join(FORMATS)})")
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return "text" if callable(isatty) and isatty() else "json"
    return "text" if fmt == "text" else "json"


def parse_level(value: str | int) -> int:
    """A logging level from a name (any case) or a number."""
    if isinstance(value, int):
        return value
    name = value.strip().upper()
    if name not in LEVELS:
        raise ConfigurationError(f"invalid setting GHX_LOG__LEVEL: {value!r} (choose {', '.join(LEVELS)})")
    return int(logging.getLevelName(name))


def process_level(settings: Settings, default: str | int) -> int:
    """The level of a process whose command's own level is ``default`` (the CLI's WARNING, a worker's
    ``--loglevel``): ``GHX_LOG__LEVEL`` wins when it was set and is more verbose."""
    level = parse_level(default)
    if "level" in settings.log.model_fields_set:
        level = min(level, parse_level(settings.log.level))
    return level


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a line is written (a test's capture after a swap)."""

    @property  # the stream is looked up on each write
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(settings: Settings, *, default_level: str | int = "INFO", stream: TextIO | None = None) -> None:
    """Send the root logger's records to stderr (or ``stream``) in the format of ``settings.log.format``,
    redacted, at :func:`process_level` (``default_level`` is the command's own).

    Replaces the handler an earlier call installed; leaves any other handler alone (a test harness's, an
    embedder's). Raises :class:`~shared.errors.ConfigurationError` for an unknown format or level.
    """
    level = process_level(settings, default_level)
    handler: logging.StreamHandler[TextIO] = logging.StreamHandler(stream) if stream else _StderrHandler()
    fmt = choose_format(settings.log.format, stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter(Redactor(settings_secrets(settings))))
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))

"""Profile input: the operator contract's ``PROFILES.jsonl`` (a profile a line), read and validated.

``read_profiles`` never stops at a bad line: each bad line becomes a :class:`LineError` (line number,
the profile id when it could be read, the field, a short reason) and the good lines are still returned.
Errors never carry the line itself or any PII beyond the profile id.

Limits: ``id`` <= 200 chars, no NUL; names and other strings <= 255; URLs <= 2,048; ``summary`` <= 10,000;
every list <= 50 items. Strings are stripped as Python's ``str.strip`` does (the same whitespace that makes
a value blank). Unknown keys (the platform adds fields) are ignored and kept out of the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)

MAX_ID_CHARS = 200
MAX_STR_CHARS = 255
MAX_URL_CHARS = 2048
MAX_SUMMARY_CHARS = 10_000
MAX_LIST_ITEMS = 50
MAX_LINE_CHARS = 1_000_000
"""A longer line is rejected before parsing (a sane bound on one profile)."""

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def _email(value: str) -> str:
    # Loose on purpose: one "@", non-empty local part, a dotted domain. Greenhouse validates the rest.
    if not _EMAIL_RE.match(value):
        raise ValueError("not a valid email address")
    return value


def _strict_date(value: object) -> object:
    # Pydantic's lax mode reads numbers as Unix timestamps; a profile date is an ISO string or null.
    if value == "":
        return None
    if isinstance(value, bool | int | float):
        raise ValueError("expected an ISO date string (YYYY-MM-DD)")
    return value


def _strip(value: object) -> object:
    # Python's str.strip, not pydantic's strip_whitespace: the blank checks here and Harvest's "can't be
    # blank" count U+001C-U+001F as whitespace, which pydantic's (Unicode White_Space) strip keeps.
    return value.strip() if isinstance(value, str) else value


def _int_id(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _no_nul(value: str) -> str:
    # A NUL cannot be stored in a PostgreSQL text column (the item's profile_id): the whole batch would fail.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


_Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_CHARS),
    AfterValidator(_no_nul),
    BeforeValidator(_strip),
    BeforeValidator(_int_id),
]
_Str = Annotated[str, StringConstraints(max_length=MAX_STR_CHARS), BeforeValidator(_strip)]
_Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STR_CHARS), BeforeValidator(_strip)]
_Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS), BeforeValidator(_strip)]
_Item = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STR_CHARS), BeforeValidator(_strip)]
_Email = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_STR_CHARS),
    AfterValidator(_email),
    BeforeValidator(_strip),
]
_Date = Annotated[date | None, BeforeValidator(_strict_date)]


def _blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


_OptStr = Annotated[_Str | None, BeforeValidator(_blank_to_none)]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EmploymentIn(_In):
    """One ``employments`` member of a profile line."""

    company_name: _OptStr = None
    title: _OptStr = None
    start_date: _Date = None
    end_date: _Date = None


class EducationIn(_In):
    """One ``educations`` member of a profile line; names are resolved to Greenhouse options at mapping."""

    school: _OptStr = None
    degree: _OptStr = None
    discipline: _OptStr = None
    start_date: _Date = None
    end_date: _Date = None


class Profile(_In):
    """A validated profile line. ``id``, ``first_name`` and ``last_name`` are required; strings stripped.

    ``id`` is the sourcing platform's stable candidate id (an int id is accepted and kept as its string).
    """

    id: _Id
    first_name: _Name
    last_name: _Name
    emails: list[_Email] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    phones: list[_Item] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    company: _OptStr = None
    title: _OptStr = None
    location: _OptStr = None
    skills: list[_Item] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    social_media: list[_Url] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    urls: list[_Url] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    employments: list[EmploymentIn] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    educations: list[EducationIn] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    tags: list[_Item] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    summary: Annotated[
        Annotated[str, StringConstraints(max_length=MAX_SUMMARY_CHARS), BeforeValidator(_strip)] | None,
        BeforeValidator(_blank_to_none),
    ] = None
    profile_url: Annotated[_Url | None, BeforeValidator(_blank_to_none)] = None
    """The profile's page on the sourcing platform (printed on the resume)."""

    @field_validator(
        "emails",
        "phones",
        "skills",
        "social_media",
        "urls",
        "tags",
        "employments",
        "educations",
        mode="wrap",
    )
    @classmethod
    def _null_list(cls, value: object, handler: ValidatorFunctionWrapHandler) -> object:
        # null is "none given"; blank strings inside a list carry nothing and are dropped, but an error
        # still names its item by its index in the input line.
        if value is None:
            return []
        if not isinstance(value, list):
            return handler(value)
        kept = [i for i, v in enumerate(value) if not (isinstance(v, str) and not v.strip())]
        try:
            return handler([value[i] for i in kept])
        except ValidationError as exc:
            errors = [
                {**e, "loc": (kept[e["loc"][0]], *e["loc"][1:])} if e["loc"] and isinstance(e["loc"][0], int) else e
                for e in exc.errors()
            ]
            raise ValidationError.from_exception_data(exc.title, errors) from None  # type: ignore[arg-type]

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe dict for the result store; :meth:`from_snapshot` reads it back to an equal profile."""
        return self.model_dump(mode="json")

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Profile:
        """Inverse of :meth:`snapshot` (re-validates, so a tampered snapshot fails loudly)."""
        return cls.model_validate(data)


@dataclass(frozen=True)
class LineError:
    """A rejected input line: 1-based ``line``, the profile id when readable, the field path, a reason.

    ``str()`` gives ``line 3 (id p-1003): last_name: field required``; never the line's content.
    """

    line: int
    profile_id: str | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form, as stored on the batch and printed by ``export --json``."""
        return {"line": self.line, "id": self.profile_id, "field": self.field, "error": self.message}

    def __str__(self) -> str:
        where = f"line {self.line}"
        if self.profile_id is not None:
            where += f" (id {self.profile_id})"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass
class ReadResult:
    """Outcome of reading a profile file: the valid profiles in file order and one error per bad line."""

    profiles: list[Profile] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _message(msg: str) -> str:
    msg = msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def describe_errors(exc: ValidationError, most: int = 5) -> str:
    """``field: reason`` for each problem of ``exc`` (at most ``most``), never the values: pydantic's own text
    quotes its input, which is candidate data."""
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    text = "; ".join(f"{_loc(tuple(e['loc'])) or 'profile'}: {_message(e['msg'])}" for e in problems[:most])
    return text + (f"; and {len(problems) - most} more" if len(problems) > most else "")


_ID = TypeAdapter(_Id)


def _readable_id(obj: Mapping[str, object]) -> str | None:
    # Exactly the id the model reads, or none: an error never names a neighbour's id (nor an unstorable one).
    try:
        return _ID.validate_python(obj.get("id"))
    except ValidationError:
        return None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


class ProfileReader:
    """Reads profile lines one at a time, for input that arrives in pieces (a request body as it streams in):
    :meth:`add` each numbered line (or :meth:`add_object` an already parsed one), then take :attr:`result`.
    The same checks as :func:`read_profiles`, duplicates included (an id seen on an earlier line)."""

    def __init__(self) -> None:
        self.result = ReadResult()
        self._seen: dict[str, int] = {}

    def add(self, lineno: int, text: str | None) -> None:
        """Read line ``lineno`` (None: it was not valid UTF-8); a blank line is skipped."""
        errors = self.result.errors
        if text is None:
            errors.append(LineError(lineno, None, None, "not valid UTF-8"))
            return
        if lineno == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            return
        if len(text) > MAX_LINE_CHARS:
            errors.append(LineError(lineno, None, None, f"line longer than {MAX_LINE_CHARS} chars"))
            return
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            errors.append(LineError(lineno, None, None, "invalid JSON"))
            return
        except RecursionError:  # json's decoder recurses per nesting level: a line of "[[[..." got here
            errors.append(LineError(lineno, None, None, "invalid JSON: nested too deeply"))
            return
        self.add_object(lineno, obj)

    def add_object(self, lineno: int, obj: object) -> None:
        """Read one parsed JSON value as the profile of line (or position) ``lineno``."""
        errors = self.result.errors
        if not isinstance(obj, dict):
            errors.append(LineError(lineno, None, None, "not a JSON object"))
            return
        pid = _readable_id(obj)
        try:
            profile = Profile.model_validate(obj)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                errors.append(LineError(lineno, pid, _loc(err["loc"]) or None, _message(err["msg"])))
            return
        if profile.id in self._seen:
            errors.append(
                LineError(lineno, profile.id, "id", f"duplicate id, first seen on line {self._seen[profile.id]}")
            )
            return
        self._seen[profile.id] = lineno
        self.result.profiles.append(profile)


def _read(numbered: Iterable[tuple[int, str | None]]) -> ReadResult:
    reader = ProfileReader()
    for lineno, text in numbered:
        reader.add(lineno, text)
    return reader.result


def read_profiles(lines: Iterable[str]) -> ReadResult:
    """Validate JSONL lines (numbered from 1; blank lines skipped but counted; a leading BOM tolerated).

    Every bad line (invalid JSON, not an object, missing or wrong-typed or oversized fields, a duplicate
    id) yields at least one :class:`LineError`; the good lines are returned in order.
    """
    return _read(enumerate(lines, start=1))


def _decoded(path: Path) -> Iterator[tuple[int, str | None]]:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield lineno, None


def read_profiles_file(path: str | Path) -> ReadResult:
    """:func:`read_profiles` over a UTF-8 file (BOM tolerated; a line that is not UTF-8 is a LineError)."""
    return _read(_decoded(Path(path)))


def select(profiles: Sequence[Profile], ids: Sequence[str]) -> tuple[list[Profile], list[str]]:
    """The profiles whose id is in ``ids`` (in the order of ``ids``, each once) and the ids not found."""
    by_id = {p.id: p for p in profiles}
    chosen: list[Profile] = []
    missing: list[str] = []
    done: set[str] = set()
    for raw in ids:
        pid = raw.strip()
        if pid in done:
            continue
        done.add(pid)
        if pid in by_id:
            chosen.append(by_id[pid])
        else:
            missing.append(pid)
    return chosen, missing

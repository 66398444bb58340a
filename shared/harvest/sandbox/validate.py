"""Request validation as strict as Harvest: a small schema language plus query-parameter parsers.

Every problem becomes an :class:`ApiError`; 422 bodies have Harvest's shape
``{"message": "Validation error", "errors": [{"field": ..., "message": ...}]}`` and always name the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import NotRequired, TypedDict

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_IDS = 50


class ErrorItem(TypedDict):
    """One member of an error body's ``errors`` list."""

    field: str | None
    message: str


class ErrorBody(TypedDict):
    """The JSON body of a Harvest error: ``{"message": ..., "errors": [...]}`` (``errors`` optional)."""

    message: str
    errors: NotRequired[list[ErrorItem]]


class ApiError(Exception):
    """A Harvest error response: status, top-level message and optional ``errors`` list."""

    def __init__(self, status: int, message: str, errors: list[ErrorItem] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def body(self) -> ErrorBody:
        """The JSON body Harvest would send."""
        out: ErrorBody = {"message": self.message}
        if self.errors is not None:
            out["errors"] = self.errors
        return out

    @property
    def reason(self) -> str:
        """One-line reason for the stats' list of invalid requests."""
        details = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in self.errors or [])
        return f"{self.message} ({details})" if details else self.message


def invalid(errors: list[tuple[str | None, str]]) -> ApiError:
    """A 422 naming each ``(field, message)``."""
    return ApiError(422, "Validation error", [{"field": f, "message": m} for f, m in errors])


def not_found(what: str, record_id: int) -> ApiError:
    """404 for an unknown record (the ``errors`` key says the handler ran)."""
    return ApiError(404, "Resource not found", [{"field": "id", "message": f"{what} {record_id} not found"}])


@dataclass(frozen=True)
class F:
    """Schema of one JSON member. ``kind``: str, int, bool, true, date, enum, obj, list, str_or_list, scalar."""

    kind: str
    required: bool = False
    nonempty: bool = False
    choices: tuple[str, ...] = ()
    fields: Mapping[str, F] | None = None
    item: F | None = None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def check(value: object, spec: F, path: str, errors: list[tuple[str | None, str]]) -> None:
    """Append a ``(field, message)`` to ``errors`` for each way ``value`` violates ``spec``."""
    kind = spec.kind
    if kind == "str" or kind == "enum":
        if not isinstance(value, str):
            errors.append((path, "must be a string"))
        elif spec.nonempty and not value.strip():
            errors.append((path, "can't be blank"))
        elif kind == "enum" and value not in spec.choices:
            errors.append((path, f"must be one of: {', '.join(spec.choices)}"))
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append((path, "must be an integer"))
    elif kind == "bool":
        if not isinstance(value, bool):
            errors.append((path, "must be a boolean"))
    elif kind == "true":
        if value is not True:
            errors.append((path, "must be the JSON boolean true"))
    elif kind == "date":
        if not isinstance(value, str) or not DATE_RE.match(value) or _date(value) is None:
            errors.append((path, "must be a date in YYYY-MM-DD form"))
    elif kind == "str_or_list":
        if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            errors.append((path, "must be a string or an array of strings"))
    elif kind == "scalar":
        if not isinstance(value, str | int) or isinstance(value, bool):
            errors.append((path, "must be a string or an integer"))
    elif kind == "list":
        if not isinstance(value, list):
            errors.append((path, "must be an array"))
        elif spec.item is not None:
            for i, item in enumerate(value):
                check(item, spec.item, f"{path}[{i}]", errors)
    elif kind == "obj":
        if not isinstance(value, dict):
            errors.append((path, "must be an object"))
        elif spec.fields is not None:
            check_members(value, spec.fields, path, errors)
    else:  # pragma: no cover - schema bug
        raise ValueError(f"unknown schema kind {kind!r}")


def check_members(
    body: Mapping[str, object], fields: Mapping[str, F], prefix: str, errors: list[tuple[str | None, str]]
) -> None:
    """Check an object's members: unknown ones, missing required ones, then each present one."""
    for name in body:
        if name not in fields:
            errors.append((_join(prefix, name), "additional property not allowed"))
    for name, spec in fields.items():
        value = body.get(name)
        if value is None:
            if spec.required:
                errors.append((_join(prefix, name), "is required"))
            continue
        check(value, spec, _join(prefix, name), errors)


def check_body(body: Mapping[str, object], fields: Mapping[str, F], prefix: str = "") -> None:
    """Raise a 422 when ``body`` does not match ``fields`` exactly."""
    errors: list[tuple[str | None, str]] = []
    check_members(body, fields, prefix, errors)
    if errors:
        raise invalid(errors)


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def check_date_order(start: object, end: object, field: str = "end_date") -> None:
    """422 when both dates are given and ``end`` is before ``start``."""
    if isinstance(start, str) and isinstance(end, str) and end < start:
        raise invalid([(field, "must be on or after start_date")])


def parse_ids(name: str, raw: str) -> list[int]:
    """A comma list of at most 50 integer ids (``ids``, ``candidate_ids``...)."""
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise invalid([(name, "must be a comma-separated list of integer ids")])
    if len(parts) > MAX_IDS:
        raise invalid([(name, f"must contain at most {MAX_IDS} ids")])
    return [int(p) for p in parts]


def parse_bool(name: str, raw: str) -> bool:
    """``true`` or ``false``; anything else is a 422."""
    if raw not in ("true", "false"):
        raise invalid([(name, "must be true or false")])
    return raw == "true"


def parse_choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``; anything else is a 422."""
    if raw not in choices:
        raise invalid([(name, f"must be one of: {', '.join(choices)}")])
    return raw


def parse_timestamp(name: str, raw: str) -> float:
    """An ISO 8601 timestamp with a time zone (``Z`` or an offset), as epoch seconds; anything else is a 422."""
    try:
        parsed: datetime | None = datetime.fromisoformat(raw)
    except ValueError:
        parsed = None
    if parsed is None or "T" not in raw or parsed.tzinfo is None:
        raise invalid([(name, "must be an ISO 8601 timestamp with a time zone, e.g. 2026-01-02T03:04:05.678Z")])
    return parsed.timestamp()


RANGE_OPERATORS = ("gte", "gt", "lte", "lt")
RANGE_FORM = "operator|timestamp pairs joined by |: gte|2024-01-01T00:00:00Z, gte|<ts>|lte|<ts> (gte, gt, lte, lt)"


@dataclass(frozen=True)
class TimeRange:
    """A ``created_at`` / ``updated_at`` filter: an optional lower and upper bound, each inclusive or strict."""

    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True

    def contains(self, ts: float) -> bool:
        """Whether ``ts`` (epoch seconds) meets both bounds."""
        if self.low is not None and (ts < self.low or (ts == self.low and not self.low_inclusive)):
            return False
        return self.high is None or ts < self.high or (ts == self.high and self.high_inclusive)


def parse_range(name: str, raw: str) -> TimeRange:
    """v3's range form: ``gte|<ts>``, ``lt|<ts>``, ``gte|<ts>|lte|<ts>``... (docs/harvest.md section 5); at most
    one lower and one upper bound, in either order. Malformed, a bad timestamp or an empty range: a 422."""
    parts = raw.split("|")
    if len(parts) not in (2, 4) or any(op not in RANGE_OPERATORS for op in parts[::2]):
        raise invalid([(name, f"must be {RANGE_FORM}")])
    bounds = {op: parse_timestamp(name, ts) for op, ts in zip(parts[::2], parts[1::2], strict=True)}
    lows, highs = [op for op in bounds if op.startswith("g")], [op for op in bounds if op.startswith("l")]
    if len(bounds) != len(parts) // 2 or len(lows) > 1 or len(highs) > 1:
        raise invalid([(name, "takes at most one lower bound (gte, gt) and one upper bound (lte, lt)")])
    found = TimeRange(
        bounds[lows[0]] if lows else None,
        lows != ["gt"],
        bounds[highs[0]] if highs else None,
        highs != ["lt"],
    )
    low, high = found.low, found.high
    closed = found.low_inclusive and found.high_inclusive
    if low is not None and high is not None and (high < low or (high == low and not closed)):
        raise invalid([(name, "the range is empty: the upper bound is before the lower bound")])
    return found


def parse_time_filters(
    params: Mapping[str, str], names: tuple[str, ...] = ("created_at", "updated_at")
) -> dict[str, TimeRange]:
    """The range filters present among ``names``; two in one request are a 422 (v3 takes one at a time)."""
    present = [n for n in names if n in params]
    if len(present) > 1:
        message = f"{' and '.join(present)} cannot be combined in one request"
        raise invalid([(n, message) for n in present])
    return {n: parse_range(n, params[n]) for n in present}


def parse_fields(raw: str, known: tuple[str, ...]) -> list[str]:
    """``fields``: a comma list of at most 50 names, each one of ``known``; anything else is a 422."""
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise invalid([("fields", "must be a comma-separated list of field names")])
    if len(parts) > MAX_IDS:
        raise invalid([("fields", f"must contain at most {MAX_IDS} field names")])
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise invalid([("fields", f"unknown fields: {', '.join(unknown)}")])
    return parts

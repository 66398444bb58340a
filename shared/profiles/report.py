"""The field report: what an export left out of a Greenhouse record, and why.

Every omission is one :class:`LeftOut`: the part (``education 2``, ``tag``, ``resume``...), a reason code
from :class:`Reason` that an operator can count across a batch, and a detail naming the field and, for a
part Greenhouse refused, its message. ``str()`` gives the one-line warning an item also shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Why something was left out (the keys of ``ghexport status``'s summary)."""

    UNKNOWN_SCHOOL = "unknown_school"
    """Greenhouse has no school option of that name (``/v3/custom_field_options``)."""
    UNKNOWN_DEGREE = "unknown_degree"
    UNKNOWN_DISCIPLINE = "unknown_discipline"
    DATES_OUT_OF_ORDER = "dates_out_of_order"
    """An end date before its start date: the end date is left out."""
    NOTHING_TO_SEND = "nothing_to_send"
    """An education with no school, degree or discipline Greenhouse knows."""
    INCOMPLETE = "incomplete"
    """An employment without its company or title (Greenhouse requires both)."""
    DUMMY_EMAIL = "dummy_email"
    """The profile has no email: a dummy address stands in (``GHX_EXPORT__DUMMY_EMAIL_DOMAIN``)."""
    TAG_REFUSED = "tag_refused"
    """Greenhouse refused to apply the tag."""
    REJECTED = "rejected"
    """Greenhouse answered 422 to the part; the detail carries its message."""
    DISABLED = "disabled"
    """The connection's field settings do not send this part (``ghexport configure``)."""
    TOO_LARGE = "too_large"
    """The resume was cut, or left out, to stay under ``GHX_RESUME__MAX_BYTES``."""
    NO_FONT = "no_font"
    """The resume: characters no installed font covers (drawn as a placeholder), or no font at all."""
    UNCONFIRMED = "unconfirmed"
    """Sent without an answer, and never sent twice: it may or may not be in Greenhouse."""


@dataclass(frozen=True)
class LeftOut:
    """One thing an export left out: ``part`` (``education``), its 1-based number ``n`` among the profile's
    parts of that kind when there are several, the ``field`` concerned, a :class:`Reason` and a detail."""

    part: str
    reason: Reason
    detail: str = ""
    n: int | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The stored and ``--json`` form (keys with no value are omitted)."""
        out: dict[str, Any] = {"part": self.part, "reason": self.reason.value}
        if self.n is not None:
            out["n"] = self.n
        if self.field is not None:
            out["field"] = self.field
        if self.detail:
            out["detail"] = self.detail
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeftOut:
        return cls(
            part=str(data["part"]),
            reason=Reason(data["reason"]),
            detail=str(data.get("detail", "")),
            n=data.get("n"),
            field=data.get("field"),
        )

    def __str__(self) -> str:
        """The warning line: ``education 2: school 'X' has no Greenhouse option; left out``. An entry without
        a number carries a whole sentence as its detail."""
        if self.n is not None:
            return f"{self.part} {self.n}: {self.detail or self.reason.value.replace('_', ' ')}"
        return self.detail or f"{self.part}: {self.reason.value.replace('_', ' ')}"

"""Per-connection field settings: which optional parts of a record an export sends.

Stored with the connection (``connections.fields``, JSON), set at ``ghexport connect`` and changed by
``ghexport configure NAME``; ``ghexport connections`` shows them. A worker reads the connection's settings
when it runs an item, so a change applies to items not yet exported (a retry included). What a setting
switched off is named in each item's field report (:class:`~shared.profiles.report.Reason.DISABLED`).

The record itself (names, emails, phones, addresses, links) and its application are not optional.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from shared.profiles.mapping import MappedCandidate, normalise_name
from shared.profiles.report import LeftOut, Reason

Paper = Literal["a4", "letter"]

MAX_EXTRA_TAGS = 10
MAX_TAG_CHARS = 255


class FieldSettings(BaseModel):
    """Which optional parts a connection sends. Every part is on by default; no extra tags."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    resume: bool = True
    """A resume PDF made from the profile, uploaded as the application's ``resume`` attachment."""
    tags: bool = True
    """The profile's own tags."""
    note: bool = True
    """The profile note (summary and skills) on the candidate's activity feed."""
    educations: bool = True
    employments: bool = True
    extra_tags: tuple[str, ...] = ()
    """Tags added to every exported candidate, e.g. ``Sourced`` (sent even with ``tags`` off)."""
    tag_exporting_user: bool = False
    """Also tag each candidate with the name of the Greenhouse user the export acts as."""
    paper: Paper = "a4"
    """The resume's paper size: ``a4`` or ``letter``."""

    @field_validator("extra_tags", mode="before")
    @classmethod
    def _clean_tags(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value
        tags: list[str] = []
        for raw in value:
            if not isinstance(raw, str):
                raise ValueError("extra tags must be strings")
            name = raw.strip()
            if not name:
                raise ValueError("an extra tag is blank")
            if len(name) > MAX_TAG_CHARS:
                raise ValueError(f"extra tag {name[:40]!r}... is longer than {MAX_TAG_CHARS} characters")
            if normalise_name(name) not in {normalise_name(t) for t in tags}:
                tags.append(name)
        if len(tags) > MAX_EXTRA_TAGS:
            raise ValueError(f"at most {MAX_EXTRA_TAGS} extra tags")
        return tuple(tags)

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any] | None) -> FieldSettings:
        """The settings in the stored JSON (empty: every default). Keys a newer version added are ignored."""
        known = {k: v for k, v in (stored or {}).items() if k in cls.model_fields}
        return cls.model_validate(known)

    def to_stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def describe(self) -> str:
        """One line for ``ghexport connections``: ``resume (a4), tags, note, ... + tags Sourced``."""
        parts = [f"resume ({self.paper})" if self.resume else "", *(p for p in _PARTS if getattr(self, p))]
        on = ", ".join(p for p in parts if p) or "no optional part"
        extra = list(self.extra_tags) + (["<exporting user>"] if self.tag_exporting_user else [])
        return on + (f"; extra tags: {', '.join(extra)}" if extra else "")


_PARTS = ("tags", "note", "educations", "employments")


def apply_fields(
    mapped: MappedCandidate, fields: FieldSettings, *, user_name: str | None = None
) -> tuple[MappedCandidate, list[LeftOut]]:
    """``mapped`` with the parts ``fields`` switch off removed and its extra tags added, and what was left
    out because of the settings (one entry per part kind that had something to send)."""
    left: list[LeftOut] = []
    changes: dict[str, Any] = {}

    def off(part: str, count: int) -> None:
        if count:
            what = part if count > 1 or part == "note" else part.rstrip("s")
            detail = f"{what} not sent ({count}): off in the connection's field settings"
            left.append(LeftOut(part, Reason.DISABLED, detail))

    if not fields.educations:
        off("educations", len(mapped.educations))
        changes["educations"] = []
    if not fields.employments:
        off("employments", len(mapped.employments))
        changes["employments"] = []
    if not fields.note:
        off("note", 1 if mapped.note else 0)
        changes["note"] = None
    tags = list(mapped.tags) if fields.tags else []
    if not fields.tags:
        off("tags", len(mapped.tags))
    extra = list(fields.extra_tags)
    if fields.tag_exporting_user and user_name and user_name.strip():
        extra.append(user_name.strip()[:MAX_TAG_CHARS])
    seen = {normalise_name(t) for t in tags}
    for name in extra:
        if normalise_name(name) not in seen:
            seen.add(normalise_name(name))
            tags.append(name)
    changes["tags"] = tags
    return replace(mapped, **changes), left


FIELD_NAMES: tuple[str, ...] = tuple(FieldSettings.model_fields)
"""The setting names, as ``ghexport configure`` and the stored JSON spell them."""

"""An item's export progress: which parts of its Greenhouse record were sent, and what Greenhouse answered.

The worker stores progress the moment Greenhouse answers, so a second run continues where the first
stopped and never sends a part twice. It lives in the JSON column ``items.parts``.
:meth:`ItemProgress.from_stored` is the one place that JSON is read and validated, and
:meth:`ItemProgress.to_stored` the one place it is written. The stored layout is the one earlier
versions wrote, key for key. Their rows load unchanged, and they can still read rows written now:
during a rolling deploy both versions work on the same items. The stored keys:

``record``
    where the Greenhouse record came from (:class:`RecordOrigin`); absent before it is known.
``unreadable_since``
    ISO timestamp: when the item first found its record not readable at Greenhouse yet.
``application_sent``
    ``true`` once the target's application was sent to an existing person.
``educations`` / ``employments``
    ``{"<n>": id | null}``: body n (from 1) is done, with its Greenhouse id or ``null`` when Greenhouse
    rejected it (left out, with a warning).
``educations_sent`` / ``employments_sent``
    ``["<n>", ...]``: bodies sent at least once. Sent but not done means the outcome is unknown.
``tags``
    ``{name: id | null}``: tags applied (``null``: rejected, or already on the candidate).
``note``
    absent: not sent; ``null``: sent, outcome unknown (never sent again); a number: the note's id.
``resume``
    absent: not sent; ``{"sent": true, "id": null}``: sent, outcome unknown (looked up on the application
    before it is sent again); ``{"sent": true, "id": n}``: the attachment's id; ``{"sent": false,
    "id": null, "done": true}``: not to be sent (left out, with the reason in the field report).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RecordOrigin(StrEnum):
    """Where an item's Greenhouse record came from, which decides the parts the item adds to it."""

    CREATED = "created"
    """This item created the record (or adopted its own create): every part is added."""
    EMAIL_MATCH = "email_match"
    """A person already in Greenhouse with the same email: application, tags and note; their history is theirs."""
    EXPORTED_BEFORE = "exported_before"
    """Exported earlier through this connection (``--include-exported``): the new application and tags only."""


class NumberedPart(StrEnum):
    """Parts sent as a numbered list of bodies, one per entry of the profile."""

    EDUCATIONS = "educations"
    EMPLOYMENTS = "employments"


class NumberedProgress(BaseModel):
    """Progress on the bodies of one :class:`NumberedPart` (numbered from 1, in the profile's order).

    Immutable: each ``with_*`` method returns an updated copy.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    done: dict[int, int | None] = Field(default_factory=dict)
    """Body number -> its Greenhouse id, or None when Greenhouse rejected the body (left out)."""
    sent: frozenset[int] = frozenset()
    """Bodies sent at least once. One that is sent but not done may exist at Greenhouse: look it up first."""

    def with_sent(self, n: int) -> NumberedProgress:
        """Mark body ``n`` as sent (stored before the body goes out)."""
        return self.model_copy(update={"sent": self.sent | {n}})

    def with_done(self, n: int, greenhouse_id: int | None) -> NumberedProgress:
        """Mark body ``n`` as done, with its Greenhouse id (None: rejected, left out)."""
        return self.model_copy(update={"done": {**self.done, n: greenhouse_id}})


class ItemProgress(BaseModel):
    """What one item has sent to Greenhouse so far, and the ids Greenhouse gave back.

    Immutable: each ``with_*`` method returns an updated copy, which the worker stores. Build it from
    the stored JSON with :meth:`from_stored` and store it with :meth:`to_stored`. The module docstring
    describes the stored layout.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    record: RecordOrigin | None = None
    """Where the Greenhouse record came from; None until the item knows its record."""
    unreadable_since: datetime | None = None
    """When this item first found its Greenhouse record not readable yet (Greenhouse still making it)."""
    application_sent: bool = False
    """The target's application was sent to an existing person. Its outcome may be unknown, so look it up first."""
    educations: NumberedProgress = NumberedProgress()
    employments: NumberedProgress = NumberedProgress()
    tags: dict[str, int | None] = Field(default_factory=dict)
    """Tag name -> applied tag id. None when Greenhouse rejected it, or the candidate already had the tag."""
    note_sent: bool = False
    """The profile note was sent. A note is permanent, so it is never sent twice, even when the answer was lost."""
    note_id: int | None = None
    """The note's Greenhouse id. None while not sent, or when the send's outcome is unknown."""
    resume_sent: bool = False
    """The resume was uploaded at least once; without :attr:`resume_id`, its outcome is unknown."""
    resume_id: int | None = None
    """The resume attachment's Greenhouse id."""
    resume_done: bool = False
    """Nothing more to do for the resume: it landed (:attr:`resume_id`), or it is left out."""
    other: dict[str, Any] = Field(default_factory=dict)
    """Stored keys this version does not know (a newer version wrote them during a rolling deploy). They are
    written back unchanged, so this version never erases another version's progress."""

    @model_validator(mode="after")
    def _note_id_means_sent(self) -> ItemProgress:
        if self.note_id is not None and not self.note_sent:
            raise ValueError("a note with a Greenhouse id was sent: note_sent must be true")
        if self.resume_id is not None and not (self.resume_sent and self.resume_done):
            raise ValueError("a resume with a Greenhouse id was sent and is done")
        return self

    # --- the stored JSON ---------------------------------------------------------------------------

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any] | None) -> ItemProgress:
        """The progress in the stored JSON ``stored`` (None or empty: nothing sent yet).

        Reads every layout written so far. Raises :class:`pydantic.ValidationError` when a value has the
        wrong type.
        """
        raw = dict(stored or {})
        note_sent = "note" in raw  # "note": null is not "absent": it was sent, with an unknown outcome
        fields: dict[str, Any] = {
            "record": raw.pop("record", None),
            "unreadable_since": raw.pop("unreadable_since", None),
            "application_sent": bool(raw.pop("application_sent", False)),
            "tags": raw.pop("tags", {}),
            "note_sent": note_sent,
            "note_id": raw.pop("note", None),
        }
        resume = raw.pop("resume", None)
        if resume is not None:
            if not isinstance(resume, dict):
                raise ValueError(f"stored resume progress must be an object, not {type(resume).__name__}")
            fields["resume_sent"] = resume.get("sent", False)
            fields["resume_id"] = resume.get("id")
            fields["resume_done"] = resume.get("done", resume.get("id") is not None)
        for part in NumberedPart:
            # JSON object keys are strings: "1" -> 1 (pydantic's lax mode converts numeric strings)
            fields[part.value] = {"done": raw.pop(part.value, {}), "sent": raw.pop(f"{part.value}_sent", [])}
        fields["other"] = raw
        return cls.model_validate(fields)

    def to_stored(self) -> dict[str, Any]:
        """The JSON to store: keys as the module docstring lists them, absent when empty or not sent."""
        out: dict[str, Any] = dict(self.other)
        if self.record is not None:
            out["record"] = self.record.value
        if self.unreadable_since is not None:
            out["unreadable_since"] = self.unreadable_since.isoformat()
        if self.application_sent:
            out["application_sent"] = True
        for part in NumberedPart:
            progress = self.numbered(part)
            if progress.done:
                out[part.value] = {str(n): gid for n, gid in progress.done.items()}
            if progress.sent:
                # sorted as strings, as earlier versions wrote them
                out[f"{part.value}_sent"] = sorted(str(n) for n in progress.sent)
        if self.tags:
            out["tags"] = dict(self.tags)
        if self.note_sent:
            out["note"] = self.note_id
        if self.resume_sent or self.resume_done:
            out["resume"] = {"sent": self.resume_sent, "id": self.resume_id}
            if self.resume_done and self.resume_id is None:
                out["resume"]["done"] = True
        return out

    # --- reading ----------------------------------------------------------------------------------

    @property
    def origin(self) -> RecordOrigin:
        """Where the record came from. Without a stored origin, the item created it.

        Before the origin was stored, only an item's own create gave it a record.
        """
        return self.record or RecordOrigin.CREATED

    def numbered(self, part: NumberedPart) -> NumberedProgress:
        """The progress on the bodies of ``part``."""
        return self.educations if part is NumberedPart.EDUCATIONS else self.employments

    # --- updated copies ---------------------------------------------------------------------------

    def with_record(self, origin: RecordOrigin) -> ItemProgress:
        """Record where the item's Greenhouse record came from."""
        return self.model_copy(update={"record": origin})

    def with_unreadable_since(self, when: datetime) -> ItemProgress:
        """Start the wait for a readable record at ``when``, unless it already started."""
        if self.unreadable_since is not None:
            return self
        return self.model_copy(update={"unreadable_since": when})

    def with_application_sent(self) -> ItemProgress:
        """Mark the target's application as sent (stored before it goes out)."""
        return self.model_copy(update={"application_sent": True})

    def with_numbered(self, part: NumberedPart, progress: NumberedProgress) -> ItemProgress:
        """Replace the progress on the bodies of ``part``."""
        return self.model_copy(update={part.value: progress})

    def with_tag(self, name: str, applied_id: int | None) -> ItemProgress:
        """Mark tag ``name`` as done (``applied_id`` None: rejected, or the candidate already had it)."""
        return self.model_copy(update={"tags": {**self.tags, name: applied_id}})

    def with_note_sent(self) -> ItemProgress:
        """Mark the note as sent with an unknown outcome (stored before it goes out)."""
        return self.model_copy(update={"note_sent": True, "note_id": None})

    def with_note_id(self, note_id: int) -> ItemProgress:
        """Record the Greenhouse id of the note that was sent."""
        return self.model_copy(update={"note_sent": True, "note_id": note_id})

    def with_resume_sent(self) -> ItemProgress:
        """Mark the resume as sent with an unknown outcome (stored before it goes out)."""
        return self.model_copy(update={"resume_sent": True, "resume_id": None, "resume_done": False})

    def with_resume_id(self, attachment_id: int | None) -> ItemProgress:
        """Record that the resume landed, with its attachment's Greenhouse id (when Greenhouse gave one)."""
        return self.model_copy(update={"resume_sent": True, "resume_id": attachment_id, "resume_done": True})

    def with_resume_left_out(self) -> ItemProgress:
        """Nothing to send for the resume (left out; the field report says why)."""
        return self.model_copy(update={"resume_id": None, "resume_done": True})

    def without_note(self) -> ItemProgress:
        """Forget a note send that Greenhouse refused before doing anything, so the next run sends it."""
        return self.model_copy(update={"note_sent": False, "note_id": None})

"""The parts of a Greenhouse record added after the candidate exists: application, educations,
employments, tags, the profile note and the resume. Each is stored on the item the moment Greenhouse
answers, so a second run adds only what is missing. A part Greenhouse rejects (422) goes into the item's
field report, not a failure of the export: the person is in Greenhouse, with that part left out and the
reason recorded.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel

from shared.errors import HarvestError, InvalidRequestError, NotFoundError
from shared.harvest.client import HarvestClient
from shared.harvest.models import (
    CreateApplication,
    CreateAttachment,
    CreateNote,
    JobApplication,
    ProspectApplication,
)
from shared.profiles.fields import Paper
from shared.profiles.fontfiles import FontsUnavailable
from shared.profiles.fonts import font_library
from shared.profiles.mapping import MappedCandidate, normalise_name
from shared.profiles.model import Profile
from shared.profiles.report import LeftOut, Reason
from shared.profiles.resume import ResumeTooLarge, render_resume, resume_filename
from shared.store.models import TargetKind, aware
from shared.store.progress import NumberedPart, RecordOrigin
from workers.item_run import ItemRun
from workers.outcome import MustWaitError

NOTE_VISIBILITY: Literal["public"] = "public"
"""Sourcing notes (summary, skills) are for the hiring team, not private to the exporting user."""


def find_application(
    reader: HarvestClient, candidate_id: int, kind: TargetKind, job_id: int | None, pool_id: int | None
) -> int | None:
    """The id of the candidate's application matching the export target, if Greenhouse has one."""
    for app in reader.list_applications(candidate_ids=[candidate_id]):
        if kind is TargetKind.JOB and not app.prospect and app.job_id == job_id:
            return app.id
        if kind is TargetKind.PROSPECT and app.prospect and (pool_id is None or app.prospect_pool_id == pool_id):
            return app.id
    return None


class PartsWriter:
    """Adds the parts of one item's record, storing each step in the run's :class:`ItemProgress`.

    ``reader`` reads without acting as a user, ``writer`` writes as ``user_id``; ``candidate_id`` is the
    record the parts go onto.
    """

    def __init__(self, run: ItemRun, reader: HarvestClient, writer: HarvestClient, candidate_id: int, user_id: int):
        self.run = run
        self.reader = reader
        self.writer = writer
        self.cid = candidate_id
        self.user_id = user_id
        self._readable = False

    def readable(self) -> None:
        """Before a read that decides whether a part already exists: wait until Greenhouse shows the
        candidate at all. Children of a record Greenhouse is still creating read as empty, and taking that
        for "not there" would add the part a second time."""
        if self._readable:
            return
        if not self.reader.get_candidates([self.cid]):
            run, now = self.run, self.run.now()
            progress = run.progress.with_unreadable_since(now)
            since = progress.unreadable_since
            assert since is not None
            if (now - aware(since)).total_seconds() > run.cfg.reconcile_window_s:
                raise NotFoundError(
                    f"Greenhouse candidate {self.cid} is still not readable after the sync window (deleted or merged?)"
                )
            run.save_progress(progress)
            raise MustWaitError(run.cfg.reconcile_interval_s, f"waiting for Greenhouse to show candidate {self.cid}")
        self._readable = True

    def application(self, app: JobApplication | ProspectApplication, kind: TargetKind) -> None:
        """Add the target's application to an existing person (linked, or exported before)."""
        run = self.run
        job_id = app.job_id if isinstance(app, JobApplication) else None
        pool_id = app.prospect_pool_id if isinstance(app, ProspectApplication) else None
        if run.progress.application_sent or run.item.linked_existing:
            # an earlier run may have added it (outcome unknown), or the person already had it
            self.readable()
            found = find_application(self.reader, self.cid, kind, job_id, pool_id)
            if found is not None:
                run.save(greenhouse_application_id=found)
                return
        run.save_progress(run.progress.with_application_sent())
        try:
            created = self.writer.create_application(CreateApplication.for_candidate(self.cid, app))
        except InvalidRequestError:
            self.readable()
            found = find_application(self.reader, self.cid, kind, job_id, pool_id)
            if found is None:
                raise
            run.warn(f"the Greenhouse candidate {self.cid} already had this application")
            run.save(greenhouse_application_id=found)
            return
        run.save(greenhouse_application_id=created.id)

    def educations(self, mapped: MappedCandidate) -> None:
        """Add the profile's educations, each once."""
        self._create_once(
            NumberedPart.EDUCATIONS,
            [plan.request(self.cid) for plan in mapped.educations],
            self.writer.create_education,
            lambda: self.reader.list_educations([self.cid]),
            "education",
        )

    def employments(self, mapped: MappedCandidate) -> None:
        """Add the profile's employments, each once."""
        self._create_once(
            NumberedPart.EMPLOYMENTS,
            [plan.request(self.cid) for plan in mapped.employments],
            self.writer.create_employment,
            lambda: self.reader.list_employments([self.cid]),
            "employment",
        )

    def _create_once(
        self,
        part: NumberedPart,
        bodies: Sequence[BaseModel],
        create: Callable[[Any], Any],
        existing: Callable[[], Sequence[Any]],
        label: str,
    ) -> None:
        """Create each body once: it is marked sent before it goes out, and a sent body with no id
        (outcome unknown) is looked up on the candidate before it is sent again."""
        run = self.run

        def store(n: int, greenhouse_id: int | None) -> None:
            numbered = run.progress.numbered(part).with_done(n, greenhouse_id)
            run.save_progress(run.progress.with_numbered(part, numbered))

        found: list[Any] | None = None
        for n, body in enumerate(bodies, start=1):
            numbered = run.progress.numbered(part)
            if n in numbered.done:
                continue
            if n in numbered.sent:
                if found is None:
                    self.readable()
                    taken = {v for v in numbered.done.values() if v is not None}
                    found = [r for r in existing() if r.id not in taken]
                match = next((r for r in found if _same(body, r)), None)
                if match is not None:
                    found.remove(match)
                    store(n, match.id)
                    continue
            run.save_progress(run.progress.with_numbered(part, numbered.with_sent(n)))
            try:
                greenhouse_id: int | None = create(body).id
            except InvalidRequestError as exc:
                run.leave_out(LeftOut(label, Reason.REJECTED, f"left out: {exc}", n))
                greenhouse_id = None
            store(n, greenhouse_id)

    def tags(
        self, mapped: MappedCandidate, tag_ids: Callable[[], dict[str, int]], invalidate: Callable[[], None]
    ) -> None:
        """Apply each tag, creating it once if Greenhouse does not have it (names match without case).

        ``tag_ids`` (the shared cache) is read once per run, and again only after ``invalidate``."""
        run = self.run
        known: dict[str, int] | None = None

        def lookup(name: str) -> int | None:
            nonlocal known
            if known is None:
                known = tag_ids()
            return known.get(normalise_name(name))

        def refresh() -> None:
            nonlocal known
            invalidate()
            known = None

        for name in mapped.tags:
            if name in run.progress.tags:
                continue
            tag_id = lookup(name)
            if tag_id is None:
                try:
                    tag_id = self.writer.create_tag(name).id
                except InvalidRequestError:  # created meanwhile by another worker
                    refresh()
                    tag_id = lookup(name)
                    if tag_id is None:
                        raise
                refresh()
            applied_id: int | None
            try:
                applied_id = self.writer.apply_tag(self.cid, tag_id).id
            except InvalidRequestError as exc:
                self.readable()
                applied = {t.candidate_tag_id for t in self.reader.list_applied_tags([self.cid])}
                if tag_id not in applied:
                    run.leave_out(LeftOut("tag", Reason.TAG_REFUSED, f"tag {name!r} left out: {exc}", field=name))
                applied_id = None
            run.save_progress(run.progress.with_tag(name, applied_id))

    def note(self, mapped: MappedCandidate) -> None:
        """Add the profile note once: a note is permanent, so one whose answer was lost is never sent again."""
        run = self.run
        if not mapped.note or run.progress.note_sent:
            return
        run.save_progress(run.progress.with_note_sent())
        try:
            note = self.writer.create_note(
                CreateNote(
                    candidate_id=self.cid,
                    application_id=run.item.greenhouse_application_id,
                    user_id=self.user_id,
                    body=mapped.note,
                    visibility=NOTE_VISIBILITY,
                )
            )
        except InvalidRequestError as exc:  # Greenhouse rejected it: nothing was written
            run.leave_out(LeftOut("note", Reason.REJECTED, f"profile note left out: {exc}"))
            return
        except HarvestError as exc:
            if exc.outcome_unknown:
                detail = "the profile note may not have reached Greenhouse (no answer); not sent twice"
                run.leave_out(LeftOut("note", Reason.UNCONFIRMED, detail))
            else:  # refused before any work (throttled, 429, 4xx): nothing was written, send it next time
                run.save_progress(run.progress.without_note())
            raise
        run.save_progress(run.progress.with_note_id(note.id))

    def resume_lookup_needed(self) -> bool:
        """Whether the application may already hold our resume: an earlier upload's answer was lost, or the
        application is not one this item created with the record (a person found by email, or exported
        before, may have had it from an earlier export)."""
        progress = self.run.progress
        return progress.resume_sent or progress.origin is not RecordOrigin.CREATED

    def resume(self, profile: Profile, *, paper: Paper, max_bytes: int, font_dirs: list[str]) -> None:
        """Upload a resume made from ``profile`` as the application's ``resume`` attachment, once.

        It is marked sent before it goes out; a sent resume without an id (the worker died, or the answer
        was lost) is looked up on the application by its file name before it is sent again. A resume that
        cannot be made (no font, too large) or that Greenhouse rejects is left out, with the reason.
        """
        run = self.run
        app_id = run.item.greenhouse_application_id
        if run.progress.resume_done or app_id is None:
            return
        filename = resume_filename(profile)
        if self.resume_lookup_needed():
            self.readable()
            found = self.reader.list_attachments(application_ids=[app_id], type="resume")
            match = next((a for a in found if a.filename == filename), None)
            if match is not None:
                run.save_progress(run.progress.with_resume_id(match.id))
                return
        try:
            resume = render_resume(profile, paper=paper, max_bytes=max_bytes, fonts=font_library(font_dirs))
        except (FontsUnavailable, ResumeTooLarge) as exc:
            reason = Reason.NO_FONT if isinstance(exc, FontsUnavailable) else Reason.TOO_LARGE
            run.leave_out(LeftOut("resume", reason, f"resume left out: {exc}"))
            run.save_progress(run.progress.with_resume_left_out())
            return
        for entry in resume.left_out:
            run.leave_out(entry)
        run.save_progress(run.progress.with_resume_sent())
        body = CreateAttachment(
            application_id=app_id,
            filename=resume.filename,
            type="resume",
            content=base64.b64encode(resume.content).decode("ascii"),
        )
        try:
            attachment = self.writer.create_attachment(body)
        except InvalidRequestError as exc:  # Greenhouse rejected it: nothing was written
            run.leave_out(LeftOut("resume", Reason.REJECTED, f"resume left out: {exc}"))
            run.save_progress(run.progress.with_resume_left_out())
            return
        run.save_progress(run.progress.with_resume_id(attachment.id))


def _same(body: BaseModel, record: Any) -> bool:
    """Whether a Greenhouse record carries every field of the create ``body`` (dates by their day)."""
    for name, value in body.model_dump(exclude={"candidate_id"}).items():
        got = getattr(record, name, None)
        if isinstance(value, date):
            if not isinstance(got, str) or not got.startswith(value.isoformat()):
                return False
        elif got != value:
            return False
    return True

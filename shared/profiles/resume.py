"""The candidate's resume as a PDF, made from a :class:`~shared.profiles.model.Profile` (a worker uploads it as
the application's resume attachment).

Content, top to bottom: the name, a headline ("title at company"), location and contact (emails, phones),
links (profile page, urls, social media), then Experience (recent first), Education, Skills and Summary, on
A4 or Letter, numbered "1 / 2" when longer than a page.

Layout is ours: a greedy line breaker over the fonts' advance widths, then one PDF text operator per line
when a single face draws it unshaped (most lines), else one fpdf2 ``cell`` (fallback fonts, bidi, HarfBuzz).
fpdf2's ``multi_cell`` measures every line prefix again at each character: eight times slower.

Scripts: a paragraph whose strong characters are mainly Arabic or Hebrew is right-aligned, and the frame
(headings, contact, dates on the left) follows the name's direction. Shaping is on only for paragraphs that
need it (right-to-left text, complex scripts, combining marks): Latin stays on the fast path. The Arabic,
Hebrew, CJK and emoji fonts are embedded only when the text has characters the base font lacks
(:mod:`shared.profiles.fonts`). A character no installed font draws becomes a placeholder and is reported
(``Reason.NO_FONT``), never an error.

Size: a PDF above ``max_bytes`` is made again with less (the summary shortened, then left out; then the
oldest employments and educations, skills and links), and the cut is reported (``Reason.TOO_LARGE``). When
even name, headline and contact do not fit, :class:`ResumeTooLarge` is raised. The name is never cut.

Pure: no network, no store; fonts are read from the configured folders once per process.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal

from fpdf import FPDF

from shared.errors import UserError
from shared.profiles.fonts import (
    FALLBACK_ROLES,
    DocumentFonts,
    Face,
    FontLibrary,
    Role,
    font_library,
    ignorable,
    missing_chars,
    plan_fonts,
)
from shared.profiles.model import Profile
from shared.profiles.report import LeftOut, Reason
from shared.settings import ResumeSettings

Paper = Literal["a4", "letter"]
DEFAULT_MAX_BYTES: int = ResumeSettings.model_fields["max_bytes"].default
MAX_FILENAME_STEM = 60
"""Characters of the name part of the file name (the whole name stays well under 255 bytes)."""
SUMMARY_SHORT = 1000
"""A summary is first cut to this many characters when the PDF is too large."""
URL_SHOWN = 70
"""A longer link is shown shortened (its target stays whole)."""

Color = tuple[int, int, int]
INK: Color = (33, 33, 33)
SUBTLE: Color = (70, 70, 70)
MUTED: Color = (105, 105, 105)
ACCENT: Color = (28, 74, 120)
RULE: Color = (200, 205, 212)
MARGIN = 50.0
"""Page margins in points (about 18 mm), the same on A4 and Letter."""
SEPARATOR = "   \u00b7   "
EN_DASH = "\u2013"


class ResumeTooLarge(UserError):
    """Even the shortest resume (name, headline, contact) is larger than ``max_bytes``: the worker leaves the
    resume out and reports :meth:`left_out`."""

    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        self.max_bytes = max_bytes
        super().__init__(f"even the shortest resume is {size} bytes, above the {max_bytes} allowed")

    def left_out(self) -> LeftOut:
        """The field-report entry of the resume left out."""
        return LeftOut("resume", Reason.TOO_LARGE, detail=f"{self} (GHX_RESUME__MAX_BYTES)")


@dataclass(frozen=True)
class Resume:
    """A rendered resume: the PDF, the file name to upload it under, its pages, and what it left out."""

    content: bytes
    filename: str
    pages: int
    left_out: tuple[LeftOut, ...] = ()


# --- text: cleaning and direction -------------------------------------------------------------------------


def direction(text: str) -> tuple[bool, bool]:
    """``(shaped, rtl)`` of a paragraph: whether it needs shaping (right-to-left text, Indic and Southeast
    Asian scripts, combining marks), and whether its strong characters are mainly right-to-left."""
    if text.isascii():
        return False, False
    right = left = 0
    shaped = False
    for ch in text:
        bidi = unicodedata.bidirectional(ch)
        if bidi in ("R", "AL"):
            right += 1
        elif bidi == "L":
            left += 1
            cp = ord(ch)
            shaped = shaped or 0x0700 <= cp <= 0x0DFF or 0x0E00 <= cp <= 0x109F or 0x1780 <= cp <= 0x18AF
        elif bidi == "NSM":
            shaped = True
    return shaped or right > 0, right > left


def _clean(text: str) -> str:
    """NFC (accents as single characters the fast path draws), whitespace to spaces (newlines kept), control
    and format characters out; ZWJ and ZWNJ stay in text that is shaped (Persian needs its ZWNJ)."""
    text = unicodedata.normalize("NFC", text)
    if text.isascii() and text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in "\n\u200c\u200d":
            out.append(ch)
        elif ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn") and not ignorable(ch):
            out.append(ch)
    cleaned = "".join(out)
    if ("\u200c" in cleaned or "\u200d" in cleaned) and not direction(cleaned)[0]:
        cleaned = cleaned.replace("\u200c", "").replace("\u200d", "")
    return cleaned


_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff"
_TOKEN = re.compile(rf"\s+|[{_CJK}]|[^\s{_CJK}]+")
"""Break opportunities: at spaces, and around every CJK character (those scripts put no spaces)."""


def _cjk(ch: str) -> bool:
    return bool(ch) and re.fullmatch(f"[{_CJK}]", ch) is not None


# --- content: what the resume says, before layout ---------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    title: str
    subtitle: str
    dates: str


@dataclass(frozen=True)
class _Content:
    name: str
    headline: str
    contact: tuple[tuple[str, str], ...]
    """(text, link target) pairs: location, emails, phones."""
    links: tuple[tuple[str, str], ...]
    experience: tuple[_Entry, ...]
    education: tuple[_Entry, ...]
    skills: tuple[str, ...]
    summary: str

    def paragraphs(self) -> list[str]:
        return [p.strip() for p in self.summary.split("\n") if p.strip()]

    def units(self) -> Iterator[tuple[str, bool]]:
        """Every string the layout draws, with whether it is bold: what fonts are planned for."""
        yield self.name, True
        yield self.headline, False
        yield from ((text, False) for text, _ in (*self.contact, *self.links))
        yield SEPARATOR, False
        yield "0123456789 / EXPERIENCE EDUCATION SKILLS SUMMARY", False  # page numbers, headings
        for entry in (*self.experience, *self.education):
            yield entry.title, True
            yield entry.subtitle, False
            yield entry.dates, False
        yield SEPARATOR.join(self.skills), False
        yield from ((p, False) for p in self.paragraphs())

    def replace_chars(self, table: dict[int, str]) -> _Content:
        """This content with the characters of ``table`` replaced (dates and links targets untouched)."""

        def fix(text: str) -> str:
            return text.translate(table)

        return _Content(
            name=fix(self.name),
            headline=fix(self.headline),
            contact=tuple((fix(t), target) for t, target in self.contact),
            links=tuple((fix(t), target) for t, target in self.links),
            experience=tuple(_Entry(fix(e.title), fix(e.subtitle), e.dates) for e in self.experience),
            education=tuple(_Entry(fix(e.title), fix(e.subtitle), e.dates) for e in self.education),
            skills=tuple(fix(s) for s in self.skills),
            summary=fix(self.summary),
        )


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _month(day: date) -> str:
    return f"{_MONTHS[day.month - 1]} {day.year}"


def _dates(start: date | None, end: date | None, *, ongoing: bool) -> str:
    """``Mar 2019 - Jun 2021``, ``Mar 2019 - present`` (a job without an end), ``from Sep 2008`` (a school);
    with an en dash."""
    if start and end:
        return f"{_month(start)} {EN_DASH} {_month(end)}"
    if start:
        return f"{_month(start)} {EN_DASH} present" if ongoing else f"from {_month(start)}"
    return f"until {_month(end)}" if end else ""


def _join(parts: Iterable[str | None], latin_word: str) -> str:
    # "Staff Engineer at Northwind"; a middle dot when a side is in another script ("at" would read oddly).
    kept = [p for p in parts if p]
    if len(kept) == 2 and all(ord(ch) < 0x0250 or not ch.isalpha() for p in kept for ch in p):
        return f"{kept[0]}{latin_word}{kept[1]}"
    return " · ".join(kept)


def _recent_first(spans: Sequence[tuple[date | None, date | None]]) -> list[int]:
    """Indexes of ``(start, end)`` spans: current ones first, then by latest date; undated last (stable)."""

    def key(i: int) -> tuple[int, int]:
        start, end = spans[i]
        if end is None and start is not None:
            return 0, -start.toordinal()
        latest = end or start
        return (1, -latest.toordinal()) if latest else (2, 0)

    return sorted(range(len(spans)), key=key)


def _link(url: str) -> tuple[str, str]:
    shown = re.sub(r"^[a-z][a-z0-9+.-]*://(www\.)?", "", url, flags=re.IGNORECASE).rstrip("/")
    shown = shown if len(shown) <= URL_SHOWN else shown[: URL_SHOWN - 1] + "…"
    target = url if re.match(r"^[a-z][a-z0-9+.-]*:", url, flags=re.IGNORECASE) else f"https://{url}"
    return _clean(shown), target


def _name(profile: Profile) -> str:
    first, last = _clean(profile.first_name), _clean(profile.last_name)
    if _cjk(first[-1:]) and _cjk(last[:1]):
        return f"{last}{first}"  # Chinese, Japanese and Korean names: family name first, no space (张伟, 김민준)
    return f"{first} {last}"


def _content(profile: Profile) -> _Content:
    jobs = [e for e in profile.employments if e.title or e.company_name]
    experience = tuple(
        _Entry(
            _clean(job.title or job.company_name or ""),
            _clean(job.company_name or "") if job.title else "",
            _dates(job.start_date, job.end_date, ongoing=True),
        )
        for job in (jobs[i] for i in _recent_first([(e.start_date, e.end_date) for e in jobs]))
    )
    schools = [e for e in profile.educations if e.school or e.degree or e.discipline]
    education = []
    for school in (schools[i] for i in _recent_first([(e.start_date, e.end_date) for e in schools])):
        detail = _clean(_join([school.degree, school.discipline], ", "))
        title = _clean(school.school or "") or detail
        education.append(_Entry(title, detail if school.school else "", _dates(school.start_date, school.end_date,
                                                                              ongoing=False)))  # fmt: skip
    urls = [*([profile.profile_url] if profile.profile_url else []), *profile.urls, *profile.social_media]
    links: dict[str, str] = {}
    for url in urls:
        text, target = _link(url)
        links.setdefault(text, target)  # a link shown twice (profile page also in urls) is shown once
    contact = [(_clean(profile.location), "")] if profile.location else []
    contact += [(_clean(email), f"mailto:{email}") for email in profile.emails]
    contact += [(_clean(phone), "tel:" + re.sub(r"[^\d+]", "", phone)) for phone in profile.phones]
    return _Content(
        name=_name(profile),
        headline=_clean(_join([profile.title, profile.company], " at ")),
        contact=tuple(contact),
        links=tuple(links.items()),
        experience=experience,
        education=tuple(education),
        skills=tuple(_clean(s) for s in profile.skills),
        summary=_clean(profile.summary or "").strip(),
    )


def _cuts(full: _Content) -> Iterator[tuple[_Content, list[str]]]:
    """``full``, then smaller and smaller versions of it, each with what it leaves out; the last is only the
    name, headline and contact."""
    yield full, []
    content, said = full, []
    if len(full.summary) > SUMMARY_SHORT:
        content = replace(content, summary=full.summary[: SUMMARY_SHORT - 1].rstrip() + "…")
        yield content, [f"summary shortened to {SUMMARY_SHORT} characters"]
    if full.summary:
        content, said = replace(content, summary=""), ["summary left out"]
        yield content, said
    for jobs, schools in ((10, 5), (3, 2), (1, 1), (0, 0)):
        cut = replace(content, experience=full.experience[:jobs], education=full.education[:schools])
        if jobs <= 1:
            cut = replace(cut, skills=full.skills[: jobs * 10], links=full.links[: jobs * 3])
        if jobs == 0:
            cut = replace(cut, contact=full.contact[:5])
        if cut != content:
            content = cut
            yield cut, [*said, *_dropped(full, cut)]


def _dropped(full: _Content, cut: _Content) -> list[str]:
    out = []
    for what, before, after in (
        ("oldest employments", full.experience, cut.experience),
        ("oldest educations", full.education, cut.education),
        ("skills", full.skills, cut.skills),
        ("links", full.links, cut.links),
        ("contact lines", full.contact, cut.contact),
    ):
        if len(after) < len(before):
            out.append(f"{len(before) - len(after)} {what} left out")
    return out


def needs_fonts(profile: Profile, fonts: FontLibrary | None = None) -> frozenset[Role]:
    """The fonts beyond the base one ``profile``'s resume embeds (``arabic``, ``hebrew``, ``cjk``, ``emoji``)."""
    library = fonts or font_library(ResumeSettings().font_dirs)
    plan = plan_fonts(library, list(_content(profile).units()))
    return frozenset(face.role for face in plan.fallback if face.role in FALLBACK_ROLES)


# --- layout ---------------------------------------------------------------------------------------------------

_NB = "\x01nb\x01"
"""fpdf2's alias for the page count: candidate text never holds control characters, so a "{nb}" stays as typed."""


class _Document(FPDF):
    """An FPDF whose pages number themselves ("2 / 3") once there is more than one."""

    continued = False
    """Set at the first page break: a one-page resume carries no number."""
    rtl = False

    def footer(self) -> None:
        if not self.continued:
            return
        self.set_text_shaping(False)
        self.set_fallback_fonts([])
        self.set_font("sans", "", 8)
        self.set_text_color(*MUTED)
        self.set_xy(MARGIN, self.h - MARGIN + 18)
        self.cell(self.w - 2 * MARGIN, 10, f"{self.page_no()} / {_NB}", align="L" if self.rtl else "R")


class _Writer:
    """Draws wrapped paragraphs, entries, headings and rows of links, breaking pages itself (to keep an
    entry's title with its first lines)."""

    def __init__(self, pdf: _Document, fonts: DocumentFonts) -> None:
        self.pdf = pdf
        self.fonts = fonts
        self.rtl = pdf.rtl
        self.x = MARGIN
        self.width = pdf.w - 2 * MARGIN
        self.bottom = pdf.h - MARGIN
        self.y = MARGIN
        self._mode_set: tuple[bool, bool, bool] | None = None

    def ensure(self, height: float) -> None:
        if self.y + height > self.bottom:
            self.pdf.continued = True
            self.pdf.add_page()  # its footer resets shaping and fallbacks
            self._mode_set = None
            self.y = MARGIN

    def wrap(self, text: str, size: float, primary: Face, width: float, shaped: bool) -> list[str]:
        fonts = self.fonts
        if shaped:
            return _wrap(text, lambda s: fonts.shaped_width(s, size, primary), width - 0.5)
        return _wrap(text, lambda s: fonts.width(s, size, primary), width - 0.5)

    def paragraph(self, text: str, size: float, *, bold: bool = False, color: Color = INK, lead: float = 1.4,
                  keep: int = 1) -> None:  # fmt: skip
        shaped, rtl = direction(text)
        primary = self.fonts.primary(text, bold)
        lines = self.wrap(text, size, primary, self.width, shaped)
        height = size * lead
        self.ensure(height * min(keep, len(lines)))
        for line in lines:
            self.ensure(height)
            self.line(line, self.x, self.width, height, size, primary, color, "R" if rtl else "L", shaped)
            self.y += height

    def line(self, text: str, x: float, width: float, height: float, size: float, primary: Face, color: Color,
             align: str, shaped: bool, link: str = "", y: float | None = None) -> None:  # fmt: skip
        """One line in a box at the current height: a single PDF text operator when ``primary`` draws it all
        unshaped, else fpdf2's ``cell`` (fallback fonts, bidi, HarfBuzz)."""
        pdf = self.pdf
        y = self.y if y is None else y
        pdf.set_font(primary.family, primary.style, size)
        pdf.set_text_color(*color)
        if not shaped and self.fonts.covered(text, primary):
            self._mode(shaped=False, rtl=False, fallback=False)
            offset = width - self.fonts.width(text, size, primary) if align == "R" else 0.0
            pdf.text(x + offset, y + height / 2 + 0.3 * size, text)  # where cell() puts the baseline
            if link:
                pdf.link(x, y, width, height, link)
            return
        self._mode(shaped=shaped, rtl=align == "R", fallback=True)
        pdf.set_xy(x, y)
        pdf.cell(width, height, text, align=align, link=link)

    def _mode(self, *, shaped: bool, rtl: bool, fallback: bool) -> None:
        mode = (shaped, shaped and rtl, fallback)
        if mode != self._mode_set:
            self._mode_set = mode
            if shaped:
                self.pdf.set_text_shaping(True, direction="rtl" if rtl else "ltr")
            else:
                self.pdf.set_text_shaping(False)
            self.pdf.set_fallback_fonts(self.fonts.families if fallback else [], exact_match=False)

    def rule(self, color: Color = RULE, weight: float = 0.6) -> None:
        self.pdf.set_draw_color(*color)
        self.pdf.set_line_width(weight)
        self.pdf.line(self.x, self.y, self.x + self.width, self.y)

    def heading(self, title: str) -> None:
        self.y += 12
        self.ensure(16 + 6 + 36)  # never alone at the foot of a page
        self._mode(shaped=False, rtl=False, fallback=False)
        self.pdf.set_font("sans", "", 9.5)
        self.pdf.set_char_spacing(1.6)
        self.pdf.set_text_color(*ACCENT)
        self.pdf.set_xy(self.x, self.y)
        self.pdf.cell(self.width, 14, title.upper(), align="R" if self.rtl else "L")
        self.pdf.set_char_spacing(0)
        self.y += 16
        self.rule()
        self.y += 6

    def entry(self, entry: _Entry) -> None:
        """The title in bold, the dates on the frame's far side of its first line, the subtitle below."""
        size, dates_size, height = 10.5, 9.0, 14.5
        regular = self.fonts.regular
        dates_w = self.fonts.width(entry.dates, dates_size, regular) + 1 if entry.dates else 0.0
        room = self.width - (dates_w + 14 if dates_w else 0)
        shaped, rtl = direction(entry.title)
        primary = self.fonts.primary(entry.title, True)
        lines = self.wrap(entry.title, size, primary, room, shaped)
        self.ensure(height * (min(len(lines), 2) + (1 if entry.subtitle else 0)))
        if entry.dates:
            self.line(
                entry.dates,
                self.x if self.rtl else self.x + self.width - dates_w,
                dates_w,
                height,
                dates_size,
                regular,
                MUTED,
                "L" if self.rtl else "R",
                False,
                y=self.y + 0.3 * (size - dates_size),
            )  # fmt: skip  (on the title's baseline)
        x = self.x + (self.width - room if self.rtl else 0)
        for text in lines:
            self.ensure(height)
            self.line(text, x, room, height, size, primary, INK, "R" if rtl else "L", shaped)
            self.y += height
        if entry.subtitle:
            self.paragraph(entry.subtitle, 10, color=SUBTLE)
        self.y += 7

    def inline(self, items: Sequence[tuple[str, str]], size: float, color: Color) -> None:
        """Short items separated by dots, wrapped as whole items, from the right in a right-to-left frame;
        each item its own link."""
        fonts = self.fonts
        sep_w = fonts.width(SEPARATOR, size, fonts.regular)
        rows: list[list[tuple[str, str, Face, bool, float]]] = [[]]
        used = 0.0
        for text, link in items:
            primary = fonts.primary(text, False)
            shaped = direction(text)[0]

            def measure(s: str, primary: Face = primary, shaped: bool = shaped) -> float:
                return fonts.shaped_width(s, size, primary) if shaped else fonts.width(s, size, primary)

            shown = _fit(text, measure, self.width)
            w = measure(shown) + 0.5
            if rows[-1] and used + sep_w + w > self.width:
                rows.append([])
                used = 0.0
            used += (sep_w if rows[-1] else 0) + w
            rows[-1].append((shown, link, primary, shaped, w))
        height = size * 1.55
        for row in rows:
            self.ensure(height)
            total = sum(item[-1] for item in row) + sep_w * (len(row) - 1)
            x = self.x + self.width - total if self.rtl else self.x
            for n, (text, link, primary, shaped, w) in enumerate(reversed(row) if self.rtl else row):
                if n:
                    self.line(SEPARATOR, x, sep_w, height, size, fonts.regular, RULE, "L", False)
                    x += sep_w
                align = "R" if direction(text)[1] else "L"  # the box fits the text: this sets its direction
                self.line(text, x, w, height, size, primary, color, align, shaped, link)
                x += w
            self.y += height


def _fit(text: str, measure: Callable[[str], float], width: float) -> str:
    """``text``, or as much of it as fits ``width`` followed by an ellipsis."""
    if measure(text) <= width:
        return text
    while len(text) > 1 and measure(text + "…") > width:
        text = text[: len(text) * 9 // 10] if len(text) > 40 else text[:-1]
    return text + "…"


def _wrap(text: str, measure: Callable[[str], float], width: float) -> list[str]:
    """Greedy line breaking at :data:`_TOKEN` boundaries; a token wider than a line is cut by characters."""
    lines: list[str] = []
    line, used, space = "", 0.0, False
    space_w = measure(" ")
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token.isspace():
            space = bool(line)
            continue
        w = measure(token)
        gap = space_w if space else 0.0
        if line and used + gap + w <= width:
            line, used = line + (" " if space else "") + token, used + gap + w
        elif w <= width:
            if line:
                lines.append(line)
            line, used = token, w
        else:
            if line:
                lines.append(line)
            line, used = "", 0.0
            for ch in token:
                cw = measure(ch)
                if line and used + cw > width:
                    lines.append(line)
                    line, used = "", 0.0
                line, used = line + ch, used + cw
        space = False
    if line or not lines:
        lines.append(line)
    return lines


def _layout(content: _Content, fonts: DocumentFonts, library: FontLibrary, paper: Paper, created: datetime | None
            ) -> tuple[bytes, int]:  # fmt: skip
    pdf = _Document(unit="pt", format="A4" if paper == "a4" else "Letter")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(False)
    pdf.alias_nb_pages(_NB)
    pdf.c_margin = 0
    if created is not None:
        pdf.set_creation_date(created)
    pdf.set_title(f"{content.name} - resume")
    pdf.set_creator("greenhouse-export")
    for face in fonts.faces:
        library.install(pdf, face)
    pdf.rtl = direction(content.name)[1]
    pdf.add_page()
    writer = _Writer(pdf, fonts)
    writer.paragraph(content.name, 22, bold=True, lead=1.25)
    if content.headline:
        writer.y += 1
        writer.paragraph(content.headline, 11.5, color=ACCENT, lead=1.35)
    writer.y += 5
    if content.contact:
        writer.inline(content.contact, 9.5, MUTED)
    if content.links:
        writer.inline(content.links, 9.5, ACCENT)
    writer.y += 6
    writer.rule(ACCENT, 1.2)
    writer.y += 2
    for title, entries in (("Experience", content.experience), ("Education", content.education)):
        if entries:
            writer.heading(title)
            for entry in entries:
                writer.entry(entry)
    if content.skills:
        writer.heading("Skills")
        writer.paragraph(SEPARATOR.join(content.skills), 10, lead=1.45)
    if content.summary:
        writer.heading("Summary")
        for n, part in enumerate(content.paragraphs()):
            writer.y += 5 if n else 0
            writer.paragraph(part, 10, lead=1.45, keep=2)
    return bytes(pdf.output()), pdf.pages_count


def resume_filename(profile: Profile) -> str:
    """``Ada_Quinn_resume.pdf``: letters, marks and digits of any script kept, every other run of characters
    one ``_``, at most :data:`MAX_FILENAME_STEM` of them; the profile id when the name leaves nothing."""

    def stem(text: str) -> str:
        kept = "".join(ch if unicodedata.category(ch)[0] in "LMN" else "_" for ch in unicodedata.normalize("NFC", text))
        return re.sub(r"_+", "_", kept).strip("_")[:MAX_FILENAME_STEM].strip("_")

    return f"{stem(_name(profile)) or stem(profile.id) or 'candidate'}_resume.pdf"


def render_resume(
    profile: Profile,
    *,
    paper: Paper = "a4",
    max_bytes: int = DEFAULT_MAX_BYTES,
    fonts: FontLibrary | None = None,
    created: datetime | None = None,
) -> Resume:
    """The resume PDF of ``profile`` on ``paper``, at most ``max_bytes`` long.

    ``fonts`` is the process's :func:`~shared.profiles.fonts.font_library` of ``GHX_RESUME__FONT_DIRS`` (the
    default folders when omitted); ``created`` fixes the PDF's creation date (now when omitted), so a
    profile can give the same bytes twice. Raises :class:`~shared.profiles.fonts.FontsUnavailable` when no
    base font is installed, :class:`ResumeTooLarge` when even name, headline and contact exceed
    ``max_bytes``; characters no font draws and cuts made to fit are in :attr:`Resume.left_out`.
    """
    library = fonts or font_library(ResumeSettings().font_dirs)
    placeholder = "\ufffd" if 0xFFFD in library.coverage("regular") else "?"
    size = 0
    for content, cut in _cuts(_content(profile)):
        missing = missing_chars(library, (ord(ch) for text, _ in content.units() for ch in text))
        drawn = content.replace_chars({cp: placeholder for cp in missing}) if missing else content
        pdf, pages = _layout(drawn, plan_fonts(library, list(drawn.units())), library, paper, created)
        size = len(pdf)
        if size > max_bytes:
            continue
        left_out = []
        if missing:
            shown = ", ".join(f"U+{cp:04X}" for cp in missing[:5]) + (", ..." if len(missing) > 5 else "")
            detail = f"{len(missing)} characters no installed font covers ({shown}), drawn as {placeholder}"
            left_out.append(LeftOut("resume", Reason.NO_FONT, detail=detail))
        if cut:
            left_out.append(
                LeftOut("resume", Reason.TOO_LARGE, detail=f"cut to fit {max_bytes} bytes: {'; '.join(cut)}")
            )
        return Resume(pdf, resume_filename(profile), pages, tuple(left_out))
    raise ResumeTooLarge(size, max_bytes)

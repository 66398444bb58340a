"""The candidate's resume as a PDF, made from a :class:`~shared.profiles.model.Profile` (a worker uploads it as
the application's resume attachment): the layout and rendering of its content
(:mod:`shared.profiles.resume_content`), on A4 or Letter, numbered "1 / 2" when longer than a page.

Layout is ours: a greedy line breaker over the fonts' advance widths, then one PDF text operator per line
when a single face draws it unshaped (most lines), else one fpdf2 ``cell`` (fallback fonts, bidi, HarfBuzz).
fpdf2's ``multi_cell`` measures every line prefix again at each character: eight times slower.

Scripts: a paragraph whose strong characters are mainly Arabic or Hebrew is right-aligned, and the frame
(headings, contact, dates on the left) follows the name's direction. Shaping is on only for paragraphs that
need it (right-to-left text, complex scripts, combining marks): Latin stays on the fast path. The Arabic,
Hebrew, CJK and emoji fonts are embedded only when the text has characters the base font lacks
(:mod:`shared.profiles.fontplan`, over the faces :mod:`shared.profiles.fonts` prepares). A character no
installed font draws becomes a placeholder and is reported (``Reason.NO_FONT``), never an error.

Size: a PDF above ``max_bytes`` is made again with less (the summary shortened, then left out; then the
oldest employments and educations, skills and links: :func:`~shared.profiles.resume_content.cuts`), and the
cut is reported (``Reason.TOO_LARGE``). When even name, headline and contact do not fit,
:class:`ResumeTooLarge` is raised. The name is never cut.

Pure: no network, no store; fonts are read from the configured folders once per process.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from fpdf import FPDF

from shared.errors import UserError
from shared.profiles.fields import Paper
from shared.profiles.fontfiles import FALLBACK_ROLES, Role
from shared.profiles.fontplan import DocumentFonts, missing_chars, plan_fonts
from shared.profiles.fonts import Face, FontLibrary, font_library
from shared.profiles.model import Profile
from shared.profiles.report import LeftOut, Reason
from shared.profiles.resume_content import CJK, SEPARATOR, Content, Entry, content_of, cuts, direction, display_name
from shared.settings import ResumeSettings

DEFAULT_MAX_BYTES: int = ResumeSettings.model_fields["max_bytes"].default
MAX_FILENAME_STEM = 60
"""Characters of the name part of the file name (the whole name stays well under 255 bytes)."""

Color = tuple[int, int, int]
INK: Color = (33, 33, 33)
SUBTLE: Color = (70, 70, 70)
MUTED: Color = (105, 105, 105)
ACCENT: Color = (28, 74, 120)
RULE: Color = (200, 205, 212)
MARGIN = 50.0
"""Page margins in points (about 18 mm), the same on A4 and Letter."""


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


def needs_fonts(profile: Profile, fonts: FontLibrary | None = None) -> frozenset[Role]:
    """The fonts beyond the base one ``profile``'s resume embeds, by script (``arabic``, ``devanagari``,
    ``cjk``, ``emoji``...: a bold face counts as its script's)."""
    library = fonts or font_library(ResumeSettings().font_dirs)
    plan = plan_fonts(library, list(content_of(profile).units()))
    return frozenset(role for face in plan.fallback if (role := face.role.removesuffix("_bold")) in FALLBACK_ROLES)


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

    def entry(self, entry: Entry) -> None:
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


_TOKEN = re.compile(rf"\s+|[{CJK}]|[^\s{CJK}]+")
"""Break opportunities: at spaces, and around every CJK character (those scripts put no spaces)."""


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


def _layout(content: Content, fonts: DocumentFonts, library: FontLibrary, paper: Paper, created: datetime | None
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
    _mark_cluster_glyphs(pdf)
    return bytes(pdf.output()), pdf.pages_count


WORD_JOINER = 0x2060


def _mark_cluster_glyphs(pdf: FPDF) -> None:
    """Give the text layer a word joiner for each glyph that carries no text of its own.

    Shaping gives a cluster's text to its first glyph. The other glyphs have no text: a split vowel sign, a
    conjunct's half form, the consonant after a reordered i-matra in Hindi. fpdf2 leaves them out of the
    ToUnicode map, and readers then show their glyph codes as characters ("इन्फोसि#स"), which breaks copying
    and search (Greenhouse indexes a resume's text). A word joiner is invisible, default-ignorable and breaks
    no word.
    """
    for font in pdf.fonts.values():
        subset = getattr(font, "subset", None)
        for glyph, _code in subset.items() if subset is not None else ():
            if glyph is not None and glyph.unicode == ():
                glyph.unicode = (WORD_JOINER,)


def resume_filename(profile: Profile) -> str:
    """``Ada_Quinn_resume.pdf``: letters, marks and digits of any script kept, every other run of characters
    one ``_``, at most :data:`MAX_FILENAME_STEM` of them; the profile id when the name leaves nothing."""

    def stem(text: str) -> str:
        kept = "".join(ch if unicodedata.category(ch)[0] in "LMN" else "_" for ch in unicodedata.normalize("NFC", text))
        return re.sub(r"_+", "_", kept).strip("_")[:MAX_FILENAME_STEM].strip("_")

    return f"{stem(display_name(profile)) or stem(profile.id) or 'candidate'}_resume.pdf"


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
    profile can give the same bytes twice. Raises :class:`~shared.profiles.fontfiles.FontsUnavailable` when no
    base font is installed, :class:`ResumeTooLarge` when even name, headline and contact exceed
    ``max_bytes``; characters no font draws and cuts made to fit are in :attr:`Resume.left_out`.
    """
    library = fonts or font_library(ResumeSettings().font_dirs)
    placeholder = "\ufffd" if 0xFFFD in library.coverage("regular") else "?"
    size = 0
    for content, cut in cuts(content_of(profile)):
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

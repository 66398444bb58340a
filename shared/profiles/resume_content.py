"""What goes into a candidate's resume, before layout: a :class:`Content` made from a
:class:`~shared.profiles.model.Profile`, and the smaller versions of it tried when the PDF is too large.

Content, top to bottom: the name (family name first, without a space, for Chinese, Japanese and Korean names),
a headline ("title at company"), location and contact (emails, phones), links (profile page, urls, social
media; shown shortened, each once), then Experience (recent first), Education, Skills and Summary. Every
field is cleaned first (NFC, whitespace to spaces, control and format characters out).

Cuts (:func:`cuts`), when the PDF is above its size cap: the summary shortened, then left out; then the
oldest employments and educations, skills and links; last, only name, headline and contact. The name is
never cut. :func:`direction` tells a paragraph's direction and whether it needs shaping, for cleaning and
for the layout (:mod:`shared.profiles.resume`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date

from shared.profiles.fontplan import ignorable
from shared.profiles.model import Profile

SUMMARY_SHORT = 1000
"""A summary is first cut to this many characters when the PDF is too large."""
URL_SHOWN = 70
"""A longer link is shown shortened (its target stays whole)."""
SEPARATOR = "   \u00b7   "
"""Between the items of a row (contact, links, skills), wide enough to read as a break."""
EN_DASH = "\u2013"


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


CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff"
"""The Chinese, Japanese and Korean blocks, as a regular expression character range (no brackets)."""


def _cjk(ch: str) -> bool:
    return bool(ch) and re.fullmatch(f"[{CJK}]", ch) is not None


# --- content: what the resume says, before layout ---------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One employment or education: the title (bold), the line below it, and its dates."""

    title: str
    subtitle: str
    dates: str


@dataclass(frozen=True)
class Content:
    """What the resume says, cleaned and ordered; the layout draws it as it is."""

    name: str
    headline: str
    contact: tuple[tuple[str, str], ...]
    """(text, link target) pairs: location, emails, phones."""
    links: tuple[tuple[str, str], ...]
    experience: tuple[Entry, ...]
    education: tuple[Entry, ...]
    skills: tuple[str, ...]
    summary: str

    def paragraphs(self) -> list[str]:
        """The summary's non-empty paragraphs, stripped."""
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

    def replace_chars(self, table: dict[int, str]) -> Content:
        """This content with the characters of ``table`` replaced (dates and links targets untouched)."""

        def fix(text: str) -> str:
            return text.translate(table)

        return Content(
            name=fix(self.name),
            headline=fix(self.headline),
            contact=tuple((fix(t), target) for t, target in self.contact),
            links=tuple((fix(t), target) for t, target in self.links),
            experience=tuple(Entry(fix(e.title), fix(e.subtitle), e.dates) for e in self.experience),
            education=tuple(Entry(fix(e.title), fix(e.subtitle), e.dates) for e in self.education),
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


def display_name(profile: Profile) -> str:
    """The candidate's name as the resume shows it: ``First Last``, or family name first for CJK names."""
    first, last = _clean(profile.first_name), _clean(profile.last_name)
    if _cjk(first[-1:]) and _cjk(last[:1]):
        return f"{last}{first}"  # Chinese, Japanese and Korean names: family name first, no space (张伟, 김민준)
    return f"{first} {last}"


def content_of(profile: Profile) -> Content:
    """The whole content of ``profile``'s resume, each field cleaned, employments and educations recent first."""
    jobs = [e for e in profile.employments if e.title or e.company_name]
    experience = tuple(
        Entry(
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
        education.append(Entry(title, detail if school.school else "", _dates(school.start_date, school.end_date,
                                                                             ongoing=False)))  # fmt: skip
    urls = [*([profile.profile_url] if profile.profile_url else []), *profile.urls, *profile.social_media]
    links: dict[str, str] = {}
    for url in urls:
        text, target = _link(url)
        links.setdefault(text, target)  # a link shown twice (profile page also in urls) is shown once
    contact = [(_clean(profile.location), "")] if profile.location else []
    contact += [(_clean(email), f"mailto:{email}") for email in profile.emails]
    contact += [(_clean(phone), "tel:" + re.sub(r"[^\d+]", "", phone)) for phone in profile.phones]
    return Content(
        name=display_name(profile),
        headline=_clean(_join([profile.title, profile.company], " at ")),
        contact=tuple(contact),
        links=tuple(links.items()),
        experience=experience,
        education=tuple(education),
        skills=tuple(_clean(s) for s in profile.skills),
        summary=_clean(profile.summary or "").strip(),
    )


def cuts(full: Content) -> Iterator[tuple[Content, list[str]]]:
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


def _dropped(full: Content, cut: Content) -> list[str]:
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

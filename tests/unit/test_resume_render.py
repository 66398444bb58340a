"""The resume PDF (:mod:`shared.profiles.resume`), read back with PDFium: names, employers and schools in four
scripts, page sizes, file names, the size cap, characters no font draws, missing fonts; and the font fast
path (:mod:`shared.profiles.fonts`) pinned to fpdf2's own ``add_font`` path.

Each sample profile is rendered once per module (fixtures), so the file runs in a few seconds. Tests that need
the fonts of requirements/fonts.txt skip when they are not installed, and fail under ``CI=true``.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

from shared.profiles.fontfiles import FontsUnavailable, find_fonts
from shared.profiles.fontplan import missing_chars
from shared.profiles.fonts import CAN_CLONE, FontLibrary, font_library
from shared.profiles.model import Profile, read_profiles_file
from shared.profiles.report import Reason
from shared.profiles.resume import Resume, ResumeTooLarge, needs_fonts, render_resume, resume_filename
from shared.settings import ResumeSettings
from tests.conftest import IN_CI
from tests.pdf_text import pdf_text, squeezed

SAMPLES = Path(__file__).parents[1] / "data" / "resume_samples.jsonl"
FONT_DIRS = tuple(ResumeSettings().font_dirs)
CREATED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
A4 = (595.28, 841.89)
LETTER = (612.0, 792.0)


def require_fonts() -> FontLibrary:
    """The fonts of requirements/fonts.txt, or a skip (a failure under ``CI=true``) saying how to get them."""
    try:
        files = find_fonts(FONT_DIRS)
    except FontsUnavailable as exc:
        reason = str(exc)
    else:
        lacking = [role for role in ("regular", "bold", "arabic", "hebrew", "cjk", "emoji") if role not in files]
        if not lacking:
            return font_library(FONT_DIRS)
        reason = f"no {', '.join(lacking)} font under {', '.join(FONT_DIRS)} (install requirements/fonts.txt)"
    if IN_CI:
        pytest.fail(f"CI=true and {reason}: resume tests must not be skipped in CI")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def fonts() -> FontLibrary:
    return require_fonts()


@pytest.fixture(scope="module")
def samples() -> dict[str, Profile]:
    result = read_profiles_file(SAMPLES)
    assert not result.errors
    return {p.id: p for p in result.profiles}


@pytest.fixture(scope="module")
def rendered(fonts: FontLibrary, samples: dict[str, Profile]) -> dict[str, Resume]:
    return {pid: render_resume(p, fonts=fonts, created=CREATED) for pid, p in samples.items()}


def readable_text(pdf: bytes) -> str:
    """The PDF's text as a reader copies it, after checking it holds no stray glyph code.

    Shaping gives a cluster's text to its first glyph; the others (a split vowel sign, a conjunct's half
    form) map to a word joiner (dropped by :func:`pdf_text`). Unmapped, PDFium would read their glyph codes
    as characters: control characters or stray punctuation ("इन्फोसि#स")."""
    text = pdf_text(pdf)
    stray = [ch for ch in text if unicodedata.category(ch) == "Cc" and not ch.isspace()]
    assert stray == [], f"glyph codes read as text: {stray}"
    return text


def profile(**fields: Any) -> Profile:
    return Profile.model_validate({"id": "p-1", "first_name": "Ada", "last_name": "Quinn", **fields})


# --- content, read back ------------------------------------------------------------------------------------


def test_every_sample_is_a_one_page_pdf(rendered: dict[str, Resume]) -> None:
    for resume in rendered.values():
        assert resume.content.startswith(b"%PDF-")
        assert resume.content.rstrip().endswith(b"%%EOF")
        assert resume.pages == 1
        assert len(pdfium.PdfDocument(resume.content)) == 1
        assert resume.left_out == ()


@pytest.mark.parametrize(
    ("pid", "expected"),
    [
        (
            "rs-en-1",
            ["Zoë Ødegaard", "Northwind Traders", "Contoso Pharmacéutica", "ETH Zürich", "Universidad de Málaga"],
        ),
        # Right to left. fpdf2 maps a ligature glyph (lam-alef, and in Noto Sans Arabic lam-alef-maksura as in
        # "ليلى") to its characters in visual order, so PDFium reads them back swapped: the Arabic names
        # checked here have no lam ligature (the sample's third employer has one and is not checked).
        ("rs-ar-1", ["مريم حداد", "أرامكو السعودية", "مجموعة سابك", "جامعة الملك سعود"]),
        ("rs-he-1", ["נועה כהן", "ויקס", "צ'ק פוינט", "האוניברסיטה העברית בירושלים"]),
        ("rs-zh-1", ["张伟", "阿里巴巴", "腾讯", "北京大学", "浙江大学"]),
        ("rs-ko-1", ["김민준", "삼성전자", "네이버", "서울대학교"]),  # hangul: Nanum Gothic
        ("rs-hi-1", ["प्रियाशर्मा", "टाटाकंसल्टेंसीसर्विसेज़", "इन्फोसिस", "भारतीयप्रौद्योगिकीसंस्थानबॉम्बे"]),
    ],
)
def test_name_employers_and_schools_read_back(rendered: dict[str, Resume], pid: str, expected: list[str]) -> None:
    text = readable_text(rendered[pid].content)
    words = set(text.split())
    for phrase in expected:
        # Whole phrase without whitespace (CJK lines are split), or every word (PDFium may reorder the words
        # of a right-to-left line that also holds left-to-right dates).
        assert squeezed(phrase) in squeezed(text) or set(phrase.split()) <= words, (phrase, text)


def test_headline_dates_and_links(rendered: dict[str, Resume]) -> None:
    text = pdf_text(rendered["rs-en-1"].content)
    assert "Staff Software Engineer at Northwind Traders" in text
    assert "Apr 2021 \u2013 present" in text
    assert "Sep 2017 \u2013 Mar 2021" in text
    assert "linkedin.com/in/zoe-odegaard-example" in text
    assert "zoe.odegaard@example.org" in text
    # The emoji is drawn by Symbola, not dropped.
    assert "\U0001f680" in text


def test_right_to_left_name_is_right_aligned(rendered: dict[str, Resume]) -> None:
    def name_box(pdf: bytes, chars: int) -> tuple[float, float, float]:
        page = pdfium.PdfDocument(pdf)[0]
        textpage = page.get_textpage()
        boxes = [textpage.get_charbox(i) for i in range(chars)]
        return min(b[0] for b in boxes), max(b[2] for b in boxes), page.get_width()

    left, _right, _width = name_box(rendered["rs-en-1"].content, len("Zoë Ødegaard"))
    assert left == pytest.approx(50, abs=3)
    _left, right, width = name_box(rendered["rs-ar-1"].content, len("مريم حداد"))
    assert right == pytest.approx(width - 50, abs=3)


def test_fallback_fonts_only_when_the_text_needs_them(fonts: FontLibrary, samples: dict[str, Profile]) -> None:
    assert needs_fonts(samples["rs-en-1"], fonts) == {"emoji"}
    assert needs_fonts(samples["rs-ar-1"], fonts) == {"arabic"}
    assert needs_fonts(samples["rs-he-1"], fonts) == {"hebrew"}
    assert needs_fonts(samples["rs-zh-1"], fonts) == {"cjk"}
    assert needs_fonts(samples["rs-hi-1"], fonts) == {"devanagari"}
    assert needs_fonts(profile(summary="Plain Latin, accents café"), fonts) == frozenset()


# --- paper, file name ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("paper", "size"), [("a4", A4), ("letter", LETTER)])
def test_paper_size_in_points(fonts: FontLibrary, samples: dict[str, Profile], paper: Any, size: Any) -> None:
    page = pdfium.PdfDocument(render_resume(samples["rs-en-1"], paper=paper, fonts=fonts).content)[0]
    assert (page.get_width(), page.get_height()) == pytest.approx(size, abs=0.01)


@pytest.mark.parametrize(
    ("first", "last", "pid", "expected"),
    [
        ("Ada", "Quinn", "p-1", "Ada_Quinn_resume.pdf"),
        ("José María", "O'Neil-Smith", "p-1", "José_María_O_Neil_Smith_resume.pdf"),
        ("ليلى", "حداد", "p-1", "ليلى_حداد_resume.pdf"),
        ("伟", "张", "p-1", "张伟_resume.pdf"),  # family name first in Chinese, Japanese, Korean
        ("민준", "김", "p-1", "김민준_resume.pdf"),
        ("***", "///", "cand 42/x", "cand_42_x_resume.pdf"),
        ("***", "///", "---", "candidate_resume.pdf"),
        ("Ada", "Quinn\u200b!", "p-1", "Ada_Quinn_resume.pdf"),
    ],
)
def test_filename(first: str, last: str, pid: str, expected: str) -> None:
    assert resume_filename(profile(first_name=first, last_name=last, id=pid)) == expected


def test_filename_is_bounded() -> None:
    name = resume_filename(profile(first_name="A" * 200, last_name="B" * 200))
    assert name.endswith("_resume.pdf")
    assert len(name) <= 60 + len("_resume.pdf")
    assert set(name.removesuffix("_resume.pdf")) == {"A"}


# --- the size cap --------------------------------------------------------------------------------------------


def huge() -> Profile:
    jobs = [
        {
            "company_name": f"Company {n} " + "Holdings " * 20,
            "title": ("Principal engineer for distributed systems and platform reliability " * 4)[:255],
            "start_date": f"{1970 + n // 2}-0{1 + n % 9}-01",
            "end_date": f"{1971 + n // 2}-0{1 + n % 9}-01",
        }
        for n in range(50)
    ]
    summary = ("Built and ran systems for payments, logistics and data; led teams through migrations. " * 200)[:10_000]
    return profile(employments=jobs, summary=summary, title="Engineer", company="Northwind")


def test_a_huge_profile_is_cut_to_fit(fonts: FontLibrary) -> None:
    full = render_resume(huge(), fonts=fonts)
    assert full.pages > 5 and full.left_out == ()
    resume = render_resume(huge(), fonts=fonts, max_bytes=15_000)
    assert len(resume.content) <= 15_000
    (cut,) = resume.left_out
    assert cut.reason is Reason.TOO_LARGE and cut.part == "resume"
    assert "summary left out" in cut.detail and "oldest employments left out" in cut.detail
    text = pdf_text(resume.content)
    assert "Ada Quinn" in text
    assert "Company 49" in text  # the newest employment stays
    assert "Company 0 " not in text


def test_page_numbers_on_a_long_resume(fonts: FontLibrary) -> None:
    resume = render_resume(huge(), fonts=fonts)
    doc = pdfium.PdfDocument(resume.content)
    assert doc[0].get_textpage().get_text_range().rstrip().endswith(f"1 / {resume.pages}")
    assert doc[len(doc) - 1].get_textpage().get_text_range().rstrip().endswith(f"{resume.pages} / {resume.pages}")


def test_a_literal_page_alias_is_not_replaced(fonts: FontLibrary) -> None:
    assert "costs {nb} points" in pdf_text(render_resume(profile(summary="costs {nb} points"), fonts=fonts).content)


def test_even_the_shortest_resume_too_large_raises(fonts: FontLibrary) -> None:
    with pytest.raises(ResumeTooLarge) as caught:
        render_resume(profile(summary="Short."), fonts=fonts, max_bytes=2_000)
    entry = caught.value.left_out()
    assert entry.reason is Reason.TOO_LARGE and entry.part == "resume"
    assert "2000" in entry.detail


SCRIPT_NAMES = [
    # (the role whose font draws it, first name, last name, employer)
    ("devanagari", "प्रिया", "शर्मा", "टाटा कंसल्टेंसी"),
    ("bengali", "অমিত", "দাস", "গ্রামীণফোন"),
    ("tamil", "கார்த்திக்", "சுப்பிரமணியன்", "இன்ஃபோசிஸ்"),
    ("telugu", "శ్రీనివాస్", "రెడ్డి", "విప్రో"),
    ("thai", "สมชาย", "ใจดี", "ธนาคารกรุงเทพ"),
    ("georgian", "ნინო", "ბერიძე", "თიბისი"),
    ("armenian", "Արամ", "Սարգսյան", "Ուքրոսոֆթ"),
    ("ethiopic", "አበበ", "ከበደ", "ኢትዮ ቴሌኮም"),
]


@pytest.mark.parametrize(("role", "first", "last", "employer"), SCRIPT_NAMES, ids=[c[0] for c in SCRIPT_NAMES])
def test_indic_southeast_asian_and_other_scripts_have_their_fonts(
    fonts: FontLibrary, role: str, first: str, last: str, employer: str
) -> None:
    """Scripts the base font lacks, beyond Arabic, Hebrew and CJK: each drawn (and shaped) by its Noto font
    from fonts-noto-core, nothing left out, and the name and employer read back from the PDF."""
    if not fonts.has(role):
        pytest.fail(f"no font for {role}: install requirements/fonts.txt") if IN_CI else pytest.skip(f"no {role} font")
    prof = profile(first_name=first, last_name=last, employments=[{"company_name": employer, "title": "Engineer"}])
    resume = render_resume(prof, fonts=fonts)
    assert resume.left_out == ()
    assert needs_fonts(prof, fonts) == {role}
    text = squeezed(readable_text(resume.content))
    for expected in (first, last, employer):
        assert squeezed(expected) in text, (expected, text[:200])


# --- characters no font draws, fonts missing ------------------------------------------------------------------


def test_a_character_no_font_draws_is_reported_not_raised(fonts: FontLibrary) -> None:
    candidates = ["\u0dc1", "\U00013000", "\u1000", "\u0f40"]  # Sinhala, Egyptian, Myanmar, Tibetan
    unknown = [ch for ch in candidates if missing_chars(fonts, [ord(ch)])]
    assert unknown, "every candidate is drawn by an installed font: pick another script"
    ch = unknown[0]
    resume = render_resume(profile(summary=f"Speaks {ch}{ch} fluently"), fonts=fonts)
    (entry,) = resume.left_out
    assert entry.reason is Reason.NO_FONT
    assert entry.detail.startswith("1 characters no installed font covers")
    assert f"U+{ord(ch):04X}" in entry.detail
    assert "Speaks \ufffd\ufffd fluently" in pdf_text(resume.content)


def test_no_base_font_raises_fonts_unavailable(tmp_path: Path) -> None:
    (tmp_path / "fonts").mkdir()
    with pytest.raises(FontsUnavailable) as caught:
        render_resume(profile(), fonts=font_library([str(tmp_path / "fonts"), str(tmp_path / "absent")]))
    assert "requirements/fonts.txt" in str(caught.value)
    assert "GHX_RESUME__FONT_DIRS" in str(caught.value)


# --- the fast path, pinned -------------------------------------------------------------------------------------


def test_fpdf2_is_one_whose_fonts_the_fast_path_can_share() -> None:
    # A new fpdf2 with other TTFFont slots switches the fast path off (the add_font path still works): check
    # what changed in fpdf/fonts.py, then update _KNOWN_SLOTS and _PER_DOCUMENT in shared/profiles/fonts.py.
    assert CAN_CLONE


def glyph_boxes(pdf: bytes) -> list[tuple[float, ...]]:
    out = []
    for page in pdfium.PdfDocument(pdf):
        textpage = page.get_textpage()
        out += [tuple(round(v, 1) for v in textpage.get_charbox(i)) for i in range(textpage.count_chars())]
    return out


@pytest.mark.parametrize("pid", ["rs-en-1", "rs-ar-1"])
def test_fast_path_lays_out_as_fpdf2_add_font(
    fonts: FontLibrary, samples: dict[str, Profile], rendered: dict[str, Resume], pid: str
) -> None:
    plain = render_resume(samples[pid], fonts=FontLibrary(fonts.files, clone=False), created=CREATED)
    # Same characters at the same places; the fast path's fonts are cut smaller (no hinting), so smaller files.
    assert pdf_text(plain.content) == pdf_text(rendered[pid].content)
    assert glyph_boxes(plain.content) == glyph_boxes(rendered[pid].content)
    assert len(rendered[pid].content) < len(plain.content)


def test_documents_share_nothing_that_changes(
    fonts: FontLibrary, samples: dict[str, Profile], rendered: dict[str, Resume]
) -> None:
    # Prototypes and tables are shared between documents and threads: the same profile gives the same bytes,
    # before and after other documents, and from concurrent threads.
    outputs: list[bytes] = []

    def render(pid: str) -> Callable[[], None]:
        return lambda: outputs.append(render_resume(samples[pid], fonts=fonts, created=CREATED).content)

    threads = [threading.Thread(target=render(pid)) for pid in ("rs-ar-1", "rs-en-1", "rs-zh-1", "rs-en-1")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    again = render_resume(samples["rs-en-1"], fonts=fonts, created=CREATED).content
    assert again == rendered["rs-en-1"].content
    assert outputs.count(rendered["rs-en-1"].content) == 2
    assert rendered["rs-ar-1"].content in outputs and rendered["rs-zh-1"].content in outputs


def test_widths_are_fpdf2s(fonts: FontLibrary) -> None:
    from fpdf import FPDF

    pdf = FPDF(unit="pt")
    pdf.add_font("sans", "", fonts.files["regular"])
    pdf.set_font("sans", "", 10)
    face = fonts.face("regular", [ord(c) for c in "Zoë"])
    plan_text = "Zoë Ødegaard, Staff Engineer \u2013 2019"
    mine = sum(face.advance(ord(c)) for c in plan_text) * 10 / 1000
    assert mine == pytest.approx(pdf.get_string_width(plan_text), abs=1e-9)


def test_samples_are_in_the_operator_contract_format() -> None:
    for line in SAMPLES.read_text(encoding="utf-8").splitlines():
        Profile.model_validate(json.loads(line))

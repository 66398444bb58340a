"""Which font files the resume PDF uses, and the repertoires of the smaller cuts made of them.

Roles and the files that fill them (first found wins; requirements/fonts.txt installs the Noto, Droid and
Symbola ones): base ``regular``/``bold`` (Latin, Greek, Cyrillic: Noto Sans, else DejaVu Sans, Liberation
Sans, FreeSans), one role and its ``_bold`` per script of :data:`SCRIPTS` (Arabic, Hebrew, Devanagari,
Tamil, Thai, Georgian...: Noto Sans, else Noto Naskh or Noto Serif), ``korean`` (Nanum Gothic: hangul),
``cjk`` (Droid Sans Fallback: Chinese, Japanese, Korean hanja; only part of hangul) and ``emoji`` (Symbola,
black and white). Files are looked for under ``GHX_RESUME__FONT_DIRS`` and their subfolders (``~``
expanded). Colour emoji fonts are never used: fpdf2 draws them as Type 3 bitmaps that broke the text around
them.

Large fonts have smaller *tiers* (:data:`TIERS`), the code points of a repertoire most documents stay within
(Latin for the base; GB 2312 level 1, Big5 level 1, JIS X 0208, KS X 1001 for CJK; the emoji blocks for
Symbola). :mod:`shared.profiles.fonts` cuts them once per process; a document uses the smallest tier that
covers its text and the whole installed file otherwise, so nothing a font covers is ever lost.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from shared.errors import ConfigurationError

Role = str
"""A font's job in a document: a key of :data:`FAMILY` (``regular``, ``bold``, ``arabic``, ``devanagari_bold``...)."""

_NOTO = ("Sans", "Serif")
SCRIPTS: tuple[tuple[Role, str, tuple[str, ...], tuple[tuple[int, int], ...]], ...] = (
    ("arabic", "Arabic", ("Sans", "Naskh"), ((0x0600, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF))),
    ("hebrew", "Hebrew", _NOTO, ((0x0590, 0x05FF), (0xFB1D, 0xFB4F))),
    ("armenian", "Armenian", _NOTO, ((0x0530, 0x058F), (0xFB13, 0xFB17))),
    ("devanagari", "Devanagari", _NOTO, ((0x0900, 0x097F), (0x1CD0, 0x1CFF), (0xA8E0, 0xA8FF))),
    ("bengali", "Bengali", _NOTO, ((0x0980, 0x09FF),)),
    ("gurmukhi", "Gurmukhi", _NOTO, ((0x0A00, 0x0A7F),)),
    ("gujarati", "Gujarati", _NOTO, ((0x0A80, 0x0AFF),)),
    ("oriya", "Oriya", _NOTO, ((0x0B00, 0x0B7F),)),
    ("tamil", "Tamil", _NOTO, ((0x0B80, 0x0BFF),)),
    ("telugu", "Telugu", _NOTO, ((0x0C00, 0x0C7F),)),
    ("kannada", "Kannada", _NOTO, ((0x0C80, 0x0CFF),)),
    ("malayalam", "Malayalam", _NOTO, ((0x0D00, 0x0D7F),)),
    ("sinhala", "Sinhala", _NOTO, ((0x0D80, 0x0DFF),)),
    ("thai", "Thai", _NOTO, ((0x0E00, 0x0E7F),)),
    ("lao", "Lao", _NOTO, ((0x0E80, 0x0EFF),)),
    ("tibetan", "Tibetan", _NOTO, ((0x0F00, 0x0FFF),)),
    ("myanmar", "Myanmar", _NOTO, ((0x1000, 0x109F), (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F))),
    ("georgian", "Georgian", _NOTO, ((0x10A0, 0x10FF), (0x1C90, 0x1CBF), (0x2D00, 0x2D2F))),
    ("ethiopic", "Ethiopic", _NOTO, ((0x1200, 0x139F), (0x2D80, 0x2DDF), (0xAB00, 0xAB2F))),
    ("khmer", "Khmer", _NOTO, ((0x1780, 0x17FF), (0x19E0, 0x19FF))),
)
"""Scripts the base font lacks, each drawn by its Noto font (fonts-noto-core), regular and bold: role, the
script's name in the file names (``Noto<cut><name>-Regular.ttf`` and ``-Bold.ttf``), the cuts looked for in
order, the Unicode blocks the role is tried for (:mod:`shared.profiles.fontplan`)."""

FALLBACK_ROLES: tuple[Role, ...] = (*(role for role, _, _, _ in SCRIPTS), "korean", "cjk", "emoji")
"""Roles that draw what the base font lacks, in the order fpdf2 tries them."""

FAMILY: dict[Role, tuple[str, str]] = {
    "regular": ("sans", ""),
    "bold": ("sans", "B"),
    **{
        r: (family, style)
        for role, _, _, _ in SCRIPTS
        for r, family, style in ((role, role, ""), (f"{role}_bold", role, "B"))
    },
    "korean": ("korean", ""),
    "cjk": ("cjk", ""),
    "emoji": ("emoji", ""),
}
"""The fpdf2 family and style each role is registered under in a document."""

# Alternatives, in order of preference; a bold file is taken only with its own regular (one family).
_PAIRS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "base": (
        ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf"),
        ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
        ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
        ("FreeSans.ttf", "FreeSansBold.ttf"),
    ),
    **{
        role: tuple((f"Noto{cut}{name}-Regular.ttf", f"Noto{cut}{name}-Bold.ttf") for cut in cuts)
        for role, name, cuts, _ in SCRIPTS
    },
    "korean": (("NanumGothic.ttf", None), ("NanumBarunGothic.ttf", None)),
    "cjk": (("DroidSansFallbackFull.ttf", None), ("DroidSansFallback.ttf", None)),
    "emoji": (("Symbola_hint.ttf", None), ("Symbola.ttf", None)),
}
_ROLES_OF: dict[str, tuple[Role, Role | None]] = {
    "base": ("regular", "bold"),
    **{role: (role, f"{role}_bold") for role, _, _, _ in SCRIPTS},
    "korean": ("korean", None),
    "cjk": ("cjk", None),
    "emoji": ("emoji", None),
}


class FontsUnavailable(ConfigurationError):
    """No base font (Noto Sans, DejaVu Sans, Liberation Sans or FreeSans) under the configured folders."""


@dataclass(frozen=True)
class FontFiles:
    """The font file found for each role (a role without one is absent)."""

    paths: dict[Role, Path]

    def __getitem__(self, role: Role) -> Path:
        return self.paths[role]

    def __contains__(self, role: object) -> bool:
        return role in self.paths


@cache
def find_fonts(font_dirs: tuple[str, ...]) -> FontFiles:
    """Walk ``font_dirs`` (recursively, ``~`` expanded, missing folders skipped) once per process and pick
    a file per role by name. Raises :class:`FontsUnavailable` when no base font exists at all."""
    found: dict[str, Path] = {}
    for folder in font_dirs:
        for root, dirs, names in os.walk(os.path.expanduser(folder)):
            dirs.sort()  # the same file wins on every run
            for name in sorted(names):
                found.setdefault(name.lower(), Path(root) / name)
    paths: dict[Role, Path] = {}
    for kind, pairs in _PAIRS.items():
        regular_role, bold_role = _ROLES_OF[kind]
        for regular, bold in pairs:
            if regular.lower() in found:
                paths[regular_role] = found[regular.lower()]
                if bold_role and bold and bold.lower() in found:
                    paths[bold_role] = found[bold.lower()]
                break
    if "regular" in paths:
        paths.setdefault("bold", paths["regular"])  # bold text then looks regular, but it is drawn
    else:
        raise FontsUnavailable(
            f"no font for the resume PDF under {', '.join(font_dirs) or '(no folders)'}: install the Debian "
            "packages of requirements/fonts.txt (fonts-noto-core, fonts-droid-fallback, fonts-nanum, fonts-symbola), "
            "or set GHX_RESUME__FONT_DIRS to folders holding NotoSans-Regular.ttf or DejaVuSans.ttf"
        )
    return FontFiles(paths)


# --- tiers: repertoires most documents stay within ----------------------------------------------------


def _ranges(*spans: tuple[int, int]) -> frozenset[int]:
    return frozenset(cp for lo, hi in spans for cp in range(lo, hi + 1))


def _codec(encoding: str, leads: Iterable[int], trails: Iterable[int]) -> frozenset[int]:
    # A legacy double-byte character set, decoded by Python's own codec: the characters each CJK standard
    # deemed common, without shipping a frequency list.
    trail_bytes = list(trails)
    out: set[int] = set()
    for lead in leads:
        for trail in trail_bytes:
            try:
                text = bytes((lead, trail)).decode(encoding)
            except UnicodeDecodeError:
                continue
            if len(text) == 1:
                out.add(ord(text))
    return frozenset(out)


_CJK_PUNCTUATION = _ranges((0x20, 0x7E), (0x3000, 0x303F), (0xFF00, 0xFFEF))
_EUC = range(0xA1, 0xFF)


@cache
def _zh_hans() -> frozenset[int]:
    return _codec("gb2312", range(0xA1, 0xAA), _EUC) | _codec("gb2312", range(0xB0, 0xD8), _EUC) | _CJK_PUNCTUATION


@cache
def _zh_hant() -> frozenset[int]:
    return _codec("big5", range(0xA1, 0xC7), [*range(0x40, 0x7F), *_EUC]) | _CJK_PUNCTUATION


@cache
def _ja() -> frozenset[int]:
    return _codec("euc_jp", range(0xA1, 0xD0), _EUC) | _CJK_PUNCTUATION  # JIS X 0208: kana, level 1 kanji


@cache
def _ko() -> frozenset[int]:
    hangul = _codec("euc_kr", [*range(0xA1, 0xAD), *range(0xB0, 0xC9)], _EUC)  # KS X 1001: symbols, hangul
    return hangul | _ranges((0x3130, 0x318F)) | _CJK_PUNCTUATION


@cache
def _cjk_common() -> frozenset[int]:
    return (
        _codec("gb2312", range(0xA1, 0xF8), _EUC)
        | _zh_hant()
        | _codec("euc_jp", range(0xA1, 0xF5), _EUC)
        | _codec("euc_kr", range(0xA1, 0xFE), _EUC)
        | _CJK_PUNCTUATION
    )


@cache
def _latin() -> frozenset[int]:
    return _ranges(
        (0x20, 0x7E), (0xA0, 0x17F), (0x1CD, 0x1DC), (0x218, 0x21B), (0x2C6, 0x2C7), (0x2D8, 0x2DD),
        (0x2010, 0x2027), (0x2030, 0x203A), (0x2044, 0x2044), (0x20A0, 0x20C0), (0x2116, 0x2116),
        (0x2122, 0x2122), (0x2190, 0x2193), (0xFFFD, 0xFFFD),
    )  # fmt: skip


_EMOJI_BLOCKS = {
    "emoji-faces": ((0x1F600, 0x1F6FF),),  # emoticons, transport and map symbols
    "emoji-objects": ((0x1F300, 0x1F5FF),),  # pictographs
    "emoji-more": ((0x1F900, 0x1F9FF), (0x1FA70, 0x1FAFF)),
    "symbols": ((0x2300, 0x23FF), (0x25A0, 0x27BF), (0x2B00, 0x2BFF)),  # technical, shapes, dingbats
}


def _emoji(block: str | None = None) -> Callable[[], frozenset[int]]:
    spans = _EMOJI_BLOCKS[block] if block else tuple(span for spans in _EMOJI_BLOCKS.values() for span in spans)
    return cache(lambda: _ranges(*spans))


TIERS: dict[Role, tuple[tuple[str, Callable[[], frozenset[int]] | None], ...]] = {
    "regular": (("latin", _latin),),
    "bold": (("latin", _latin),),
    **{r: (("lean", None),) for role, _, _, _ in SCRIPTS for r in (role, f"{role}_bold")},
    "korean": (("ko", _ko),),
    "cjk": (("zh-hans", _zh_hans), ("zh-hant", _zh_hant), ("ja", _ja), ("ko", _ko), ("cjk", _cjk_common)),
    "emoji": (*((name, _emoji(name)) for name in _EMOJI_BLOCKS), ("emoji", _emoji())),
}
"""Smaller cuts of a role's file, smallest first; a document takes the first that covers its text. A ``lean``
cut (no repertoire) keeps every glyph at its place, without hinting and layout tables: documents embed from
it while HarfBuzz shapes with the installed file (Arabic and Hebrew need their GSUB and GPOS). A cut of
Arabic to its main block with its layout tables saved 5 ms a document for 1.5 s of preparation: not kept."""

"""Fonts for the resume PDF: found by file name, prepared once per process, handed to each document cheaply.

Roles and the files that fill them (first found wins; requirements/fonts.txt installs the Noto, Droid and
Symbola ones): base ``regular``/``bold`` (Latin, Greek, Cyrillic: Noto Sans, else DejaVu Sans, Liberation
Sans, FreeSans), ``arabic``/``arabic_bold``, ``hebrew``/``hebrew_bold``, ``korean`` (Nanum Gothic: hangul),
``cjk`` (Droid Sans Fallback: Chinese, Japanese, Korean hanja; only part of hangul) and ``emoji`` (Symbola,
black and white). Files are looked for under
``GHX_RESUME__FONT_DIRS`` and their subfolders (``~`` expanded). Colour emoji fonts are never used: fpdf2
draws them as Type 3 bitmaps that broke the text around them.

Why the caching: fpdf2 parses a font file for every document (``add_font``: 30 ms for Noto Sans, 450 ms for
Droid Sans Fallback) and subsets it at output with fontTools, whose cost grows with the glyphs *in the
font*, not with those used (400 ms for Droid's 49,000 glyphs). So, once per process (:class:`FontLibrary`):

- the files are found (one walk of the folders) and read into memory;
- each face is parsed once into a prototype ``fpdf.fonts.TTFFont`` (cmap, widths, glyph ids) and its
  metrics; every document gets a clone sharing those read-only tables, with its own fontTools ``TTFont``
  parsed lazily from the bytes (the subsetter mutates it at output) and its own subset map;
- large fonts have smaller *tiers*: subsets made once with fontTools (no hinting, no layout tables) of a
  repertoire most documents stay within (Latin for the base; GB 2312 level 1, Big5 level 1, JIS X 0208, KS X
  1001 for CJK; the emoji blocks for Symbola). A document uses the smallest tier that covers its text and
  the whole installed file otherwise, so nothing a font covers is ever lost.

Per document, :func:`plan_fonts` picks the faces its text needs (a fallback only for characters the base
font lacks, the base bold only when bold text is set in it) and :class:`DocumentFonts` applies fpdf2's own
rule for which face draws each character, so widths measured for line breaking are the drawn ones;
:func:`missing_chars` names those no installed font draws.

The clone relies on fpdf2 internals (``TTFFont.__slots__``, ``FPDF.fonts``, ``SubsetMap``,
``HarfBuzzFont``). When fpdf2's ``TTFFont`` has slots this module does not know, it does not clone: every
document then uses ``FPDF.add_font`` on the installed files (public API, slower, identical layout);
tests/unit/test_resume_render.py pins both paths to the same output.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from io import BytesIO
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import fpdf.fonts
import uharfbuzz as hb  # type: ignore[import-untyped]
from fontTools import subset as ft_subset  # type: ignore[import-untyped]
from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

from shared.errors import ConfigurationError

HarfBuzzFont: Any = getattr(fpdf.fonts, "HarfBuzzFont", None)  # defined when uharfbuzz imports; may be renamed
T = TypeVar("T")

log = logging.getLogger(__name__)

_SOURCE_TABLES = ["TSI0", "TSI1", "TSI2", "TSI3", "TSI5"]
"""VTT hinting sources (Nanum Gothic ships them): fontTools cannot subset them and says so at WARNING each
time. They are dropped from our cuts; fpdf2's own subsetting at output drops them too, so its word on it
is only noise in the workers' logs."""
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)

Role = Literal["regular", "bold", "arabic", "arabic_bold", "hebrew", "hebrew_bold", "korean", "cjk", "emoji"]
FALLBACK_ROLES: tuple[Role, ...] = ("arabic", "hebrew", "korean", "cjk", "emoji")
"""Roles that draw what the base font lacks, in the order fpdf2 tries them."""

FAMILY: dict[Role, tuple[str, str]] = {
    "regular": ("sans", ""),
    "bold": ("sans", "B"),
    "arabic": ("arabic", ""),
    "arabic_bold": ("arabic", "B"),
    "hebrew": ("hebrew", ""),
    "hebrew_bold": ("hebrew", "B"),
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
    "arabic": (
        ("NotoSansArabic-Regular.ttf", "NotoSansArabic-Bold.ttf"),
        ("NotoNaskhArabic-Regular.ttf", "NotoNaskhArabic-Bold.ttf"),
    ),
    "hebrew": (("NotoSansHebrew-Regular.ttf", "NotoSansHebrew-Bold.ttf"), ("NotoSerifHebrew-Regular.ttf", None)),
    "korean": (("NanumGothic.ttf", None), ("NanumBarunGothic.ttf", None)),
    "cjk": (("DroidSansFallbackFull.ttf", None), ("DroidSansFallback.ttf", None)),
    "emoji": (("Symbola_hint.ttf", None), ("Symbola.ttf", None)),
}
_ROLES_OF: dict[str, tuple[Role, Role | None]] = {
    "base": ("regular", "bold"),
    "arabic": ("arabic", "arabic_bold"),
    "hebrew": ("hebrew", "hebrew_bold"),
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
    "arabic": (("lean", None),),
    "arabic_bold": (("lean", None),),
    "hebrew": (("lean", None),),
    "hebrew_bold": (("lean", None),),
    "korean": (("ko", _ko),),
    "cjk": (("zh-hans", _zh_hans), ("zh-hant", _zh_hant), ("ja", _ja), ("ko", _ko), ("cjk", _cjk_common)),
    "emoji": (*((name, _emoji(name)) for name in _EMOJI_BLOCKS), ("emoji", _emoji())),
}
"""Smaller cuts of a role's file, smallest first; a document takes the first that covers its text. A ``lean``
cut (no repertoire) keeps every glyph at its place, without hinting and layout tables: documents embed from
it while HarfBuzz shapes with the installed file (Arabic and Hebrew need their GSUB and GPOS). A cut of
Arabic to its main block with its layout tables saved 5 ms a document for 1.5 s of preparation: not kept."""

# fpdf2 2.8's TTFFont slots; a clone shares every one but those a document changes (see the docstring).
_KNOWN_SLOTS = frozenset(
    (
        *("i", "type", "name", "desc", "glyph_ids", "_hbfont", "sp", "ss", "up", "ut", "cw", "ttffile"),
        *("fontkey", "emphasis", "scale", "subset", "cmap", "ttfont", "missing_glyphs", "biggest_size_pt"),
        *("color_font", "unicode_range", "palette_index", "is_compressed", "is_cff", "is_cid_keyed"),
        *("is_symbol", "cff_ros", "collection_font_number"),
    )
)
_PER_DOCUMENT = frozenset(
    ("i", "desc", "_hbfont", "subset", "ttfont", "missing_glyphs", "biggest_size_pt", "color_font")
)
CAN_CLONE = HarfBuzzFont is not None and frozenset(getattr(TTFFont, "__slots__", ())) == _KNOWN_SLOTS
"""Whether this fpdf2 is one whose TTFFont the fast path knows how to share between documents."""


@dataclass(frozen=True, eq=False)
class Face:
    """One prepared font: the bytes documents embed from, which characters it draws and their advance
    widths (1/1000 em, as fpdf2 computes them), the HarfBuzz face that shapes it, and, on the fast path, the
    fpdf2 prototype documents share."""

    role: Role
    tier: str
    """``file`` for the installed file, else the tier's name (``path`` then names the file it was cut from)."""
    path: Path
    data: bytes
    widths: dict[int, int]
    missing_width: int
    shaper: Any
    """``uharfbuzz.Face`` of the font with its layout tables (the installed file for ``file`` and ``lean``)."""
    scale: float
    proto: Any = None

    @property
    def family(self) -> str:
        """The fpdf2 family the face is registered under (``sans``, ``arabic``...)."""
        return FAMILY[self.role][0]

    @property
    def style(self) -> str:
        """``B`` for a bold face, else empty."""
        return FAMILY[self.role][1]

    def covers(self, cp: int) -> bool:
        """Whether this face has a glyph for code point ``cp``."""
        return cp in self.widths

    def advance(self, cp: int) -> int:
        """Advance of ``cp`` in 1/1000 em (the font's missing-glyph width when it has none)."""
        return self.widths.get(cp, self.missing_width)

    def shaped_advance(self, text: str) -> int:
        """Advance of ``text`` shaped by HarfBuzz (joined Arabic, ligatures), in 1/1000 em, rounded per glyph
        as fpdf2 does."""
        buf = hb.Buffer()
        buf.add_str(text)
        buf.guess_segment_properties()
        hb.shape(_hb_font(self.shaper), buf, {})
        return sum(round(self.scale * pos.x_advance + 0.001) for pos in buf.glyph_positions)


@cache
def _hb_font(face: Any) -> Any:
    # A HarfBuzz font only reads its face: one per face serves every document and thread.
    return hb.Font(face)


def _metrics(data: bytes) -> tuple[dict[int, int], int, float]:
    # The same arithmetic as fpdf2's TTFFont (cw): advance * 1000 / unitsPerEm, rounded half up.
    font = ttLib.TTFont(BytesIO(data), lazy=True)
    scale = 1000 / font["head"].unitsPerEm
    metrics = font["hmtx"].metrics
    widths = {cp: round(scale * (0 if metrics[g][0] == 65535 else metrics[g][0]) + 0.001) for cp, g in
              font.getBestCmap().items()}  # fmt: skip
    return widths, round(scale * metrics[".notdef"][0]), scale


def _cut(data: bytes, unicodes: Collection[int] | None) -> bytes:
    """A subset of the font in ``data`` drawing ``unicodes`` (all its glyphs, at their places, when None),
    without hinting (PDF viewers rasterise themselves; smaller subsets) nor layout tables."""
    source = ttLib.TTFont(BytesIO(data), lazy=True, recalcBBoxes=False, recalcTimestamp=False)
    options = ft_subset.Options()
    options.hinting = False
    options.layout_features = []
    options.retain_gids = unicodes is None
    options.drop_tables += ["GDEF", "GPOS", "GSUB", "DSIG", "vhea", "vmtx", "kern", "FFTM", "MATH", "meta", "gasp"]
    options.drop_tables += _SOURCE_TABLES
    options.glyph_names = True  # post format 2: names read back faster than rebuilt from the cmap
    options.notdef_outline = True
    options.recommended_glyphs = True
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    subsetter = ft_subset.Subsetter(options)
    if unicodes is None:
        subsetter.populate(glyphs=source.getGlyphOrder())
    else:
        subsetter.populate(unicodes=unicodes)
    subsetter.subset(source)
    post = source["post"]
    if post.formatType == 3.0:  # store the glyph names: reading them back beats rebuilding them from the cmap
        post.formatType, post.extraNames, post.mapping = 2.0, [], {}
    out = BytesIO()
    source.save(out)
    return out.getvalue()


class FontLibrary:
    """The process's prepared faces for one set of font folders (see :func:`font_library`). Thread-safe:
    each face is built once, under a lock of its own, and then only read."""

    def __init__(self, files: FontFiles, *, clone: bool = CAN_CLONE) -> None:
        self.files = files
        self.clone = clone
        """Fast path (shared prototypes, tiers) when true; ``FPDF.add_font`` on the files when false."""
        self._done: dict[tuple[Role, str], Any] = {}
        self._locks: dict[tuple[Role, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def has(self, role: Role) -> bool:
        """Whether a file was found for ``role``."""
        return role in self.files

    def coverage(self, role: Role) -> dict[int, int]:
        """Code points the installed file of ``role`` draws, with their advances (read once per process)."""
        return self._once((role, "metrics"), partial(self._file_metrics, role))[1]

    def face(self, role: Role, chars: Collection[int] = ()) -> Face:
        """The smallest face of ``role`` that draws every code point of ``chars`` the installed file draws."""
        if self.clone:
            covered = self.coverage(role)
            wanted = {cp for cp in chars if cp in covered}
            for tier, repertoire in TIERS.get(role, ()):
                if repertoire is None or wanted <= repertoire():
                    return self._once((role, tier), partial(self._build, role, tier))
        return self._once((role, "file"), partial(self._build, role, "file"))

    def install(self, pdf: FPDF, face: Face) -> None:
        """Make ``face`` available in ``pdf`` under its role's family and style."""
        if face.proto is None:
            pdf.add_font(face.family, face.style, face.path)
            return
        font = TTFFont.__new__(TTFFont)
        for name in _KNOWN_SLOTS - _PER_DOCUMENT:
            if hasattr(face.proto, name):
                setattr(font, name, getattr(face.proto, name))
        font.i = len(pdf.fonts) + 1
        font.desc = copy.copy(face.proto.desc)  # output numbers it and hangs the embedded file on it
        font.ttfont = ttLib.TTFont(BytesIO(face.data), lazy=True, recalcTimestamp=False, recalcBBoxes=False)
        font._hbfont = HarfBuzzFont(face.shaper)
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font.color_font = None
        font.subset = SubsetMap(font)
        pdf.fonts[font.fontkey] = font

    def _once(self, key: tuple[Role, str], build: Callable[[], T]) -> T:
        done = self._done.get(key)
        if done is None:
            with self._lock:
                lock = self._locks.setdefault(key, threading.Lock())
            with lock:  # one thread builds it; those wanting it wait, those building something else go on
                done = self._done.get(key)
                if done is None:
                    done = self._done[key] = build()
        return cast(T, done)

    def _file_metrics(self, role: Role) -> tuple[bytes, dict[int, int], int, float]:
        data = self.files[role].read_bytes()
        return (data, *_metrics(data))

    def _build(self, role: Role, tier: str) -> Face:
        path = self.files[role]
        data, widths, missing, scale = self._once((role, "metrics"), partial(self._file_metrics, role))
        shaper = hb.Face(data)
        if tier != "file":
            repertoire = dict(TIERS[role])[tier]
            data = _cut(data, None if repertoire is None else repertoire() & widths.keys())
            shaper = shaper if repertoire is None else hb.Face(data)  # lean: shaped by the installed file
            widths, missing, scale = _metrics(data)
        if not self.clone:
            return Face(role, tier, path, data, widths, missing, shaper, scale)
        family, style = FAMILY[role]
        holder = FPDF()
        holder.render_color_fonts = False
        source: Any = path if tier == "file" else BytesIO(data)  # fontTools reads either
        proto = TTFFont(holder, source, f"{family}{style}", style)
        proto.ttfont.close()  # documents parse their own copy; the prototype keeps only the tables
        return Face(role, tier, path, data, widths, missing, shaper, scale, proto)


_LIBRARIES: dict[tuple[str, ...], FontLibrary] = {}
_LIBRARIES_LOCK = threading.Lock()


def font_library(font_dirs: Sequence[str]) -> FontLibrary:
    """The process's :class:`FontLibrary` for ``font_dirs`` (``GHX_RESUME__FONT_DIRS``), made on first use.

    Raises :class:`FontsUnavailable` when the folders hold no base font."""
    key = tuple(font_dirs)
    with _LIBRARIES_LOCK:
        library = _LIBRARIES.get(key)
        if library is None:
            library = _LIBRARIES[key] = FontLibrary(find_fonts(key))
            if not CAN_CLONE:
                log.warning("fpdf2's TTFFont changed: resume fonts are loaded per document (slower, same output)")
        return library


# --- the faces of one document ----------------------------------------------------------------------------

_HINTS: tuple[tuple[int, int, Role], ...] = (
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x08FF, "arabic"),
    (0x1100, 0x11FF, "korean"),
    (0x3130, 0x318F, "korean"),
    (0x2E80, 0x9FFF, "cjk"),
    (0xA960, 0xA97F, "korean"),
    (0xAC00, 0xD7FF, "korean"),
    (0xF900, 0xFAFF, "cjk"),
    (0xFB1D, 0xFB4F, "hebrew"),
    (0xFB50, 0xFDFF, "arabic"),
    (0xFE30, 0xFE4F, "cjk"),
    (0xFE70, 0xFEFF, "arabic"),
    (0xFF00, 0xFFEF, "cjk"),
    (0x20000, 0x3FFFF, "cjk"),
)


def _roles_to_try(cp: int) -> tuple[Role, ...]:
    # The script's own font; anything else (symbols, emoji) Symbola, then Droid's symbols. A font is read
    # only when a character may need it: a Latin profile never loads the CJK one.
    for lo, hi, role in _HINTS:
        if lo <= cp <= hi:
            return (role, "cjk") if role == "korean" else (role,)  # Droid has part of hangul
    return ("emoji", "cjk")


def ignorable(ch: str) -> bool:
    """Format characters and variation selectors: never drawn, so never missing from a font."""
    cp = ord(ch)
    return unicodedata.category(ch) == "Cf" or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


def _assign(library: FontLibrary, chars: Iterable[int]) -> tuple[dict[Role, set[int]], list[int]]:
    base = library.coverage("regular")
    by_role: dict[Role, set[int]] = {}
    missing = []
    for cp in sorted(set(chars)):
        if cp in base or cp < 0x20 or ignorable(chr(cp)):
            continue
        role = next((r for r in _roles_to_try(cp) if library.has(r) and cp in library.coverage(r)), None)
        if role is None:
            missing.append(cp)
        else:
            by_role.setdefault(role, set()).add(cp)
    return by_role, missing


def missing_chars(library: FontLibrary, chars: Iterable[int]) -> list[int]:
    """The code points of ``chars`` no installed font draws, in order (format characters excepted)."""
    return _assign(library, chars)[1]


class DocumentFonts:
    """The faces one document embeds, and the rule fpdf2 applies to draw each character: the current font
    when it has the glyph, else the first fallback that has it (one of the same weight first). Widths
    measured here are therefore the drawn ones. Made by :func:`plan_fonts`."""

    def __init__(self, regular: Face, bold: Face | None, fallback: Sequence[Face]) -> None:
        self.regular = regular
        self.bold = bold
        """None when no text is set in the base bold face (a CJK or Arabic name): it is not embedded."""
        self.fallback = list(fallback)
        families = list(dict.fromkeys(f.family for f in self.fallback))
        self.families = [*families, "sans"]
        """For ``FPDF.set_fallback_fonts``: the fallback families in order, then the base (bold text whose
        bold face lacks a glyph the regular face has)."""
        self._order = [*self.fallback, regular, *([bold] if bold else [])]  # fpdf2's fallback font ids
        self._picked: dict[tuple[int, int, bool], Face] = {}

    @property
    def faces(self) -> list[Face]:
        """Every face to install, base first (the order fpdf2 numbers them in)."""
        return [self.regular, *([self.bold] if self.bold else []), *self.fallback]

    def primary(self, text: str, bold: bool) -> Face:
        """The face to set for ``text``: the base one, or the fallback that draws most of its characters
        (one run instead of a fragment per word: an Arabic line is shaped in one go, spaces included)."""
        base = (self.bold or self.regular) if bold else self.regular
        if not self.fallback or self.covered(text, base):
            return base
        counts: dict[str, int] = {}
        for ch in text:
            if not ch.isspace():
                family = self.face(ord(ch), base).family
                counts[family] = counts.get(family, 0) + 1
        family = max(counts, key=counts.__getitem__, default="sans")
        if family == "sans" or counts[family] * 2 <= sum(counts.values()):
            return base
        faces = [f for f in self.fallback if f.family == family]
        return next((f for f in faces if (f.style == "B") == bold), faces[0])

    def face(self, cp: int, primary: Face) -> Face:
        """The face fpdf2 draws ``cp`` with when ``primary`` is the current font."""
        if cp in primary.widths:
            return primary
        key = (cp, id(primary), primary.style == "B")
        picked = self._picked.get(key)
        if picked is None:
            hits = [f for f in self._order if f.covers(cp)]
            weight = [f for f in hits if f.style == primary.style]
            picked = self._picked[key] = (weight or hits or [primary])[0]
        return picked

    def width(self, text: str, size: float, primary: Face) -> float:
        """Width in points of ``text`` unshaped at ``size``, set in ``primary``."""
        widths = primary.widths
        units = 0
        for ch in text:
            cp = ord(ch)
            units += widths[cp] if cp in widths else self.face(cp, primary).advance(cp)
        return units * size / 1000

    def shaped_width(self, text: str, size: float, primary: Face) -> float:
        """Width in points of ``text`` shaped, each run of characters by the face that draws it."""
        units = 0
        start = 0
        for end in range(1, len(text) + 1):
            face = self.face(ord(text[start]), primary)
            if end == len(text) or self.face(ord(text[end]), primary) is not face:
                units += face.shaped_advance(text[start:end])
                start = end
        return units * size / 1000

    @staticmethod
    def covered(text: str, face: Face) -> bool:
        """Whether ``face`` alone draws every character of ``text``."""
        widths = face.widths
        return all(ord(ch) in widths for ch in text)

    def used(self, units: Iterable[tuple[str, bool]]) -> set[Face]:
        """The faces that draw some character of ``units`` (text, bold)."""
        used: set[Face] = {self.regular}
        for text, bold in units:
            primary = self.primary(text, bold)
            used.add(primary)
            used.update(self.face(ord(ch), primary) for ch in text if ord(ch) not in primary.widths)
        return used


def plan_fonts(library: FontLibrary, units: Sequence[tuple[str, bool]]) -> DocumentFonts:
    """The faces for a document whose text is ``units`` (each a string and whether it is bold): the base
    face, its bold when some text needs it, the fallbacks its characters need, each the smallest tier that
    covers them. Characters no font draws are left to the caller (:func:`missing_chars`)."""
    by_role, _missing = _assign(library, (ord(ch) for text, _ in units for ch in text))
    base = library.coverage("regular")
    regular = library.face("regular", {ord(ch) for text, _ in units for ch in text} & base.keys())
    bold = library.face("bold", {ord(ch) for text, bold in units if bold for ch in text} & base.keys())
    fallback: list[Face] = []
    for role in FALLBACK_ROLES:
        if role in by_role:
            fallback.append(library.face(role, by_role[role]))
            bold_role = _BOLD_OF.get(role)
            if bold_role and library.has(bold_role):
                fallback.append(library.face(bold_role, by_role[role]))
    used = DocumentFonts(regular, bold, fallback).used(units)
    return DocumentFonts(regular, bold if bold in used else None, [f for f in fallback if f in used])


_BOLD_OF: dict[Role, Role] = {"arabic": "arabic_bold", "hebrew": "hebrew_bold"}

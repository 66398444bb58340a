"""Fonts for the resume PDF, prepared once per process and handed to each document cheaply.

Why the caching: fpdf2 parses a font file for every document (``add_font``: 30 ms for Noto Sans, 450 ms for
Droid Sans Fallback) and subsets it at output with fontTools, whose cost grows with the glyphs *in the
font*, not with those used (400 ms for Droid's 49,000 glyphs). So, once per process (:class:`FontLibrary`):

- the files are found (one walk of the folders, :func:`~shared.profiles.fontfiles.find_fonts`) and read into
  memory;
- each face is parsed once into a prototype ``fpdf.fonts.TTFFont`` (cmap, widths, glyph ids) and its
  metrics; every document gets a clone sharing those read-only tables, with its own fontTools ``TTFont``
  parsed lazily from the bytes (the subsetter mutates it at output) and its own subset map;
- large fonts have smaller *tiers*: subsets made once with fontTools (no hinting, no layout tables) of a
  repertoire most documents stay within (:data:`~shared.profiles.fontfiles.TIERS`). A document uses the
  smallest tier that covers its text and the whole installed file otherwise, so nothing a font covers is
  ever lost.

Which faces a document takes is :mod:`shared.profiles.fontplan`.

The clone relies on fpdf2 internals (``TTFFont.__slots__``, ``FPDF.fonts``, ``SubsetMap``,
``HarfBuzzFont``). When fpdf2's ``TTFFont`` has slots this module does not know, it does not clone: every
document then uses ``FPDF.add_font`` on the installed files (public API, slower, identical layout);
tests/unit/test_resume_render.py pins both paths to the same output.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import cache, partial
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar, cast

import fpdf.fonts
import uharfbuzz as hb  # type: ignore[import-untyped]
from fontTools import subset as ft_subset  # type: ignore[import-untyped]
from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

from shared.profiles.fontfiles import FAMILY, TIERS, FontFiles, Role, find_fonts

HarfBuzzFont: Any = getattr(fpdf.fonts, "HarfBuzzFont", None)  # defined when uharfbuzz imports; may be renamed
T = TypeVar("T")

log = logging.getLogger(__name__)

_SOURCE_TABLES = ["TSI0", "TSI1", "TSI2", "TSI3", "TSI5"]
"""VTT hinting sources (Nanum Gothic ships them): fontTools cannot subset them and says so at WARNING each
time. They are dropped from our cuts; fpdf2's own subsetting at output drops them too, so its word on it
is only noise in the workers' logs."""
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)

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

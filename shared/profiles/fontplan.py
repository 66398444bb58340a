"""The fonts of one resume PDF: which prepared faces its text needs, and which face draws each character.

:func:`plan_fonts` picks the faces a document's text needs from the process's
:class:`~shared.profiles.fonts.FontLibrary` (a fallback only for characters the base font lacks, the base
bold only when bold text is set in it, each the smallest tier that covers them) and :class:`DocumentFonts`
applies fpdf2's own rule for which face draws each character, so widths measured for line breaking are the
drawn ones; :func:`missing_chars` names those no installed font draws.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from shared.profiles.fontfiles import FALLBACK_ROLES, SCRIPTS, Role
from shared.profiles.fonts import Face, FontLibrary

_HINTS: tuple[tuple[int, int, Role], ...] = tuple(
    sorted(
        [
            (0x1100, 0x11FF, "korean"),
            (0x3130, 0x318F, "korean"),
            (0x2E80, 0x9FFF, "cjk"),
            (0xA960, 0xA97F, "korean"),
            (0xAC00, 0xD7FF, "korean"),
            (0xF900, 0xFAFF, "cjk"),
            (0xFE30, 0xFE4F, "cjk"),
            (0xFF00, 0xFFEF, "cjk"),
            (0x20000, 0x3FFFF, "cjk"),
            *((lo, hi, role) for role, _, _, blocks in SCRIPTS for lo, hi in blocks),
        ]
    )
)
"""Unicode blocks and the role whose font is tried for them (before Symbola and Droid's symbols)."""

_BOLD_OF: dict[Role, Role] = {role: f"{role}_bold" for role, _, _, _ in SCRIPTS}


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

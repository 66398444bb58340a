"""Helpers every store module uses on lists of rows: bounded IN lists and bulk statements, stored ids."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

CHUNK = 500
"""Rows per IN (...) list and per bulk statement (well under SQLite's parameter limit)."""


def chunks(seq: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``seq`` of at most ``size`` elements."""
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def stored_ids(ids: Iterable[int | None]) -> list[int]:
    """Primary keys read from stored rows. The table types ``id`` as optional for inserts, but a stored
    row always has one."""
    return [i for i in ids if i is not None]

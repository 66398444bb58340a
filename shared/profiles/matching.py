"""Which Greenhouse candidate did our lost create make? A pure decision over what we sent and what exists.

A create whose outcome is unknown (timeout, 5xx, dropped connection) may or may not have made a record.
Given the candidates created in the time range around it (``HarvestClient.list_candidates_created``) and
the body we sent (:attr:`~shared.profiles.mapping.MappedCandidate.create`), :func:`match_created` names the
record, reports a tie, or says there is none:

1. the name must match: first and last name, each compared after Unicode NFKC normalisation, case folding
   and whitespace collapsing (:func:`~shared.profiles.mapping.normalise_name`); accents are kept, so
   ``José`` matches ``JOSÉ`` and ``Jose`` followed by U+0301 (combining acute) but not ``Jose``;
2. each same-name candidate scores one point per kind of attribute we sent that it carries too: a phone
   (decimal digits of any script only, the last 10), the company (normalised like names), a website or
   social link (without scheme, ``www.``, trailing slash; host case ignored), an email (case-insensitive);
3. exactly one candidate with the best score, at least 1: that candidate; two or more tied at it: ambiguous;
   a best score of 0 although we sent such attributes: not found (Greenhouse keeps what it was sent);
4. when we sent nothing but the name: exactly one same-name candidate is it (``name only``); several are
   ambiguous.

Imports Harvest's models only, never the client.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from shared.harvest.models import Candidate, CreateCandidate
from shared.profiles.mapping import normalise_name

PHONE_DIGITS = 10
"""Phones are compared on their last 10 digits (country codes and trunk prefixes vary)."""
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclass(frozen=True)
class CreatedMatch:
    """The outcome of :func:`match_created`.

    ``candidate_id``: the record our create made, else ``None``; ``ambiguous``: the ids tied for it
    (ascending; empty unless ambiguous); ``reason``: why, in words (no candidate data).
    """

    candidate_id: int | None
    ambiguous: tuple[int, ...] = ()
    reason: str = ""

    @property
    def found(self) -> bool:
        """Exactly one candidate is ours."""
        return self.candidate_id is not None


@dataclass(frozen=True)
class _Keys:
    """Comparable forms of one person's corroborating attributes, by kind."""

    phones: frozenset[str]
    company: str
    links: frozenset[str]
    emails: frozenset[str]

    def score(self, other: _Keys) -> int:
        """How many kinds of ``self`` (what we sent) ``other`` (a candidate) shares: 0 to 4."""
        return (
            bool(self.phones & other.phones)
            + bool(self.company and self.company == other.company)
            + bool(self.links & other.links)
            + bool(self.emails & other.emails)
        )

    def empty(self) -> bool:
        """Nothing to corroborate a name with."""
        return not (self.phones or self.company or self.links or self.emails)


def phone_key(value: str) -> str:
    """The last :data:`PHONE_DIGITS` decimal digits of a phone number, any script read as 0-9 (``""``: none)."""
    digits = "".join(str(unicodedata.decimal(ch)) for ch in value if ch.isdecimal())
    return digits[-PHONE_DIGITS:]


def link_key(value: str) -> str:
    """A URL without scheme, leading ``www.`` and trailing slashes, its host lower-cased; path case kept."""
    rest = _SCHEME.sub("", value.strip())
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    host, tail = rest[:cut].lower().removeprefix("www."), rest[cut:]
    return (host + tail).rstrip("/")


def email_key(value: str) -> str:
    """An email address compared case-insensitively."""
    return value.strip().casefold()


def _name_key(first: str | None, last: str | None) -> tuple[str, str] | None:
    if not first or not last:
        return None
    return normalise_name(first), normalise_name(last)


def _values(items: Iterable[dict[str, object]]) -> list[str]:
    """The string ``value`` of each contact member (others are skipped: responses are lenient)."""
    return [v for item in items if isinstance(v := item.get("value"), str)]


def _keys(phones: Iterable[str], company: str | None, links: Iterable[str], emails: Iterable[str]) -> _Keys:
    return _Keys(
        phones=frozenset(k for p in phones if (k := phone_key(p))),
        company=normalise_name(company or ""),
        links=frozenset(k for u in links if (k := link_key(u))),
        emails=frozenset(k for e in emails if (k := email_key(e))),
    )


def _sent_keys(sent: CreateCandidate) -> _Keys:
    return _keys(
        (p.value for p in sent.phone_numbers),
        sent.company,
        [*(w.value for w in sent.website_addresses), *(s.value for s in sent.social_media_addresses)],
        (e.value for e in sent.email_addresses),
    )


def _candidate_keys(cand: Candidate) -> _Keys:
    return _keys(
        _values(cand.phone_numbers),
        cand.company,
        _values(cand.website_addresses) + _values(cand.social_media_addresses),
        _values(cand.email_addresses),
    )


def _same_name(sent: CreateCandidate, candidates: Iterable[Candidate]) -> list[Candidate]:
    """Candidates named as we sent, each id once, by id."""
    wanted = _name_key(sent.first_name, sent.last_name)
    unique = {c.id: c for c in candidates if wanted is not None and _name_key(c.first_name, c.last_name) == wanted}
    return [unique[cid] for cid in sorted(unique)]


def match_created(sent: CreateCandidate, candidates: Iterable[Candidate]) -> CreatedMatch:
    """The candidate among ``candidates`` that our create ``sent`` made, by the rules in the module docstring."""
    same = _same_name(sent, candidates)
    if not same:
        return CreatedMatch(None, reason="no candidate has the name we sent")
    ours = _sent_keys(sent)
    if ours.empty():
        if len(same) == 1:
            return CreatedMatch(same[0].id, reason="name only: the one candidate with the name we sent")
        ids = tuple(c.id for c in same)
        return CreatedMatch(None, ids, f"name only: {len(ids)} candidates have the name we sent")
    scores = {c.id: ours.score(_candidate_keys(c)) for c in same}
    best = max(scores.values())
    if best == 0:
        return CreatedMatch(None, reason=f"{len(same)} candidate(s) have the name but none shares what we sent")
    top = tuple(cid for cid, score in scores.items() if score == best)
    if len(top) == 1:
        return CreatedMatch(top[0], reason=f"name and {best} corroborating attribute kind(s)")
    return CreatedMatch(None, top, f"{len(top)} candidates tie with the name and {best} corroborating kind(s)")

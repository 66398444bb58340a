"""Profiles: what the sourcing platform sends us, and how it maps onto Greenhouse records.

Owns the input model (:mod:`shared.profiles.model`: one JSON profile a line, validated field by field,
bad lines reported by line number, id and field) and the mapping to Harvest request bodies
(:mod:`shared.profiles.mapping`: names, emails, dummy emails, educations against Greenhouse's option
lists, employments, tags, the profile note), and which record created around a lost create is ours
(:mod:`shared.profiles.matching`: name plus phone, company, links, emails). Pure functions over values: no
I/O, no store, no queue.
May import :mod:`shared.harvest.models` (the request shapes it builds), :mod:`shared.settings` and
:mod:`shared.errors`; nothing above them.
"""

from shared.profiles.model import Profile

__all__ = ["Profile"]

"""Profiles: what the sourcing platform sends us, and how it maps onto Greenhouse records.

Owns the input model (:mod:`shared.profiles.model`: one JSON profile a line, validated field by field,
bad lines reported by line number, id and field) and the mapping to Harvest request bodies
(:mod:`shared.profiles.mapping`: names, emails, dummy emails, educations against Greenhouse's option
lists, employments, tags, the profile note), which record created around a lost create is ours
(:mod:`shared.profiles.matching`: name plus phone, company, links, emails), what a read-back must show
(:mod:`shared.profiles.readback`), the field report (:mod:`shared.profiles.report`), a connection's field
settings (:mod:`shared.profiles.fields`) and the resume PDF (:mod:`shared.profiles.resume`, laying out what
:mod:`shared.profiles.resume_content` says, with the fonts :mod:`shared.profiles.fontplan` picks from those
:mod:`shared.profiles.fonts` prepares, found by :mod:`shared.profiles.fontfiles` in the font folders once per
process). Otherwise pure functions over values: no network, no store, no queue.
May import :mod:`shared.harvest.models` (the request shapes it builds), :mod:`shared.settings` and
:mod:`shared.errors`; nothing above them.
"""

from shared.profiles.model import Profile

__all__ = ["Profile"]

"""The Harvest v3 boundary: everything that knows Greenhouse's paths, fields, auth and limits.

Owns the typed client (:mod:`~shared.harvest.client`: one method per call the export makes, over
:mod:`~shared.harvest.transport`: base URL, retries of safe calls, pagination), OAuth2 client credentials
(:mod:`~shared.harvest.auth`), the request and response models (:mod:`~shared.harvest.models`), reading
Harvest's answers into errors and rate-limit facts (:mod:`~shared.harvest.ratelimit`), the per-credential
limiter shared through Redis (:mod:`~shared.harvest.limiter`), the scopes each call needs
(:mod:`~shared.harvest.scopes`), and the strict local fake of Harvest v3 (:mod:`shared.harvest.sandbox`),
which imports nothing of the client side. May import only :mod:`shared.settings` and
:mod:`shared.errors`; the rest of ``shared`` builds on it.
"""

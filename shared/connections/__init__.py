"""Connections: a customer's Greenhouse credential, acting user and source, checked and stored.

Owns the connect workflow (:mod:`~shared.connections.service`: check, then store; list, load,
disconnect), the side-effect-free checks behind it (:mod:`~shared.connections.checks`: credential,
scopes, the user whose email matches exactly, the source), export targets (:mod:`~shared.connections.targets`),
the cached Greenhouse lookups shared through Redis (:mod:`~shared.connections.lookups`: jobs, pools,
options, tags), the encryption of stored secrets (:mod:`~shared.connections.crypto`) and Greenhouse's own
webhooks coming in (:mod:`~shared.connections.webhooks`: verified with the connection's secret, applied once).
May import :mod:`shared.harvest`, :mod:`shared.store`, :mod:`shared.profiles`, settings and errors;
never the queue, the process wiring, ``producer`` or ``workers``.
"""

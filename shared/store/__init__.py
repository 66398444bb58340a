"""The result store: every export recorded in SQL (SQLite by default, PostgreSQL in production).

Owns the tables and statuses (:mod:`~shared.store.models`), the typed progress of an item and the read
models handed to callers, the engine and Alembic migrations (:mod:`~shared.store.db`,
``migrations/``), the batch and item repository with the claim-with-a-lease (:mod:`~shared.store.repo`)
and the person ledger that gives one creator per profile (:mod:`~shared.store.people`). Every function
opens its own short transaction, so no transaction spans a Harvest call. May import only
:mod:`shared.settings` and :mod:`shared.errors`: it knows nothing of Harvest, profiles or the queue.
"""

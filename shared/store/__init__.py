"""The result store: every export recorded in SQL (SQLite by default, PostgreSQL in production).

Owns the tables and statuses (:mod:`~shared.store.models`), the typed progress of an item and the read
models handed to callers, the engine and Alembic migrations (:mod:`~shared.store.db`, ``migrations/``),
batches (:mod:`~shared.store.batches`), the item lifecycle with the claim-with-a-lease
(:mod:`~shared.store.items`), publication and recovery queries (:mod:`~shared.store.publication`), markers
(:mod:`~shared.store.markers`), read-back delays (:mod:`~shared.store.visibility`) and the person ledger that
gives one creator per profile (:mod:`~shared.store.people`), with what Greenhouse's webhooks tell it: each event
once, a deleted record forgotten (:mod:`~shared.store.ledger`). The store is the only writer of its tables: every
change of an item's, a batch's or a connection's state is one of its functions, the one place where the
callback to the platform is written in the same transaction (:mod:`~shared.store.outbox`). Every function
opens its own short transaction, so no transaction spans a Harvest call. May import only
:mod:`shared.settings` and :mod:`shared.errors`: it knows nothing of Harvest, profiles or the queue.
"""

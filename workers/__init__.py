"""The workers: Celery processes that export one candidate per task.

Read top down: :mod:`~workers.tasks` (thin tasks: parse the message, call the flow, turn its outcome into
ack or retry) > :mod:`~workers.app` (the Celery app ``celery -A workers.app`` loads, and the per-process
signals) > :mod:`~workers.runtime` (the process's resources, built after fork) > :mod:`~workers.export`
(the plain export flow of one item) > :mod:`~workers.parts` (the parts added to a record) >
:mod:`~workers.item_run` (one run's item state and its store writes) > :mod:`~workers.outcome`. Imports
``shared`` only, never ``producer``.
"""

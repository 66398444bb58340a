"""The producer: what the platform's backend and operators call to record and enqueue exports.

Read top down: :mod:`~producer.cli` (the ``ghexport`` entry point) > :mod:`~producer.cli_run` (worker,
sandbox, demo) | :mod:`~producer.cli_api` (``api``, ``tenants``, ``api-keys``) > :mod:`~producer.cli_connections`
| :mod:`~producer.cli_export` (commands) > :mod:`~producer.cli_base` (what commands share) | :mod:`~producer.demo`
| :mod:`~producer.web` (the HTTP API) > :mod:`~producer.api` (the service layer the CLI, the Python API and
the HTTP API all call). Imports ``shared`` only: worker
commands start ``celery -A workers.app`` as a subprocess, and tasks are sent by name.
"""

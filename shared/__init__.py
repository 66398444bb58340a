"""Common package of greenhouse-export: every contract shared by the producer and the workers.

``producer`` and ``workers`` import from ``shared`` and never from each other. Inside, one package per
domain, layered; a module may import the layers below its own, never above (import-linter holds this,
see ``[tool.importlinter]`` in pyproject.toml and docs/architecture.md)::

    resources        the one place that wires a process: engine, Redis, Celery app, Harvest clients
    connections      a customer's credential, user and source: connect checks, targets, lookups, crypto
    queue            Celery configuration, task names, the ids-only message, publishing, embedded broker
    profiles         the platform's profile and its mapping onto Harvest request bodies
    store            the SQL result store: tables, typed item progress, repositories, migrations
    harvest          the Harvest v3 boundary: client, auth, limiter, models, and the strict sandbox
    settings, errors one typed settings object; one error tree rooted at ExporterError
"""

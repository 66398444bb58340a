"""The queue: how work travels from the producer to the workers.

Owns the Celery application's configuration (:mod:`~shared.queue.celery_app`: late acks, prefetch 1,
countdowns kept below the visibility timeout), the stable task and queue names
(:mod:`~shared.queue.names`), the versioned ids-only message (:mod:`~shared.queue.messages`), bulk
publishing of recorded items (:mod:`~shared.queue.publishing`), pacing: items parked per credential
and released by the workers' pacers (:mod:`~shared.queue.pacing`), and the embedded redis-server used as
the default broker (:mod:`~shared.queue.embedded`). May import :mod:`shared.store`, the Harvest limiter
(whose Redis state holds the parked items), settings and errors; never the Harvest client, connections,
the process wiring, ``producer`` or ``workers`` (no task code: tasks are sent by name).
"""

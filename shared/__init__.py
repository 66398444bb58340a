"""Common package of greenhouse-export: every contract shared by the producer and the workers.

Settings, task and queue names, the queue message, the Harvest v3 client and its errors, the sandbox,
the rate limiter and the result store live here. ``producer`` and ``workers`` import from ``shared``
and never from each other.
"""

"""Stable task and queue names. The producer sends by name, so moving a module never orphans a message."""

EXPORT_ITEM_TASK = "ghexport.export_item"
"""Exports one item (one candidate of one batch). Argument: a :class:`shared.queue.messages.ExportItemMessage` dict."""

RECOVER_TASK = "ghexport.recover"
"""Periodic: re-enqueues items the broker lost (still ``queued`` long after publishing)."""

EXPORT_QUEUE = "ghexport.export"
"""Dedicated queue, so throttled exports never starve other tasks of a worker's prefetch slots."""

"""Task messages: small, versioned, ids only (no PII, no secrets: Flower shows task arguments)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class ExportItemMessage(BaseModel):
    """Argument of :data:`shared.queue.names.EXPORT_ITEM_TASK`: export the store's item ``item_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    item_id: int

    def to_task_args(self) -> dict[str, object]:
        """The JSON-serialisable dict sent as the task's only positional argument."""
        return self.model_dump()

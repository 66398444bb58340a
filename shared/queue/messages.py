"""Task messages: small, versioned, ids only (no PII, no secrets: Flower shows task arguments)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ExportItemMessage(BaseModel):
    """Argument of :data:`shared.queue.names.EXPORT_ITEM_TASK`: export the store's item ``item_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    item_id: int
    credit: int = Field(default=0, ge=0)
    """Harvest requests reserved for this item's next step when its credential's pacer released it
    (:mod:`shared.queue.pacing`); 0: not paced, the item asks for admission itself."""

    def to_task_args(self) -> dict[str, object]:
        """The JSON-serialisable dict sent as the task's only positional argument (no ``credit`` when 0)."""
        return self.model_dump(exclude={"credit"} if self.credit == 0 else None)

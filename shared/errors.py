"""Errors of our own (not Harvest's): bad input, bad configuration, refused requests.

Each carries a message meant for the operator or the platform: it names the record and field at fault
and never includes a secret.
"""

from __future__ import annotations


class UserError(Exception):
    """A request that cannot be carried out as given; the message says what to change."""


class ConfigurationError(UserError):
    """A missing or invalid setting (``GHX_SECRET_KEY`` outside the demo, an unknown connection...)."""


class ConnectionNotFound(UserError):
    """No connection of that name (or it was removed)."""


class TargetNotAllowed(UserError):
    """The export target is not allowed by the connection (prospects only, pools disabled) or is invalid
    (job not open, stage outside its pool)."""


class PublishFailed(UserError):
    """The batch is recorded but its tasks could not all be handed to the broker. Nothing is lost: the
    unpublished items stay ``queued`` and ``ghexport recover`` (or the periodic recovery) sends them."""

    def __init__(self, batch_id: str, reason: str) -> None:
        super().__init__(
            f"batch {batch_id} is recorded, but its tasks could not be published ({reason}); they are sent by "
            "`ghexport recover` (or a worker started with --beat) once the broker is reachable"
        )
        self.batch_id = batch_id

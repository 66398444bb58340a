"""ItemProgress reads every layout the worker has stored, and writes that same layout, key for key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from shared.store.progress import ItemProgress, NumberedPart, NumberedProgress, RecordOrigin

LEGACY: dict[str, Any] = {
    # an item as the previous version stored it, with every key it ever wrote
    "record": "email_match",
    "unreadable_since": "2027-01-01T12:00:00+00:00",
    "application_sent": True,
    "educations": {"1": 501, "2": None},
    "educations_sent": ["1", "2"],
    "employments": {"1": 601},
    "employments_sent": ["1", "10", "2"],  # sorted as strings, as it wrote them
    "tags": {"Backend": 701, "Rust Fans": None},
    "note": None,
}


def test_a_legacy_row_loads_typed_and_is_stored_back_unchanged() -> None:
    progress = ItemProgress.from_stored(LEGACY)

    assert progress.record is RecordOrigin.EMAIL_MATCH
    assert progress.unreadable_since == datetime(2027, 1, 1, 12, tzinfo=UTC)
    assert progress.application_sent is True
    assert progress.educations == NumberedProgress(done={1: 501, 2: None}, sent=frozenset({1, 2}))
    assert progress.numbered(NumberedPart.EMPLOYMENTS).sent == {1, 2, 10}
    assert progress.tags == {"Backend": 701, "Rust Fans": None}
    assert (progress.note_sent, progress.note_id) == (True, None)
    assert progress.to_stored() == LEGACY


@pytest.mark.parametrize(
    ("stored", "sent", "note_id"),
    [({}, False, None), ({"note": None}, True, None), ({"note": 42}, True, 42)],
    ids=["absent: not sent", "null: sent, outcome unknown", "id: sent"],
)
def test_the_three_note_states(stored: dict[str, Any], sent: bool, note_id: int | None) -> None:
    progress = ItemProgress.from_stored(stored)
    assert (progress.note_sent, progress.note_id) == (sent, note_id)
    assert progress.to_stored() == stored


def test_nothing_stored_is_nothing_sent() -> None:
    nothing: tuple[dict[str, Any] | None, ...] = (None, {})
    for stored in nothing:
        progress = ItemProgress.from_stored(stored)
        assert progress == ItemProgress()
        assert progress.origin is RecordOrigin.CREATED  # before origins were stored, only creates had records
    assert ItemProgress().to_stored() == {}


def test_updates_write_the_same_layout() -> None:
    progress = (
        ItemProgress()
        .with_record(RecordOrigin.CREATED)
        .with_numbered(NumberedPart.EDUCATIONS, NumberedProgress().with_sent(1).with_done(1, 501))
        .with_tag("Backend", None)
        .with_note_sent()
    )
    assert progress.to_stored() == {
        "record": "created",
        "educations": {"1": 501},
        "educations_sent": ["1"],
        "tags": {"Backend": None},
        "note": None,
    }
    assert progress.with_note_id(9).to_stored()["note"] == 9
    assert "note" not in progress.without_note().to_stored()


def test_the_first_unreadable_time_is_kept() -> None:
    first, later = datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC)
    progress = ItemProgress().with_unreadable_since(first).with_unreadable_since(later)
    assert progress.unreadable_since == first


def test_keys_of_a_newer_version_are_kept() -> None:
    stored = {"record": "created", "synced_parts": {"x": 1}}
    assert ItemProgress.from_stored(stored).to_stored() == stored


@pytest.mark.parametrize(
    "stored",
    [{"record": "guessed"}, {"educations": {"one": 1}}, {"tags": {"Backend": "x"}}, {"unreadable_since": "soon"}],
)
def test_a_malformed_value_is_refused(stored: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        ItemProgress.from_stored(stored)


def test_progress_is_immutable() -> None:
    progress = ItemProgress()
    with pytest.raises(pydantic.ValidationError):
        progress.note_sent = True

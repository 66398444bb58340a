"""The sync window: four hours for exports in Greenhouse's peak hours (08:00-22:00 America/New_York),
the shorter off-peak one otherwise, right on both sides of a daylight-saving change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.settings import SyncSettings
from shared.store.sync import in_peak_hours, sync_window_s

CFG = SyncSettings(peak_window_s=14_400, offpeak_window_s=1_800)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "peak"),
    [
        # Spring forward, 2026-03-08 02:00 EST -> 03:00 EDT. 12:30 UTC is 07:30 EST the day before...
        (utc(2026, 3, 7, 12, 30), False),
        (utc(2026, 3, 7, 13, 0), True),  # 08:00 EST: peak starts (UTC-5)
        # ...and 08:30 EDT the day after: the same UTC time is peak once the clocks moved.
        (utc(2026, 3, 9, 12, 30), True),
        (utc(2026, 3, 9, 11, 59), False),  # 07:59 EDT (UTC-4)
        (utc(2026, 3, 9, 1, 59), True),  # 21:59 EDT on the 8th
        (utc(2026, 3, 9, 2, 0), False),  # 22:00 EDT: peak has ended
        # Fall back, 2026-11-01 02:00 EDT -> 01:00 EST. 12:30 UTC is 08:30 EDT the day before...
        (utc(2026, 10, 31, 12, 30), True),
        # ...and 07:30 EST the day after: the same UTC time is off peak.
        (utc(2026, 11, 2, 12, 30), False),
        (utc(2026, 11, 2, 13, 0), True),  # 08:00 EST
        (utc(2026, 11, 2, 2, 59), True),  # 21:59 EST on the 1st
        (utc(2026, 11, 2, 3, 0), False),  # 22:00 EST
    ],
)
def test_peak_hours_follow_new_york_local_time(moment: datetime, peak: bool) -> None:
    assert in_peak_hours(moment) is peak
    assert sync_window_s(moment, CFG) == (14_400 if peak else 1_800)


def test_a_naive_timestamp_is_utc() -> None:
    assert in_peak_hours(datetime(2026, 3, 9, 12, 30)) is True  # as the database may return it
    assert in_peak_hours(datetime(2026, 11, 2, 12, 30)) is False


def test_the_off_peak_window_cannot_be_longer_than_the_peak_one() -> None:
    with pytest.raises(ValidationError, match="offpeak_window_s"):
        SyncSettings(peak_window_s=60, offpeak_window_s=120)
    with pytest.raises(ValidationError, match="budget_share"):
        SyncSettings(budget_share=0)

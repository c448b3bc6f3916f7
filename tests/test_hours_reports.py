"""Early closes in the report clock (issue #10.13): an after-the-close report on an NYSE
half day (13:00) counts as published at that close, and its fast-poll window opens 30
minutes before it, not at 15:30."""

from __future__ import annotations

from datetime import UTC, date, datetime

from service.market import NEW_YORK, EarningsEvent, ReportTime
from service.schedule import earnings_window

HALF_DAY = date(2026, 11, 27)  # the day after Thanksgiving: NYSE closes at 13:00


def test_an_amc_report_on_a_half_day_counts_from_the_13_00_close() -> None:
    event = EarningsEvent("LUMN", HALF_DAY, ReportTime.AMC)
    assert event.published_at == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    normal = EarningsEvent("LUMN", date(2026, 11, 24), ReportTime.AMC)
    assert normal.published_at == datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
    bmo = EarningsEvent("LUMN", HALF_DAY, ReportTime.BMO)
    assert bmo.published_at == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)


def test_the_amc_window_of_a_half_day_opens_before_its_close() -> None:
    start, end = earnings_window(EarningsEvent("LUMN", HALF_DAY, ReportTime.AMC))
    assert start == datetime(2026, 11, 27, 12, 30, tzinfo=NEW_YORK)
    assert end == datetime(2026, 11, 28, 10, 0, tzinfo=NEW_YORK)
    start, _ = earnings_window(EarningsEvent("LUMN", date(2026, 11, 24), ReportTime.AMC))
    assert start == datetime(2026, 11, 24, 15, 30, tzinfo=NEW_YORK)

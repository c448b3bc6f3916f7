"""What is due: report windows and poll intervals."""

from datetime import UTC, date, datetime, timedelta

import pytest

from service.market import EarningsEvent, ReportTime
from service.schedule import earnings_due, earnings_window, in_earnings_window, is_due

FEB3 = date(2026, 2, 3)


@pytest.mark.parametrize(
    ("kind", "start_utc", "end_utc"),
    [
        (ReportTime.BMO, datetime(2026, 2, 3, 11, 0), datetime(2026, 2, 3, 17, 0)),
        (ReportTime.AMC, datetime(2026, 2, 3, 20, 30), datetime(2026, 2, 4, 15, 0)),
        (ReportTime.UNKNOWN, datetime(2026, 2, 3, 11, 0), datetime(2026, 2, 4, 15, 0)),
    ],
)
def test_report_windows_follow_the_report_time(
    kind: ReportTime, start_utc: datetime, end_utc: datetime
) -> None:
    start, end = earnings_window(EarningsEvent("LUMN", FEB3, kind))
    assert (start, end) == (start_utc.replace(tzinfo=UTC), end_utc.replace(tzinfo=UTC))


def test_the_window_closes_once_the_figures_are_in() -> None:
    now = datetime(2026, 2, 3, 21, 5, tzinfo=UTC)
    assert in_earnings_window(EarningsEvent("LUMN", FEB3, ReportTime.AMC), now)
    assert not in_earnings_window(EarningsEvent("LUMN", FEB3, ReportTime.AMC, eps_actual=0.23), now)


def test_only_symbols_in_a_window_and_not_polled_recently_are_due() -> None:
    now = datetime(2026, 2, 3, 21, 5, tzinfo=UTC)
    events = {
        "LUMN": [EarningsEvent("LUMN", FEB3, ReportTime.AMC)],
        "PLTR": [EarningsEvent("PLTR", date(2026, 2, 9), ReportTime.AMC)],
        "EQIX": [EarningsEvent("EQIX", FEB3, ReportTime.AMC)],
    }
    last = {"EQIX": now - timedelta(seconds=10)}
    assert earnings_due(events, last, now, timedelta(seconds=30)) == ["LUMN"]
    assert earnings_due(events, last, now + timedelta(seconds=20), timedelta(seconds=30)) == [
        "EQIX",
        "LUMN",
    ]


def test_is_due() -> None:
    now = datetime(2026, 2, 3, tzinfo=UTC)
    assert is_due(None, now, timedelta(seconds=60))
    assert not is_due(now - timedelta(seconds=59), now, timedelta(seconds=60))
    assert is_due(now - timedelta(seconds=60), now, timedelta(seconds=60))

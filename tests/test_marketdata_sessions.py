"""`price_at_report` uses the NYSE calendar (issue #10.13): started after a report, the
daemon takes the previous close carried by the first quote of the first session after it,
and that session skips holidays (Good Friday, Thanksgiving) as well as weekends; a quote
of any later session does not carry the price before the report."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from service.market import NEW_YORK, EarningsEvent, Quote, ReportTime
from service.marketdata import MarketData


def report(day: date, time: ReportTime) -> EarningsEvent:
    return EarningsEvent("LUMN", day, time, 2026, 1, eps_estimate=-0.21, eps_actual=0.23)


def first_quote(data: MarketData, day: date, prev_close: float) -> None:
    traded = datetime(day.year, day.month, day.day, 9, 31, tzinfo=NEW_YORK).astimezone(UTC)
    data.apply_quotes({"LUMN": Quote("LUMN", 7.0, prev_close=prev_close, time=traded)}, traded)


def after(event: EarningsEvent, session: date, prev_close: float = 8.46) -> dict[str, float]:
    data = MarketData()
    data.apply_events([event], ["LUMN"], event.date, event.date)
    first_quote(data, session, prev_close)
    return data.report_prices.get("LUMN", {})


@pytest.mark.parametrize(
    ("reported", "session"),
    [
        (date(2026, 4, 2), date(2026, 4, 6)),  # Thursday evening before Good Friday -> Monday
        (date(2026, 11, 25), date(2026, 11, 27)),  # eve of Thanksgiving -> Friday (half day)
        (date(2026, 2, 6), date(2026, 2, 9)),  # Friday evening -> Monday
        (date(2026, 2, 3), date(2026, 2, 4)),
    ],
)
def test_after_an_amc_report_the_next_nyse_session_carries_the_price(reported, session):
    assert after(report(reported, ReportTime.AMC), session) == {"2026Q1": 8.46}


@pytest.mark.parametrize(
    ("reported", "later"),
    [
        (date(2026, 2, 3), date(2026, 2, 5)),  # Wednesday was the session after
        (date(2026, 11, 24), date(2026, 11, 27)),  # Wednesday Nov 25 was
        (date(2026, 4, 2), date(2026, 4, 7)),  # Monday after Easter was
    ],
)
def test_a_later_sessions_previous_close_is_not_the_price_before_the_report(reported, later):
    assert after(report(reported, ReportTime.AMC), later) == {}


def test_a_bmo_report_dated_on_a_holiday_counts_from_the_next_session() -> None:
    good_friday = date(2026, 4, 3)
    assert after(report(good_friday, ReportTime.BMO), date(2026, 4, 6)) == {"2026Q1": 8.46}
    assert after(report(date(2026, 2, 3), ReportTime.BMO), date(2026, 2, 3)) == {"2026Q1": 8.46}

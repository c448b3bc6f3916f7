"""`price_at_open` and `gap_pct` (issue #13, item 5): the open of the first NYSE regular
session after a report's publication, against `price_at_report`. An amc report's gap is
the next trading day's open (a Friday's is Monday's, one before Good Friday is Monday's
too), a bmo report's that morning's open; a pre-market quote never sets it, a later day's
quote neither, and the stored form of the last known data still reads old JSON."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from service.hours import is_trading_day
from service.market import NEW_YORK, EarningsEvent, Quote, ReportTime, variables
from service.marketdata import MarketData
from service.rules.testfile import load_tests
from service.ruletests import report_lines, run_test
from tests.rules.conftest import load


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK).astimezone(UTC)


def report(day: date, time: ReportTime) -> EarningsEvent:
    return EarningsEvent("LUMN", day, time, 2025, 4, eps_estimate=-0.21, eps_actual=0.23)


def quote(data: MarketData, at: datetime, price: float, open: float, prev: float) -> None:
    q = Quote("LUMN", price, prev_close=prev, time=at, open=open)
    data.apply_quotes({"LUMN": q}, at)


def market(event: EarningsEvent) -> MarketData:
    data = MarketData()
    data.apply_events([event], ["LUMN"], event.date, event.date)
    return data


def gap(data: MarketData, now: datetime) -> tuple[object, object, object]:
    seen = variables(data.snapshot("LUMN"), now)
    return seen["price_at_report"], seen["price_at_open"], seen["gap_pct"]


@pytest.mark.parametrize(
    ("reported", "session"),
    [
        (date(2026, 2, 3), date(2026, 2, 4)),  # LUMN Q4 2025: Tuesday amc -> Wednesday
        (date(2026, 2, 6), date(2026, 2, 9)),  # Friday amc -> Monday (weekend)
        (date(2026, 4, 2), date(2026, 4, 6)),  # Thursday amc -> Good Friday closed -> Monday
        (date(2026, 7, 2), date(2026, 7, 6)),  # Thursday amc -> July 3 (observed) -> Monday
        (date(2026, 11, 25), date(2026, 11, 27)),  # eve of Thanksgiving -> Friday (half day)
    ],
)
def test_an_amc_reports_gap_is_the_open_of_the_next_nyse_session(
    reported: date, session: date
) -> None:
    closed = (date(2026, 4, 3), date(2026, 7, 3), date(2026, 11, 26))
    assert not any(is_trading_day(d) for d in closed)  # the holidays package's NYSE days
    event = report(reported, ReportTime.AMC)
    assert event.first_open == ny(session, 9, 30)
    data = market(event)
    quote(data, ny(reported, 15, 59), 8.00, open=8.10, prev=8.20)  # before the report
    assert gap(data, ny(reported, 16, 30)) == (8.00, None, None)
    # after-hours and the next pre-market: the quote's open is still the report day's
    quote(data, ny(reported, 18, 0), 7.20, open=8.10, prev=8.20)
    quote(data, ny(session, 8, 0), 7.10, open=8.10, prev=8.00)
    assert gap(data, ny(session, 9, 0)) == (8.00, None, None)
    quote(data, ny(session, 9, 31), 7.30, open=7.20, prev=8.00)
    _at_report, at_open, gap_pct = gap(data, ny(session, 9, 32))
    assert at_open == 7.20
    assert gap_pct == pytest.approx(-10.0)
    quote(data, ny(session, 10, 0), 7.50, open=7.25, prev=8.00)  # a later, other open
    assert gap(data, ny(session, 10, 1))[1:] == (7.20, pytest.approx(-10.0))


def test_a_bmo_reports_gap_is_that_mornings_open_never_a_pre_market_price() -> None:
    day = date(2026, 2, 4)  # a Wednesday
    event = report(day, ReportTime.BMO)
    assert event.first_open == ny(day, 9, 30)
    data = market(event)
    quote(data, ny(day, 8, 0), 10.00, open=9.50, prev=9.80)  # pre-market: price_at_report
    quote(data, ny(day, 9, 15), 10.40, open=9.50, prev=9.80)
    assert gap(data, ny(day, 9, 20)) == (10.40, None, None)
    quote(data, ny(day, 9, 31), 11.44, open=11.44, prev=9.80)
    assert gap(data, ny(day, 9, 32))[1:] == (11.44, pytest.approx(10.0))


def test_a_bmo_report_dated_on_a_holiday_gaps_at_the_next_session() -> None:
    event = report(date(2026, 4, 3), ReportTime.BMO)  # Good Friday
    assert event.first_open == ny(date(2026, 4, 6), 9, 30)


def test_the_gap_is_unknown_when_its_session_was_missed_or_the_open_is_unknown() -> None:
    event = report(date(2026, 2, 3), ReportTime.AMC)
    data = market(event)
    quote(data, ny(date(2026, 2, 3), 15, 59), 8.00, open=8.10, prev=8.20)
    quote(data, ny(date(2026, 2, 5), 9, 31), 7.00, open=7.10, prev=7.30)  # Thursday: too late
    assert gap(data, ny(date(2026, 2, 5), 9, 32)) == (8.00, None, None)
    other = market(event)
    no_open = Quote("LUMN", 7.3, prev_close=8.0, time=ny(date(2026, 2, 4), 9, 31))  # Nasdaq
    other.apply_quotes({"LUMN": no_open}, ny(date(2026, 2, 4), 9, 31))
    assert gap(other, ny(date(2026, 2, 4), 9, 32)) == (8.00, None, None)


def test_the_open_price_survives_the_stored_form_and_old_json_still_loads() -> None:
    event = report(date(2026, 2, 3), ReportTime.AMC)
    data = market(event)
    quote(data, ny(date(2026, 2, 3), 15, 59), 8.00, open=8.10, prev=8.20)
    quote(data, ny(date(2026, 2, 4), 9, 31), 7.30, open=7.20, prev=8.00)
    back = MarketData.from_json(data.to_json())
    assert back.open_prices == {"LUMN": {"2025Q4": (date(2026, 2, 4), 7.20)}}
    assert gap(back, ny(date(2026, 2, 4), 9, 32))[1] == 7.20
    assert back.quotes["LUMN"].open == 7.20
    old = json.loads(data.to_json())
    del old["open_prices"]
    for row in old["quotes"]:
        del row["open"]
    restored = MarketData.from_json(json.dumps(old))
    assert restored.open_prices == {}
    assert restored.quotes["LUMN"].open is None
    assert gap(restored, ny(date(2026, 2, 4), 9, 32)) == (8.00, None, None)


def test_a_report_whose_date_moves_has_no_gap_until_its_new_first_session_opens() -> None:
    event = report(date(2026, 2, 3), ReportTime.AMC)
    data = market(event)
    quote(data, ny(date(2026, 2, 3), 15, 59), 8.00, open=8.10, prev=8.20)
    quote(data, ny(date(2026, 2, 4), 9, 31), 7.30, open=7.20, prev=8.00)
    assert gap(data, ny(date(2026, 2, 4), 9, 32))[1] == 7.20
    moved = EarningsEvent("LUMN", date(2026, 2, 10), ReportTime.AMC, 2025, 4, eps_estimate=-0.21)
    data.apply_events([moved], ["LUMN"], date(2026, 2, 1), date(2026, 2, 28))
    assert data.snapshot("LUMN").open_prices == {}
    quote(data, ny(date(2026, 2, 11), 9, 31), 7.00, open=6.90, prev=7.40)
    assert data.snapshot("LUMN").open_prices == {"2025Q4": 6.90}


def test_a_rule_test_series_open_gives_the_gap_over_a_weekend() -> None:
    # Friday 2026-02-06 amc (21:00 UTC); hourly steps from 19:30 UTC: the open of every
    # step until Monday's session is stale (8.1), Monday 14:30 UTC (09:30 New York, step
    # 67) brings the session's open 7.2: -10 % from the 8.0 before the report.
    text = (
        "rule_files: [r.yaml]\ntests:\n  - name: t\n    start: 2026-02-06T19:30:00Z\n"
        "    interval: 1h\n"
        '    series: {LUMN: {price: "8x2 7.1x65 7.3", open: "8.1x67 7.2"}}\n'
        "    earnings:\n"
        "      LUMN:\n"
        "        - {date: 2026-02-06, time: amc, fiscal_period: 2025Q4, eps_estimate: -0.21,\n"
        "           eps_actual: 0.23}\n"
        "    expect:\n"
        "      - {at: 67h, rule: gap-down, symbol: LUMN, message: 'LUMN gap -10%'}\n"
    )
    (test,) = load_tests(text, source="t.yaml").tests
    rules = load(
        "rules:\n  - name: gap-down\n    symbols: [LUMN]\n    when: gap_pct < -5\n"
        "    message: '{{ symbol }} gap {{ gap_pct | round(1) }}%'\n"
    )
    outcome = run_test(test, [rules])
    assert outcome.passed, report_lines(outcome)

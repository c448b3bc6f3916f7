"""Merging provider data into the last known data."""

from datetime import UTC, date, datetime, timedelta

from service.market import EarningsEvent, PriceTargets, Quote, ReportTime, variables
from service.marketdata import MarketData

FEB3 = date(2026, 2, 3)


def lumn(**kw: object) -> EarningsEvent:
    fields: dict = {
        "symbol": "LUMN",
        "date": FEB3,
        "time": ReportTime.AMC,
        "fiscal_year": 2025,
        "fiscal_quarter": 4,
        "eps_estimate": -0.21,
        "revenue_estimate": 3.08e9,
    }
    fields.update(kw)
    return EarningsEvent(**fields)


def at(hour: int, minute: int = 0, day: int = 3) -> datetime:
    return datetime(2026, 2, day, hour, minute, tzinfo=UTC)


def test_events_in_the_window_are_replaced_and_older_ones_kept() -> None:
    data = MarketData()
    old = lumn(date=date(2025, 11, 4), fiscal_year=2025, fiscal_quarter=3, eps_actual=0.1)
    data.events["LUMN"] = (old,)
    assert data.apply_events([lumn()], ["LUMN"], date(2026, 2, 1), date(2026, 5, 1)) == {"LUMN"}
    assert data.events["LUMN"] == (old, lumn())
    assert data.apply_events([lumn()], ["LUMN"], date(2026, 2, 1), date(2026, 5, 1)) == set()


def test_a_re_dated_row_of_the_same_fiscal_period_replaces_the_old_date() -> None:
    data = MarketData()
    data.apply_events(
        [lumn(date=date(2026, 1, 28))], ["LUMN"], date(2026, 1, 27), date(2026, 1, 29)
    )
    data.apply_events([lumn()], ["LUMN"], date(2026, 2, 2), date(2026, 2, 4))
    assert [e.date for e in data.events["LUMN"]] == [FEB3]


def test_a_reported_figure_is_never_taken_back_by_a_row_without_it() -> None:
    data = MarketData()
    window = (date(2026, 2, 2), date(2026, 2, 4))
    data.apply_events([lumn(eps_actual=0.23, revenue_actual=3.041e9)], ["LUMN"], *window)
    data.apply_events([lumn()], ["LUMN"], *window)
    assert data.events["LUMN"][0].eps_actual == 0.23 and data.events["LUMN"][0].reported


def test_a_quote_without_a_price_keeps_the_last_known_one() -> None:
    data = MarketData()
    assert data.apply_quotes({"LUMN": Quote("LUMN", 8.46)}, at(20)) == {"LUMN"}
    assert data.apply_quotes({"LUMN": Quote("LUMN", None)}, at(21)) == set()
    assert data.quotes["LUMN"].price == 8.46


def test_the_price_at_report_is_the_last_price_before_publication() -> None:
    data = MarketData()
    data.apply_events([lumn()], ["LUMN"], date(2026, 2, 2), date(2026, 2, 4))
    data.apply_quotes({"LUMN": Quote("LUMN", 8.50, time=at(20, 30))}, at(20, 31))
    data.apply_quotes({"LUMN": Quote("LUMN", 8.46, time=at(21, 0))}, at(21, 1))  # 16:00 ET
    data.apply_quotes(
        {"LUMN": Quote("LUMN", 6.63, prev_close=8.46, time=at(20, 0, day=4))}, at(20, 1, day=4)
    )
    assert data.report_prices["LUMN"] == {"2025Q4": 8.46}
    data.apply_events([lumn(eps_actual=0.23)], ["LUMN"], date(2026, 2, 2), date(2026, 2, 4))
    values = variables(data.snapshot("LUMN"), at(20, 2, day=4))
    assert round(values["move_since_report_pct"], 2) == -21.63  # type: ignore[arg-type]


def test_started_after_an_amc_report_the_next_sessions_previous_close_is_used() -> None:
    data = MarketData()
    data.apply_events([lumn(eps_actual=0.23)], ["LUMN"], date(2026, 2, 2), date(2026, 2, 4))
    data.apply_quotes(
        {"LUMN": Quote("LUMN", 6.42, prev_close=8.46, time=at(16, 0, day=4))}, at(16, 1, day=4)
    )
    assert data.report_prices["LUMN"] == {"2025Q4": 8.46}


def test_it_round_trips_through_json() -> None:
    data = MarketData()
    data.apply_events([lumn(eps_actual=0.23)], ["LUMN"], date(2026, 2, 2), date(2026, 2, 4))
    data.apply_quotes(
        {"LUMN": Quote("LUMN", 6.42, prev_close=8.46, time=at(16, 0, day=4))}, at(16, 1, day=4)
    )
    data.apply_targets({"LUMN": PriceTargets("LUMN", median=7.56, updated=at(12))})
    again = MarketData.from_json(data.to_json())
    assert again == data


# --- trades from the stream (issue #12.1) -------------------------------------------------
def test_a_trade_sets_the_price_and_a_late_older_one_never_moves_it_back() -> None:
    t0 = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)
    data = MarketData()
    data.apply_quotes({"LUMN": Quote("LUMN", 7.2, prev_close=8.46, time=t0)}, t0)
    assert data.apply_trades({"LUMN": (7.61, t0 + timedelta(seconds=2))}) == {"LUMN"}
    assert data.apply_trades({"LUMN": (7.00, t0 + timedelta(seconds=1))}) == set()
    assert data.apply_trades({"LUMN": (7.61, t0 + timedelta(seconds=2))}) == set()  # twice
    quote = data.quotes["LUMN"]
    assert (quote.price, quote.prev_close) == (7.61, 8.46)
    # A REST quote older than the trade brings its previous close, not its price.
    older = Quote("LUMN", 7.3, prev_close=8.40, day_high=8.5, day_low=7.1, time=t0)
    assert data.apply_quotes({"LUMN": older}, t0 + timedelta(seconds=3)) == {"LUMN"}
    quote = data.quotes["LUMN"]
    assert (quote.price, quote.prev_close, quote.day_high) == (7.61, 8.40, 8.5)
    assert quote.time == t0 + timedelta(seconds=2)

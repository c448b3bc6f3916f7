"""The urgency order of streaming and polling (service/urgency.py): report window first,
then the distance of the price to a level, then the stalest."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from service.market import EarningsEvent, PriceTargets, Quote, ReportTime
from service.marketdata import MarketData
from service.urgency import level_distance, price_levels, rank
from tests.rules.conftest import load

NOW = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)  # 10:00 New York, a Wednesday


def ruleset(*rules: tuple[str, str]):  # type: ignore[no-untyped-def]
    body = "".join(
        f"  - {{name: r{i}, symbols: [{s}], when: '{w}'}}\n" for i, (s, w) in enumerate(rules)
    )
    return load("rules:\n" + body)


def quote(data: MarketData, symbol: str, price: float, age: float, **extra: float) -> None:
    data.quotes[symbol] = Quote(symbol, price, time=NOW - timedelta(seconds=age), **extra)  # type: ignore[arg-type]


def test_the_levels_a_condition_compares_price_with() -> None:
    assert [level.constant for level in price_levels("price > 7.56 and 8 < price <= 9")] == [
        7.56,
        8.0,
        9.0,
    ]
    (level,) = price_levels("price >= prev_close * 1.05")
    assert level.constant is None and level.names == {"prev_close"}
    assert price_levels("reported and eps_actual < eps_estimate") == ()


def test_the_distance_to_the_nearest_level_in_percent_of_the_price() -> None:
    rules = ruleset(
        ("LUMN", "price > 8.00 or price < target_median"),
        ("LUMN", "price >= prev_close * 1.05"),
    )
    data = MarketData()
    quote(data, "LUMN", 7.60, 0, prev_close=7.50)
    data.targets["LUMN"] = PriceTargets("LUMN", median=7.41)
    # 8.00: 5.3 %; 7.41: 2.5 %; 7.875: 3.6 %
    assert level_distance(rules, data, "LUMN", NOW) == abs(7.60 - 7.41) / 7.60 * 100
    assert level_distance(rules, MarketData(), "LUMN", NOW) is None  # no price yet


def test_report_window_then_distance_then_staleness() -> None:
    rules = ruleset(
        ("FAR", "price > 100"),
        ("NEAR", "price > 10.1"),
        ("NEARER", "price < 9.95"),
        ("REPORT", "price > 100"),
        ("STALE", "change_pct > 5"),
        ("FRESH", "change_pct > 5"),
        ("NEVER", "change_pct > 5"),
    )
    data = MarketData()
    for symbol in ("FAR", "NEAR", "NEARER", "REPORT"):
        quote(data, symbol, 10.0, 1)
    quote(data, "STALE", 10.0, 600)
    quote(data, "FRESH", 10.0, 5)
    # REPORT reported before the open today: its window (06:00-12:00) is open.
    data.events["REPORT"] = (
        EarningsEvent("REPORT", date(2026, 2, 4), ReportTime.BMO, eps_estimate=1.0, eps_actual=1.2),
    )
    order = rank(sorted(rules.symbols), rules, data, NOW)
    assert order == ["REPORT", "NEARER", "NEAR", "FAR", "NEVER", "STALE", "FRESH"]
    # As prices move, the ranking follows: FAR comes within 0.1 % of its level.
    quote(data, "FAR", 99.9, 0)
    assert rank(sorted(rules.symbols), rules, data, NOW)[:2] == ["REPORT", "FAR"]
    # After the window closes, REPORT is just far from its level.
    later = NOW + timedelta(hours=3)
    assert rank(sorted(rules.symbols), rules, data, later).index("REPORT") > 1

"""Non-finite values are unknown (issue #10.10, the data part): an estimate of 1e-320 must
not make `eps_surprise_pct` infinite, and no variable a rule sees, derived or not, is NaN
or infinite, whatever the snapshot holds."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime

from service.market import EarningsEvent, Quote, ReportTime, Snapshot, pct_change, variables
from service.marketdata import MarketData

NOW = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)
TINY = EarningsEvent(
    "LUMN",
    date(2026, 2, 3),
    ReportTime.AMC,
    2025,
    4,
    eps_estimate=1e-320,  # a denormal: finite, and dividing by it overflows
    eps_actual=0.23,
    revenue_estimate=5e-324,
    revenue_actual=3.041e9,
)


def test_a_denormal_estimate_gives_an_unknown_surprise_not_infinity() -> None:
    assert math.isinf((0.23 - 1e-320) / 1e-320 * 100)  # what the old formula gave
    snapshot = Snapshot(
        "LUMN",
        quote=Quote("LUMN", 6.42, prev_close=1e-310),
        events=(TINY,),
        report_prices={TINY.report_key: 5e-324},
    )
    seen = variables(snapshot, NOW)
    assert seen["eps_surprise_pct"] is None and seen["revenue_surprise_pct"] is None
    assert seen["change_pct"] is None and seen["move_since_report_pct"] is None
    assert seen["eps_estimate"] == 1e-320  # the input itself is a finite number
    assert all(not isinstance(v, float) or math.isfinite(v) for v in seen.values())
    json.dumps(seen, default=str, allow_nan=False)  # a strict encoder takes every value


def test_non_finite_inputs_are_unknown_wherever_they_come_from() -> None:
    # A snapshot restored from an old state file may hold what json.loads made of Infinity.
    saved = MarketData(
        quotes={"LUMN": Quote("LUMN", 8.46, prev_close=math.inf, day_high=math.nan)},
        events={"LUMN": (EarningsEvent("LUMN", date(2026, 2, 3), eps_estimate=-math.inf),)},
        report_prices={"LUMN": {"2026-02-03": math.nan}},
    )
    seen = variables(saved.snapshot("LUMN"), NOW)
    assert seen["prev_close"] is None and seen["day_high"] is None and seen["change_pct"] is None
    assert seen["eps_estimate"] is None and seen["price_at_report"] is None
    assert seen["price"] == 8.46


def test_pct_change_is_unknown_unless_finite() -> None:
    assert pct_change(0.23, 1e-320) is None
    assert pct_change(1e308, -1e308) is None  # 2e308 overflows
    assert pct_change(-0.17, -0.1521) == (-0.17 + 0.1521) / 0.1521 * 100

"""Non-finite values are unknown (issue #10.10, the data part): an estimate of 1e-320 must
not make `eps_surprise_pct` infinite, and no variable a rule sees, derived or not, is NaN
or infinite, whatever the snapshot holds."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, date, datetime

from service.market import (
    EarningsEvent,
    PriceTargets,
    Quote,
    ReportTime,
    Snapshot,
    pct_change,
    variables,
)
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


def test_each_non_finite_input_alone_is_unknown_with_or_without_a_report() -> None:
    """`variables` checks only the numbers it takes as they are from the snapshot when
    nothing else can be non-finite: each of them, alone NaN or infinite, is unknown."""
    event = EarningsEvent("LUMN", date(2026, 2, 3), ReportTime.AMC, 2025, 4, 0.2, 0.23, 3e9, 3.1e9)
    fields = {
        "quote": ["price", "prev_close", "day_high", "day_low"],
        "targets": ["median", "mean", "high", "low"],
        "event": ["eps_estimate", "eps_actual", "revenue_estimate", "revenue_actual"],
        "report_prices": ["2025Q4"],
        "open_prices": ["2025Q4"],
    }
    for bad in (math.nan, math.inf, -math.inf):
        for part, names in fields.items():
            for name in names:
                for with_event in (True, False):
                    if part in ("event", "report_prices", "open_prices") and not with_event:
                        continue
                    quote = Quote("LUMN", 8.46, 8.0, 8.6, 8.3)
                    targets = PriceTargets("LUMN", 9.0, 9.1, 12.0, 6.0)
                    ev, reports, opens = event, {"2025Q4": 8.1}, {"2025Q4": 8.2}
                    if part == "quote":
                        quote = replace(quote, **{name: bad})
                    elif part == "targets":
                        targets = replace(targets, **{name: bad})
                    elif part == "event":
                        ev = replace(ev, **{name: bad})
                    elif part == "report_prices":
                        reports = {name: bad}
                    else:
                        opens = {name: bad}
                    snapshot = Snapshot(
                        "LUMN",
                        quote=quote,
                        events=(ev,) if with_event else (),
                        targets=targets,
                        report_prices=reports,
                        open_prices=opens,
                    )
                    seen = variables(snapshot, NOW)
                    floats = [v for v in seen.values() if isinstance(v, float)]
                    assert all(math.isfinite(v) for v in floats), (part, name, bad)
                    assert len(floats) > 5  # the others are still known

"""Finnhub's duplicate calendar rows (issue #10.12), end to end through the engine: with
CHPT's real rows of 2022-03-02 the 2022Q4 report is the one rules see, so its EPS miss
(-0.17 against -0.1521) fires a miss rule, where the 2021Q4 row read as a +84.6 % beat."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import respx

from service.engine import evaluate
from service.market import Quote, Snapshot, variables
from service.marketdata import MarketData
from tests.providers.conftest import FINNHUB, make_finnhub, ok
from tests.rules.conftest import load

MISS = """rules:
  - name: chpt-miss
    symbols: [CHPT]
    when: reported and eps_surprise_pct < 0
  - name: chpt-beat
    symbols: [CHPT]
    when: reported and eps_surprise_pct > 0
"""
NOW = datetime(2022, 3, 3, 15, 0, tzinfo=UTC)


@pytest.mark.anyio
async def test_chpt_real_rows_choose_2022q4_and_a_miss_rule_fires(clock):
    finnhub = make_finnhub(clock)
    try:
        with respx.mock(assert_all_mocked=True) as router:
            router.get(f"{FINNHUB}/calendar/earnings").mock(
                ok("finnhub", "calendar_duplicates.json")
            )
            events = await finnhub.earnings(date(2022, 3, 1), date(2022, 3, 31), ["CHPT"])
    finally:
        await finnhub.aclose()
    data = MarketData()
    data.apply_events(events, ["CHPT"], date(2022, 3, 1), date(2022, 3, 31))
    data.apply_quotes({"CHPT": Quote("CHPT", 13.5, prev_close=14.0, time=NOW)}, NOW)
    snapshot: Snapshot = data.snapshot("CHPT")
    seen = variables(snapshot, NOW)
    assert seen["fiscal_period"] == "2022Q4" and seen["eps_estimate"] == -0.1521
    assert seen["earnings_time"] == "amc"
    surprise = seen["eps_surprise_pct"]
    assert isinstance(surprise, float) and surprise == pytest.approx(-11.77, abs=0.01)

    result = evaluate(load(MISS), {"CHPT": snapshot}, {}, NOW)
    assert [a.rule for a in result.alerts] == ["chpt-miss"]

"""Issue #13 items 1-2: the frozen consensus and the date lifecycle of a report, kept per
symbol and fiscal period in MarketData and in its stored JSON."""

import json
from datetime import UTC, date, datetime

from service.engine import evaluate
from service.market import ReportTime, variables
from service.marketdata import MarketData
from tests.rules.conftest import load
from tests.test_marketdata import FEB3, lumn

START, END = date(2026, 1, 1), date(2026, 5, 1)
AFTER = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)
BEFORE = datetime(2026, 1, 20, 15, 0, tzinfo=UTC)


def seen(data: MarketData, *rows: object) -> None:
    for row in rows:
        data.apply_events([row], ["LUMN"], START, END)  # type: ignore[list-item]


def values(data: MarketData, now: datetime = AFTER) -> dict:
    return variables(data.snapshot("LUMN"), now)


def test_consensus_seen_before_the_actuals_is_frozen_and_the_latest_kept_apart() -> None:
    data = MarketData()
    seen(
        data,
        lumn(eps_estimate=-0.27),
        lumn(eps_estimate=-0.21),  # revised before the report: follows
        lumn(eps_estimate=-0.21, eps_actual=0.23, revenue_actual=3.041e9),
        lumn(eps_estimate=-0.10, revenue_estimate=3.0e9, eps_actual=0.23, revenue_actual=3.041e9),
    )
    got = values(data)
    assert got["eps_estimate"] == -0.21 and got["eps_estimate_latest"] == -0.10
    assert got["revenue_estimate"] == 3.08e9 and got["revenue_estimate_latest"] == 3.0e9
    assert round(got["eps_surprise_pct"], 2) == 209.52
    assert round(got["revenue_surprise_pct"], 2) == -1.27
    assert got["consensus_frozen"] is True


def test_a_report_first_seen_with_its_actuals_freezes_the_first_estimates_seen() -> None:
    data = MarketData()
    seen(
        data,
        lumn(eps_estimate=-0.21, eps_actual=0.23),
        lumn(eps_estimate=-0.10, eps_actual=0.23),
    )
    got = values(data)
    assert got["eps_estimate"] == -0.21 and got["eps_estimate_latest"] == -0.10
    assert got["consensus_frozen"] is False


def test_a_pending_report_uses_the_latest_consensus_and_is_not_frozen() -> None:
    data = MarketData()
    seen(data, lumn(eps_estimate=-0.27), lumn(eps_estimate=-0.21))
    got = values(data, BEFORE)
    assert got["eps_estimate"] == got["eps_estimate_latest"] == -0.21
    assert got["consensus_frozen"] is False


def test_a_null_estimate_before_the_actuals_keeps_the_last_one_known() -> None:
    data = MarketData()
    seen(data, lumn(eps_estimate=-0.21), lumn(eps_estimate=None), lumn(eps_actual=0.23))
    assert values(data)["eps_estimate"] == -0.21


def test_the_date_and_time_lifecycle() -> None:
    data = MarketData()
    seen(data, lumn())
    got = values(data, BEFORE)
    assert got["earnings_date_changed"] is False and got["earnings_date_previous"] is None
    assert got["earnings_time_changed"] is False and got["earnings_time_previous"] is None
    seen(data, lumn(date=date(2026, 2, 5)), lumn(date=date(2026, 2, 5)))
    got = values(data, BEFORE)
    assert got["earnings_date"] == date(2026, 2, 5) and got["earnings_date_changed"] is True
    assert got["earnings_date_previous"] == FEB3
    seen(data, lumn(date=date(2026, 2, 10), time=ReportTime.BMO))
    got = values(data, BEFORE)
    assert got["earnings_date_previous"] == date(2026, 2, 5)
    assert got["earnings_time_changed"] is True and got["earnings_time_previous"] == "amc"
    seen(data, lumn())  # back to the first date and time: no longer changed
    got = values(data, BEFORE)
    assert got["earnings_date_changed"] is False and got["earnings_date_previous"] == date(
        2026, 2, 10
    )


def test_the_bookkeeping_survives_a_restart_through_the_stored_json() -> None:
    data = MarketData()
    seen(
        data,
        lumn(eps_estimate=-0.21),
        lumn(date=date(2026, 2, 5), eps_estimate=-0.21, eps_actual=0.23),
    )
    restored = MarketData.from_json(data.to_json())
    assert restored.reports == data.reports
    seen(restored, lumn(date=date(2026, 2, 5), eps_estimate=-0.5, eps_actual=0.23))
    got = variables(restored.snapshot("LUMN"), datetime(2026, 2, 6, 15, tzinfo=UTC))
    assert got["eps_estimate"] == -0.21 and got["eps_estimate_latest"] == -0.5
    assert got["consensus_frozen"] is True and got["earnings_date_previous"] == FEB3


def test_json_saved_before_the_bookkeeping_still_loads() -> None:
    data = MarketData()
    seen(data, lumn(eps_actual=0.23))
    raw = json.loads(data.to_json())
    del raw["reports"]
    old = MarketData.from_json(json.dumps(raw))
    assert old.reports == {} and old.events == data.events
    got = values(old)
    assert got["eps_estimate"] == -0.21 and got["consensus_frozen"] is None
    seen(old, lumn(eps_estimate=-0.1, eps_actual=0.23))  # first seen now: frozen at that
    assert values(old)["eps_estimate"] == -0.1 and values(old)["consensus_frozen"] is False


RULES = """\
rules:
  - name: moved
    symbols: [LUMN]
    when: earnings_date_changed and not reported
  - name: tomorrow
    symbols: [LUMN]
    when: not reported and hours_to_earnings <= 24
"""


def test_each_move_of_the_date_is_a_new_event_and_the_reminder_follows_it() -> None:
    ruleset = load(RULES)
    data = MarketData()
    states: dict = {}
    keys: list[str] = []

    def run(now: datetime) -> None:
        result = evaluate(ruleset, data.snapshots(["LUMN"]), states, now)
        states.update(result.states)
        keys.extend(a.dedup_key for a in result.alerts)

    seen(data, lumn())
    run(BEFORE)
    seen(data, lumn(date=date(2026, 2, 5)))
    run(BEFORE)
    run(BEFORE)  # the same date again: nothing
    seen(data, lumn(date=date(2026, 2, 10)))
    run(BEFORE)
    run(datetime(2026, 2, 9, 22, 0, tzinfo=UTC))  # the day before the final date
    assert keys == [
        "moved|LUMN|report:2025Q4|date:2026-02-05",
        "moved|LUMN|report:2025Q4|date:2026-02-10",
        "tomorrow|LUMN|report:2025Q4|date:2026-02-10",
    ]


def test_a_time_of_day_flip_alerts_once_per_flip() -> None:
    ruleset = load(
        "rules:\n  - name: flipped\n    symbols: [LUMN]\n"
        "    when: earnings_time_changed and not reported\n"
    )
    data = MarketData()
    states: dict = {}
    keys: list[str] = []
    for row in (lumn(), lumn(time=ReportTime.BMO), lumn(time=ReportTime.BMO), lumn()):
        seen(data, row)
        result = evaluate(ruleset, data.snapshots(["LUMN"]), states, BEFORE)
        states.update(result.states)
        keys.extend(a.dedup_key for a in result.alerts)
    assert keys == ["flipped|LUMN|report:2025Q4|time:bmo"]  # back to amc: not changed

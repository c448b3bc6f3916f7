"""The budget arithmetic of `earnwatch check --budget` (service/budget.py)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from service.budget import QUOTE_VARS, Counts, counts_of, provider_budget, rule_budget
from service.config import Settings
from service.pipeline import QUOTE_VARS as PIPELINE_QUOTE_VARS
from service.providers import PROVIDERS
from tests.rules.conftest import load


def settings(**values: object) -> Settings:
    return Settings.model_construct(
        **{
            "providers": "finnhub",
            "price_poll": timedelta(seconds=60),
            "off_hours_poll": timedelta(minutes=15),
            "calendar_refresh": timedelta(hours=6),
            "http_timeout": timedelta(seconds=10),
            "stream": "",
            "stream_symbols": 50,
            "finnhub_api_key": None,
            **values,
        }
    )


def test_finnhub_one_symbol_a_call_against_60_a_minute() -> None:
    # 60 price symbols: 60 calls a pass; 390 passes in 6.5 h + 70 in 17.5 h; the calendar
    # is 31 three-day windows (fewer than 60 per-symbol calls) every 6 h; 5 target symbols.
    plan = provider_budget(PROVIDERS["finnhub"], settings(), Counts(60, 60, 5))
    assert plan.per_minute == 60
    assert plan.minute_limit == pytest.approx(60 * 60 / 62)
    assert plan.per_day == 60 * (390 + 70) + (31 + 5) * 4
    assert not plan.over_day_limit  # no daily cap: paced instead
    assert plan.refresh == timedelta(seconds=62)
    assert "paced: each price refreshed every 62 s" in plan.line()
    # Few symbols: the calendar is read per symbol.
    assert provider_budget(PROVIDERS["finnhub"], settings(), Counts(2, 2, 0)).per_day == (
        2 * 460 + 2 * 4
    )


def test_fmp_batches_of_100_against_250_a_day_says_which_setting_to_change() -> None:
    plan = provider_budget(PROVIDERS["fmp"], settings(), Counts(150, 150, 150))
    # 2 calls a pass (100 + 50); 14 seven-day windows of calendar; no targets on FMP.
    assert plan.per_day == 2 * 460 + 14 * 4
    assert plan.day_limit == pytest.approx(250)
    assert plan.over_day_limit
    # 250 - 56 (calendar) - 140 (off hours) leaves 54 calls for 6.5 h of 2-call passes.
    assert plan.advice == "set EARNWATCH_PRICE_POLL to at least 14.4 min"
    fits = provider_budget(
        PROVIDERS["fmp"], settings(price_poll=timedelta(minutes=15)), Counts(150, 150, 0)
    )
    assert fits.per_day == 2 * (26 + 70) + 56 and not fits.over_day_limit
    hopeless = provider_budget(
        PROVIDERS["fmp"], settings(off_hours_poll=timedelta(minutes=1)), Counts(150, 150, 0)
    )
    assert hopeless.advice is not None and "EARNWATCH_OFF_HOURS_POLL" in hopeless.advice


def test_nasdaq_batches_of_25_at_one_a_second() -> None:
    plan = provider_budget(PROVIDERS["nasdaq"], settings(), Counts(60, 60, 60))
    # 3 calls a pass; one calendar call per weekday of 92 days (66); no targets.
    assert plan.per_minute == 3
    assert plan.per_day == 3 * 460 + 66 * 4
    assert plan.minute_limit == 60 and plan.day_limit == 86_400
    assert not plan.over_day_limit


def test_the_whole_budget_counts_streamed_and_polled_symbols() -> None:
    from pydantic import SecretStr

    plan = rule_budget(
        settings(providers="finnhub,fmp", finnhub_api_key=SecretStr("k")), Counts(60, 60, 0)
    )
    assert [p.name for p in plan.providers] == ["finnhub", "fmp"]
    assert plan.streamed == 50
    lines = plan.lines()
    assert lines[1].startswith("fmp (failover, if it served every call): ")
    assert lines[2].startswith("report windows (finnhub): ")  # the first carrying earnings
    assert "50 stream (EARNWATCH_STREAM_SYMBOLS 50), 10 polled only" in lines[3]
    assert lines[-1] == "worst price age, polled: 2.2 min"  # 2 x 62 s + 10 s
    assert rule_budget(settings(), Counts(60, 60, 0)).streamed == 0  # no key: no stream


def test_counts_of_a_rule_set() -> None:
    assert QUOTE_VARS == PIPELINE_QUOTE_VARS
    ruleset = load(
        "rules:\n"
        "  - {name: a, symbols: [LUMN, AAPL], when: price > 1}\n"
        "  - {name: b, symbols: [MSFT], when: reported}\n"
        "  - {name: c, symbols: [AAPL], when: price > target_median}\n"
    )
    assert counts_of(ruleset) == Counts(symbols=3, price_symbols=2, target_symbols=1)


def test_confirmation_calls_are_counted_per_report_on_the_second_provider() -> None:
    on = settings(providers="finnhub,fmp", confirm="2", earnings_poll=timedelta(seconds=30))
    plan = rule_budget(on, Counts(10, 10, 0))
    assert plan.confirmation is not None
    cost = plan.confirmation
    assert (cost.first, cost.second) == ("finnhub", "fmp")
    # FMP: one page per 7-day window; 10 min at 30 s: 20 reads; 2 h of disagreement: 240
    assert (cost.agreed, cost.alone, cost.disagreed) == (1, 20, 240)
    line = next(x for x in plan.lines() if x.startswith("confirmation"))
    assert "fmp is asked 1 call(s) per report" in line and "up to 20 while only finnhub" in line
    nasdaq = rule_budget(settings(providers="fmp,nasdaq", confirm="2"), Counts(10, 10, 0))
    assert nasdaq.confirmation is not None and nasdaq.confirmation.per_poll == 3  # 3 days
    assert rule_budget(settings(providers="finnhub,fmp"), Counts(10, 10, 0)).confirmation is None
    assert not any(
        x.startswith("confirmation") for x in rule_budget(settings(), Counts(1, 1, 0)).lines()
    )


def test_report_windows_cost_a_read_each_poll_up_to_the_whole_window() -> None:
    from service.budget import window_cost
    from service.market import ReportTime
    from service.schedule import window_length

    assert {t: window_length(t) for t in ReportTime} == {
        ReportTime.BMO: timedelta(hours=6),  # 06:00-12:00
        ReportTime.AMC: timedelta(hours=18, minutes=30),  # 15:30 to 10:00 the next day
        ReportTime.DMH: timedelta(hours=28),  # 06:00 to 10:00 the next day
        ReportTime.UNKNOWN: timedelta(hours=28),
    }
    # Finnhub: one read a poll, every 30 s: 720 over a bmo window, 2,220 over an amc one;
    # no daily cap, so no advice.
    finnhub = settings(earnings_poll=timedelta(seconds=30))
    budget = rule_budget(finnhub, Counts(3, 3, 0))
    cost = budget.windows
    assert cost is not None and (cost.per_poll, cost.bmo, cost.amc) == (1, 720, 2220)
    assert budget.lines()[1] == (
        "report windows (finnhub): 1 call(s) every EARNWATCH_EARNINGS_POLL (30 s) while a"
        " watched report's window is open and its figures are not out: up to 720 for a bmo"
        " report (06:00-12:00 New York), 2220 for an amc one (15:30 to 10:00 the next day)"
    )
    # FMP: 250 a day. 5 symbols polled every 15 min leave some room; an amc window at
    # 30 s would take 2,220 calls: the setting that fits the room is named.
    fmp = settings(
        providers="fmp",
        price_poll=timedelta(minutes=15),
        earnings_poll=timedelta(seconds=30),
    )
    plan = provider_budget(PROVIDERS["fmp"], fmp, Counts(5, 5, 0))
    room = 250 - plan.per_day
    assert room > 0
    cost = window_cost(fmp, [plan])
    assert cost is not None and cost.room == pytest.approx(room)
    poll = math.ceil(18.5 * 3600 / room)
    assert cost.line().endswith(
        f"; OVER fmp's daily limit beside the calls above (room for {room:.0f}) if the figures"
        f" come late: set EARNWATCH_EARNINGS_POLL to at least {poll / 60:.1f} min"
    )
    slow = window_cost(settings(providers="fmp", earnings_poll=timedelta(minutes=30)), [plan])
    assert slow is not None and slow.amc == 37 and "OVER" not in slow.line()
    # no provider carrying earnings figures: nothing to count
    assert window_cost(settings(providers="nosuch"), []) is None

"""`/healthz` freshness (issue #10.4): the refresh period a provider's budget allows, and
HealthState turning unhealthy when a watched symbol's price is older than a few periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.health import HealthState
from service.providers import prices_stale_after, quote_refresh_period

T0 = datetime(2026, 2, 3, 15, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_finnhub_free_tier_needs_about_n_seconds_for_n_symbols() -> None:
    period = quote_refresh_period(["finnhub"], 500, MINUTE)
    assert period == timedelta(seconds=500 * 62 / 60)  # 60 calls in 62 s: ~8.6 min
    assert quote_refresh_period(["finnhub"], 10, MINUTE) == MINUTE  # never under the poll


def test_batch_providers_need_a_call_per_batch() -> None:
    assert quote_refresh_period(["nasdaq"], 500, timedelta(seconds=1)) == timedelta(seconds=20)
    fmp = quote_refresh_period(["fmp", "finnhub"], 500, MINUTE)
    assert fmp == timedelta(seconds=5 * 86_400 / 250)  # 250 calls a day, 100 symbols a call
    assert quote_refresh_period(["replay"], 500, MINUTE) == MINUTE  # no budget
    assert quote_refresh_period(["finnhub"], 0, MINUTE) == MINUTE


def test_the_stale_window_is_three_periods_and_a_deadline() -> None:
    window = prices_stale_after(["finnhub"], 500, MINUTE, timedelta(seconds=10))
    assert window == 3 * timedelta(seconds=500 * 62 / 60) + timedelta(seconds=10)


def healthy(now: datetime) -> HealthState:
    health = HealthState(stale_after=timedelta(hours=3), started_at=now)
    health.scheduler_running = True
    health.mark_provider_success(now)
    return health


def test_one_symbol_not_answered_within_the_window_is_unhealthy() -> None:
    health = healthy(T0)
    window = timedelta(seconds=40)
    health.watch_prices(["AAPL", "SLOW"], window, T0)
    for step in range(1, 10):
        now = T0 + step * timedelta(seconds=10)
        health.mark_provider_success(now)  # other calls keep succeeding
        health.mark_prices(now, ["AAPL"])
        health.watch_prices(["AAPL", "SLOW"], window, now)
    ok, reason = health.check(T0 + timedelta(seconds=90))
    assert not ok and reason == "prices of 1 symbol(s) older than 40 s: SLOW"
    health.mark_prices(T0 + timedelta(seconds=95), ["SLOW"])
    assert health.check(T0 + timedelta(seconds=95)) == (True, "ok")


def test_a_newly_watched_symbol_and_a_shrinking_window_start_a_full_window() -> None:
    health = healthy(T0)
    health.watch_prices(["AAPL"], timedelta(minutes=45), T0)  # off hours: every 15 min
    open_ = T0 + timedelta(minutes=20)
    health.watch_prices(["AAPL", "MSFT"], timedelta(minutes=3), open_)  # the market opens
    assert health.check(open_ + timedelta(minutes=2)) == (True, "ok")
    assert health.stale_prices(open_ + timedelta(minutes=4)) == ["AAPL", "MSFT"]


@pytest.mark.parametrize("window", [None, timedelta(seconds=1)])
def test_no_watch_or_no_symbols_changes_nothing(window: timedelta | None) -> None:
    health = healthy(T0)
    health.watch_prices([], window, T0)
    assert health.check(T0 + timedelta(minutes=5)) == (True, "ok")


def test_a_standby_is_not_judged_and_a_new_leader_gets_a_full_window() -> None:
    health = healthy(T0)
    health.watch_prices(["AAPL"], timedelta(seconds=30), T0)
    health.set_leading(False, T0)
    assert health.check(T0 + timedelta(minutes=5)) == (True, "standby")
    health.set_leading(True, T0 + timedelta(minutes=5))
    health.watch_prices(["AAPL"], timedelta(seconds=30), T0 + timedelta(minutes=5))
    assert health.stale_prices(T0 + timedelta(minutes=5, seconds=20)) == []


def test_a_stream_down_while_rest_covers_is_degraded_not_failed() -> None:
    from datetime import UTC, datetime, timedelta

    from service.health import HealthState

    t0 = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)
    state = HealthState(timedelta(minutes=5), started_at=t0)
    state.scheduler_running = True
    state.mark_provider_success(t0)
    state.set_stream(True, t0)
    assert state.check(t0) == (True, "ok")
    state.set_stream(False, t0 + timedelta(seconds=1))
    state.set_stream(False, t0 + timedelta(seconds=9))  # the first time counts
    assert state.check(t0 + timedelta(seconds=10)) == (
        True,
        "ok (degraded: stream down since 2026-02-04T15:00:01+00:00)",
    )
    assert not state.check(t0 + timedelta(minutes=6))[0]  # stale prices fail, as ever
    state.set_stream(True, t0 + timedelta(seconds=11))
    assert state.check(t0 + timedelta(seconds=12)) == (True, "ok")

"""The NYSE calendar against the exchange's published lists, DST, and a property."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service import hours
from service.hours import (
    holidays,
    is_early_close,
    is_market_open,
    is_trading_day,
    next_open,
    next_trading_day,
    session,
    trading_day_on_or_after,
)

NYSE_2025 = {
    date(2025, 1, 1),
    date(2025, 1, 9),  # announced: national day of mourning for President Carter
    date(2025, 1, 20),
    date(2025, 2, 17),
    date(2025, 4, 18),
    date(2025, 5, 26),
    date(2025, 6, 19),
    date(2025, 7, 4),
    date(2025, 9, 1),
    date(2025, 11, 27),
    date(2025, 12, 25),
}
NYSE_2026 = {
    date(2026, 1, 1),
    date(2026, 1, 19),
    date(2026, 2, 16),
    date(2026, 4, 3),
    date(2026, 5, 25),
    date(2026, 6, 19),
    date(2026, 7, 3),
    date(2026, 9, 7),
    date(2026, 11, 26),
    date(2026, 12, 25),
}
NYSE_2027 = {
    date(2027, 1, 1),
    date(2027, 1, 18),
    date(2027, 2, 15),
    date(2027, 3, 26),
    date(2027, 5, 31),
    date(2027, 6, 18),
    date(2027, 7, 5),
    date(2027, 9, 6),
    date(2027, 11, 25),
    date(2027, 12, 24),
}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


@pytest.mark.parametrize(
    ("year", "expected"), [(2025, NYSE_2025), (2026, NYSE_2026), (2027, NYSE_2027)]
)
def test_holidays_match_the_published_nyse_list(year: int, expected: set[date]) -> None:
    assert holidays(year) == expected


def test_every_published_holiday_is_not_a_trading_day() -> None:
    for day in NYSE_2025 | NYSE_2026:
        assert not is_trading_day(day)
        assert session(day) is None


def test_new_year_on_saturday_is_not_observed_on_the_friday_before() -> None:
    # January 1 2022 was a Saturday; NYSE traded on Friday December 31 2021.
    assert date(2022, 1, 1).weekday() == 5
    assert is_trading_day(date(2021, 12, 31))
    assert date(2021, 12, 31) not in holidays(2021)
    assert not any(d.month == 1 and d.day <= 3 for d in holidays(2022))


def test_new_year_on_sunday_is_observed_on_monday() -> None:
    assert date(2023, 1, 2) in holidays(2023)
    assert not is_trading_day(date(2023, 1, 2))


def test_juneteenth_is_a_holiday_only_from_2022() -> None:
    assert is_trading_day(date(2021, 6, 18))
    assert date(2022, 6, 20) in holidays(2022)  # June 19 2022 was a Sunday


def test_christmas_on_saturday_is_observed_on_friday() -> None:
    assert not is_trading_day(date(2021, 12, 24))
    assert not is_early_close(date(2021, 12, 24))


def test_announced_closures_are_not_trading_days() -> None:
    assert not is_trading_day(date(2025, 1, 9))
    assert is_trading_day(date(2025, 1, 8))


def test_weekends_are_not_trading_days() -> None:
    assert not is_trading_day(date(2026, 2, 7))
    assert not is_trading_day(date(2026, 2, 8))
    assert is_trading_day(date(2026, 2, 9))


def test_past_closures_follow_the_rules_of_their_time() -> None:
    # MLK Day became a market holiday in 1998; hurricane Sandy closed two days in 2012.
    assert is_trading_day(date(1997, 1, 20)) and not is_trading_day(date(1998, 1, 19))
    assert not is_trading_day(date(2012, 10, 29)) and not is_trading_day(date(2012, 10, 30))
    assert not is_trading_day(date(2001, 9, 11)) and is_trading_day(date(2001, 9, 17))


def test_the_next_trading_day_skips_weekends_and_holidays() -> None:
    assert next_trading_day(date(2026, 4, 2)) == date(2026, 4, 6)  # Good Friday, weekend
    assert next_trading_day(date(2026, 11, 25)) == date(2026, 11, 27)  # Thanksgiving
    assert next_trading_day(date(2026, 2, 3)) == date(2026, 2, 4)
    assert trading_day_on_or_after(date(2026, 4, 3)) == date(2026, 4, 6)
    assert trading_day_on_or_after(date(2026, 2, 3)) == date(2026, 2, 3)


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 7, 3),
        date(2025, 11, 28),
        date(2025, 12, 24),
        date(2026, 11, 27),
        date(2026, 12, 24),
        date(2024, 7, 3),
        date(2024, 11, 29),
        date(2024, 12, 24),
    ],
)
def test_published_early_closes_close_at_13_00_new_york(day: date) -> None:
    assert is_early_close(day)
    hours_ = session(day)
    assert hours_ is not None
    assert hours_[1].astimezone(hours.NEW_YORK).hour == 13


def test_no_july_early_close_when_july_3_is_the_observed_holiday() -> None:
    assert not is_early_close(date(2026, 7, 2))
    assert not is_early_close(date(2026, 7, 3))
    closes = session(date(2026, 7, 2))
    assert closes is not None and closes[1] == utc(2026, 7, 2, 20, 0)


def test_winter_session_opens_at_14_30_utc_and_summer_at_13_30_utc() -> None:
    assert session(date(2026, 2, 3)) == (utc(2026, 2, 3, 14, 30), utc(2026, 2, 3, 21, 0))
    assert session(date(2026, 7, 6)) == (utc(2026, 7, 6, 13, 30), utc(2026, 7, 6, 20, 0))


def test_sessions_follow_the_dst_switch_on_the_monday_after() -> None:
    # DST began Sunday March 8 2026 and ends Sunday November 1 2026.
    assert session(date(2026, 3, 6)) == (utc(2026, 3, 6, 14, 30), utc(2026, 3, 6, 21, 0))
    assert session(date(2026, 3, 9)) == (utc(2026, 3, 9, 13, 30), utc(2026, 3, 9, 20, 0))
    assert session(date(2026, 10, 30)) == (utc(2026, 10, 30, 13, 30), utc(2026, 10, 30, 20, 0))
    assert session(date(2026, 11, 2)) == (utc(2026, 11, 2, 14, 30), utc(2026, 11, 2, 21, 0))


def test_market_is_open_from_the_open_until_just_before_the_close() -> None:
    assert not is_market_open(utc(2026, 2, 3, 14, 29, 59))
    assert is_market_open(utc(2026, 2, 3, 14, 30))
    assert is_market_open(utc(2026, 2, 3, 20, 59, 59))
    assert not is_market_open(utc(2026, 2, 3, 21, 0))


def test_market_open_accepts_any_timezone() -> None:
    new_york = datetime(2026, 2, 3, 9, 45, tzinfo=hours.NEW_YORK)
    tokyo = new_york.astimezone(timezone(timedelta(hours=9)))
    assert is_market_open(new_york)
    assert is_market_open(tokyo)


def test_market_is_closed_on_early_close_afternoons() -> None:
    assert is_market_open(utc(2026, 11, 27, 17, 59))
    assert not is_market_open(utc(2026, 11, 27, 18, 0))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_market_open(datetime(2026, 2, 3, 15, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_open(datetime(2026, 2, 3, 15, 0))


def test_next_open_before_the_bell_is_today() -> None:
    assert next_open(utc(2026, 2, 3, 12, 0)) == utc(2026, 2, 3, 14, 30)
    assert next_open(utc(2026, 2, 3, 14, 30)) == utc(2026, 2, 3, 14, 30)


def test_next_open_during_a_session_is_the_next_trading_day() -> None:
    assert next_open(utc(2026, 2, 3, 15, 0)) == utc(2026, 2, 4, 14, 30)


def test_next_open_skips_a_weekend_and_a_holiday() -> None:
    # Friday January 16 2026 after the close -> Tuesday January 20 (MLK Day on Monday).
    assert next_open(utc(2026, 1, 16, 22, 0)) == utc(2026, 1, 20, 14, 30)


def test_next_open_crosses_the_dst_switch() -> None:
    # Friday March 6 2026 after the close (EST) -> Monday March 9 at 09:30 EDT.
    assert next_open(utc(2026, 3, 6, 22, 0)) == utc(2026, 3, 9, 13, 30)


def test_next_open_over_easter_skips_good_friday() -> None:
    assert next_open(utc(2026, 4, 2, 21, 0)) == utc(2026, 4, 6, 13, 30)


aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 12, 31),
    timezones=st.just(UTC),
)


@given(aware_datetimes)
def test_open_market_implies_a_trading_day_and_a_moment_inside_its_session(
    now: datetime,
) -> None:
    if is_market_open(now):
        day = now.astimezone(hours.NEW_YORK).date()
        assert is_trading_day(day)
        hours_ = session(day)
        assert hours_ is not None
        assert hours_[0] <= now < hours_[1]


@given(aware_datetimes)
def test_next_open_is_a_session_open_not_before_now_with_no_session_skipped(
    now: datetime,
) -> None:
    opened = next_open(now)
    assert opened >= now
    day = opened.astimezone(hours.NEW_YORK).date()
    hours_ = session(day)
    assert hours_ is not None and hours_[0] == opened
    assert opened - now < timedelta(days=8)


@given(st.integers(min_value=1998, max_value=2100))  # the package's calendar ends in 2100
def test_every_year_has_eight_to_thirteen_closures_all_on_weekdays(year: int) -> None:
    days = holidays(year)
    # 8: a Saturday New Year's Day before Juneteenth existed; 13: 2001 (September 11).
    assert 8 <= len(days) <= 13
    assert all(d.weekday() < 5 for d in days)


def test_the_session_name_of_each_part_of_the_nyse_day() -> None:
    from service.hours import NEW_YORK, session_name

    def at(day: str, hh: int, mm: int = 0) -> datetime:
        return datetime.fromisoformat(f"{day}T{hh:02d}:{mm:02d}").replace(tzinfo=NEW_YORK)

    wednesday = "2026-02-04"
    assert session_name(at(wednesday, 3, 59)) == "closed"
    assert session_name(at(wednesday, 4)) == "pre"
    assert session_name(at(wednesday, 9, 29)) == "pre"
    assert session_name(at(wednesday, 9, 30)) == "regular"
    assert session_name(at(wednesday, 15, 59)) == "regular"
    assert session_name(at(wednesday, 16)) == "post"
    assert session_name(at(wednesday, 19, 59)) == "post"
    assert session_name(at(wednesday, 20)) == "closed"
    assert session_name(at("2026-02-07", 12)) == "closed"  # a Saturday
    assert session_name(at("2026-12-25", 12)) == "closed"  # Christmas
    assert session_name(at("2026-11-27", 13)) == "post"  # the day after Thanksgiving: 13:00
    assert session_name(at("2026-11-27", 17)) == "closed"

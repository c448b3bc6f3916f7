"""The one formatter of values shown to humans (service/figures.py)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest

from service.figures import UNKNOWN_TEXT, format_pct, format_value, money, shown_values
from service.market import Value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1234567, "0.1235"),
        (7.61, "7.61"),
        (7.0, "7"),
        (-0.05, "-0.05"),
        (-0.00001, "0"),
        (0.0, "0"),
        (999_999.5, "999999.5"),
        (1_000_000.0, "1M"),
        (1_234_000_000.0, "1.234B"),
        (-2_500_000.0, "-2.5M"),
        (3.041e12, "3.041T"),
        (42, "42"),
        (True, "true"),
        (False, "false"),
        (date(2026, 2, 3), "2026-02-03"),
        (datetime(2026, 2, 3, 21, 5, tzinfo=UTC), "2026-02-03T21:05:00+00:00"),
        ("2025Q4", "2025Q4"),
        (None, "n/a"),
        (math.nan, "n/a"),
        (math.inf, "n/a"),
        (-math.inf, "n/a"),
    ],
)
def test_format_value(value: Value, text: str) -> None:
    assert format_value(value) == text


def test_unknown_text_is_n_a() -> None:
    assert UNKNOWN_TEXT == "n/a"


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (209.52, 1, "+209.5%"),
        (-350.0, 1, "-350.0%"),
        (0.0, 2, "+0.00%"),
        (None, 1, "n/a"),
        (math.nan, 1, "n/a"),
        (math.inf, 1, "n/a"),
    ],
)
def test_format_pct(value: float | None, places: int, text: str) -> None:
    assert format_pct(value, places) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234.5, "$1,234.50"),
        (-12.5, "-$12.50"),
        (3_041_000_000.0, "$3.041B"),
        (-1_500_000.0, "-$1.5M"),
        (2e12, "$2T"),
        (None, "n/a"),
        (math.nan, "n/a"),
        (-math.inf, "n/a"),
    ],
)
def test_money(value: float | None, text: str) -> None:
    assert money(value) == text


def test_shown_values_are_sorted_by_name_with_unknown_as_n_a() -> None:
    values: dict[str, Value] = {"reported": True, "eps_actual": None, "change_pct": math.nan}
    assert shown_values(values) == [
        ("change_pct", "n/a"),
        ("eps_actual", "n/a"),
        ("reported", "true"),
    ]
    assert shown_values({}) == []

"""The series notation of rule tests (`service/rules/series.py`): values, `_`, repeats,
and bad tokens with their place."""

from datetime import timedelta

import pytest

from service.rules.series import SeriesError, format_offset, parse_series


def test_series_values_unknowns_and_repeats() -> None:
    assert parse_series("7.80 7.60 _ 7.5x3") == (7.8, 7.6, None, 7.5, 7.5, 7.5)
    assert parse_series("_x2 -1 +2.5 1e2 .5") == (None, None, -1.0, 2.5, 100.0, 0.5)
    assert parse_series("  8.46x6  ") == (8.46,) * 6
    assert parse_series("7\n8") == (7.0, 8.0)


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("7.5 abc 7", 1, 4, "'abc' is not a value"),
        ("7.5 7.5x", 1, 4, "'7.5x' is not a value"),
        ("7.5 7.5x0", 1, 4, "repeat a value at least once"),
        ("7.5 nan", 1, 4, "'nan' is not a value"),
        ("1e999", 1, 0, "'1e999' is not a finite number"),
        ("  7 8\n9 x", 2, 2, "'x' is not a value"),
        ("", 1, 0, "the series is empty"),
        ("1x200001", 1, 0, "at most 100,000 values"),
    ],
)
def test_bad_series_tokens_have_their_place(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(SeriesError) as caught:
        parse_series(text)
    assert (caught.value.line, caught.value.col) == (line, col)
    assert message in caught.value.message


def test_offsets_are_written_as_in_a_test() -> None:
    assert [format_offset(timedelta(seconds=s)) for s in (0, 30, 90, 300, 7200, 86400)] == [
        "0m",
        "30s",
        "90s",
        "5m",
        "2h",
        "1d",
    ]

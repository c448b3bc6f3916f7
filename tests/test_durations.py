"""Durations as users write them, and as settings take them: never an OverflowError."""

from datetime import timedelta

import pytest

from service.durations import parse_duration


def test_the_usual_durations_and_bare_seconds() -> None:
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration(" 1.5h ") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    assert parse_duration("90", bare_seconds=True) == timedelta(seconds=90)
    with pytest.raises(ValueError, match="invalid duration '90'"):
        parse_duration("90")


@pytest.mark.parametrize(
    ("text", "bare"),
    [
        ("99999999999999999999d", False),
        ("99999999999d", True),
        ("1e400", True),
        ("inf", True),
        ("9" * 400 + "s", False),
    ],
)
def test_a_huge_or_infinite_duration_is_a_value_error(text: str, bare: bool) -> None:
    with pytest.raises(ValueError, match="too long") as info:
        parse_duration(text, bare_seconds=bare)
    assert len(str(info.value)) < 120  # the text is cut, the line stays one line


def test_not_a_number_is_invalid() -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("nan", bare_seconds=True)

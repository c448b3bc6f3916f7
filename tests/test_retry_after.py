"""The one Retry-After parser and cap (service/retry_after.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from service.retry_after import RETRY_AFTER_CAP, retry_after

NOW = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)
LATER = "Wed, 04 Feb 2026 15:00:45 GMT"  # NOW + 45 s


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("86400", RETRY_AFTER_CAP),
        ("9" * 400, RETRY_AFTER_CAP),  # beyond a float: still a (huge) number of seconds
        (LATER, 45.0),
        ("Wed, 04 Feb 2026 16:00:00 +0100", 0.0),  # the same instant as NOW
        ("Wed, 04 Feb 2026 14:00:00 GMT", 0.0),  # already past
        ("Thu, 05 Feb 2026 15:00:00 GMT", RETRY_AFTER_CAP),
    ],
)
def test_seconds_and_dates(value: str, seconds: float) -> None:
    assert retry_after({"Retry-After": value}, now=NOW) == seconds


@pytest.mark.parametrize(
    "value", ["", "  ", "-5", "-0.5", "inf", "nan", "1e3", "+5", "1,5", "soon", "Wed, 31 Feb"]
)
def test_garbage_and_negative_numbers_are_no_retry_after(value: str) -> None:
    assert retry_after({"Retry-After": value}, now=NOW) is None


def test_no_header_is_none() -> None:
    assert retry_after({}, now=NOW) is None
    assert retry_after(httpx.Headers({"Date": LATER}), now=NOW) is None


def test_a_date_is_measured_against_the_responses_own_date_header() -> None:
    # The server's clock is a day behind ours: by its own Date, the wait is 30 s.
    headers = httpx.Headers(
        {"retry-after": "Tue, 03 Feb 2026 15:00:30 GMT", "date": "Tue, 03 Feb 2026 15:00:00 GMT"}
    )
    assert retry_after(headers, now=NOW) == 30.0
    assert retry_after(headers) == 30.0  # whatever our clock says


def test_without_a_readable_date_header_a_date_is_measured_against_now() -> None:
    assert retry_after({"RETRY-AFTER": LATER, "date": "yesterday"}, now=NOW) == 45.0
    east = NOW.astimezone(timezone(timedelta(hours=5)))
    assert retry_after({"retry-after": LATER}, now=east) == 45.0
    assert retry_after({"retry-after": LATER}, now=NOW.replace(tzinfo=None)) == 45.0


def test_without_now_a_date_is_measured_against_the_current_time() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=120)
    wait = retry_after({"retry-after": soon.strftime("%a, %d %b %Y %H:%M:%S GMT")})
    assert wait is not None and 115 <= wait <= 120


def test_the_cap_is_300_s() -> None:
    assert RETRY_AFTER_CAP == 300.0

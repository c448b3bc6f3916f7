"""A rule's fingerprint (the state it keeps across reloads and restarts) is what it was:
the SHA-256 of the JSON of its conditions, `for` and cooldown (issue #16 writes the JSON
out)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from service.rules.expr import compile_condition
from service.rules.loader import _fingerprint


def as_before(when: str, clear: str | None, hold: timedelta | None, cool: timedelta | None) -> str:
    key = json.dumps(
        [when, clear, hold.total_seconds() if hold else 0, cool.total_seconds() if cool else 0]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("when", "clear", "hold", "cool"),
    [
        ("price > 5", None, None, None),
        ("price > 5", "price < 4", timedelta(minutes=10), timedelta(hours=4)),
        ('earnings_time == "amc"', None, timedelta(0), timedelta(microseconds=1)),
        ("earnings_time == 'a\\\\b\\u00e9'", None, timedelta(days=99999), None),
        ("price > 1e300", "price < 0.1", timedelta(seconds=0.3), timedelta(seconds=1e6)),
    ],
)
def test_the_fingerprint_is_the_hash_of_the_json_as_before(
    when: str, clear: str | None, hold: timedelta | None, cool: timedelta | None
) -> None:
    compiled = compile_condition(when)
    cleared = compile_condition(clear) if clear else None
    assert _fingerprint(compiled, cleared, hold, cool) == as_before(
        compiled.source, clear, hold, cool
    )


def test_a_fingerprint_of_a_stored_state_is_unchanged() -> None:
    assert _fingerprint(compile_condition("price > 5"), None, None, None) == "8859384974833afa"

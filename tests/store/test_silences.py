"""The silences in the store (service/store/silences.py), on SQLite and on PostgreSQL: what
one process adds, another sees; expiring one ends it now and keeps it for `history`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from service.store import Silence, Store, open_store
from tests.store.helpers import T0

HOUR = timedelta(hours=1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def db(url: str) -> Iterator[Store]:
    opened = open_store(url)
    yield opened
    opened.close()


def test_a_silence_added_is_returned_whole_and_seen_by_another_process(db: Store, url: str) -> None:
    added = db.add_silence(
        rule="lumn-above", symbol="LUMN", ends_at=T0 + HOUR, comment="the call", now=T0
    )
    assert re.fullmatch(r"s_[0-9a-f]{10}", added.id)
    assert added == Silence(added.id, "lumn-above", "LUMN", T0, T0 + HOUR, "the call", T0)
    other = open_store(url)  # a command, or another replica
    try:
        assert other.silences(T0 + timedelta(minutes=5)) == [added]
    finally:
        other.close()


def test_only_silences_holding_at_now_are_active_oldest_first(db: Store) -> None:
    first = db.add_silence(rule="a", symbol=None, ends_at=T0 + 2 * HOUR, comment=None, now=T0)
    second = db.add_silence(
        rule=None, symbol="PLTR", ends_at=T0 + HOUR, comment=None, now=T0 + timedelta(minutes=1)
    )
    later = db.add_silence(
        rule="b",
        symbol=None,
        ends_at=T0 + 3 * HOUR,
        comment=None,
        now=T0 + timedelta(minutes=2),
        starts_at=T0 + HOUR,
    )
    assert db.silences(T0 - timedelta(seconds=1)) == []
    assert db.silences(T0 + timedelta(minutes=30)) == [first, second]
    assert db.silences(T0 + HOUR) == [first, later]  # `second` ended; `later` started
    assert db.silences(T0 + 3 * HOUR) == []
    assert all(s.starts_at.tzinfo is not None for s in db.silences(T0 + HOUR))


def test_expire_ends_a_silence_now_and_refuses_an_unknown_or_ended_one(db: Store) -> None:
    added = db.add_silence(rule="a", symbol=None, ends_at=T0 + HOUR, comment=None, now=T0)
    now = T0 + timedelta(minutes=10)
    expired = db.expire_silence(added.id, now)
    assert expired is not None and expired.ends_at == now and expired.id == added.id
    assert db.silences(now) == []
    assert db.silences(now - timedelta(seconds=1)) == [expired]  # kept, with its new end
    assert db.expire_silence(added.id, now + timedelta(seconds=1)) is None  # already ended
    assert db.expire_silence("s_0000000000", now) is None  # unknown


def test_a_silence_of_nothing_or_of_no_time_is_refused(db: Store) -> None:
    with pytest.raises(ValueError, match="a rule, a symbol or both"):
        db.add_silence(rule=None, symbol=None, ends_at=T0 + HOUR, comment=None, now=T0)
    with pytest.raises(ValueError, match="end after it starts"):
        db.add_silence(rule="a", symbol=None, ends_at=T0, comment=None, now=T0)
    assert db.silences(T0) == []

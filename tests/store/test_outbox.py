"""The outbox contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from service.engine import RESOLVED_SUFFIX, Alert, RuleState
from service.errors import StoreError
from service.stages import Decision
from service.store import AttemptRecord, Store, open_store
from tests.store.helpers import T0, make_alert, render

LEASE = timedelta(seconds=60)


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


def attempt(number: int, outcome: str = "ok", **kw: object) -> AttemptRecord:
    return AttemptRecord(
        number=number,
        started_at=T0,
        finished_at=T0 + timedelta(milliseconds=40),
        outcome=outcome,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_record_writes_the_alert_and_one_delivery_per_channel(db: Store) -> None:
    ids = db.record(
        [(make_alert(1), render, [("hook", "webhook"), ("team", "slack"), ("hook", "webhook")])],
        {},
        T0,
    )
    assert len(ids) == 1
    [entry] = db.history()
    assert entry.alert_id == ids[0] == entry.message.id
    assert entry.dedup_key == "beat:SYM1:2025Q1" and entry.report_key == "2025Q1"
    assert entry.message.values == {"eps": 1.25, "day": "2025-01-28"}
    assert sorted((d.channel, d.kind, d.status, d.attempts) for d in entry.deliveries) == [
        ("hook", "webhook", "pending", 0),
        ("team", "slack", "pending", 0),
    ]
    assert db.pending_count() == 2


def test_record_is_one_transaction_so_a_failure_leaves_nothing(db: Store) -> None:
    def broken(alert, alert_id):  # the second alert cannot be rendered
        if alert.symbol == "SYM2":
            raise RuntimeError("template blew up")
        return render(alert, alert_id)

    with pytest.raises(RuntimeError):
        db.record(
            [(make_alert(1), broken, [("hook", "webhook")]), (make_alert(2), broken, [])],
            {("beat", "SYM1"): RuleState(fired=1)},
            T0,
        )
    assert db.history() == [] and db.load_states() == {} and db.pending_count() == 0


def test_the_same_dedup_key_twice_gives_one_alert(db: Store, url: str) -> None:
    first = db.record([(make_alert(1), render, [("hook", "webhook")])], {}, T0)
    again = db.record([(make_alert(1), render, [("hook", "webhook")])], {}, T0)
    twice_in_one_batch = db.record([(make_alert(2), render, [("hook", "webhook")])] * 2, {}, T0)
    replica = open_store(url)  # a second process on the same database
    try:
        from_replica = replica.record([(make_alert(1), render, [("hook", "webhook")])], {}, T0)
    finally:
        replica.close()
    assert len(first) == 1 and again == [] and len(twice_in_one_batch) == 1
    assert from_replica == []
    assert len(db.history()) == 2 and db.pending_count() == 2


def test_racing_writers_of_one_dedup_key_insert_one_alert(url: str) -> None:
    stores = [open_store(url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results: list[list[str]] = []

    def write(store: Store) -> None:
        barrier.wait()
        for _ in range(25):
            results.append(store.record([(make_alert(7), render, [("hook", "webhook")])], {}, T0))

    threads = [threading.Thread(target=write, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sum(len(r) for r in results) == 1
        assert len(stores[0].history()) == 1 and stores[0].pending_count() == 1
    finally:
        for store in stores:
            store.close()


def test_rule_states_round_trip_and_are_replaced(db: Store) -> None:
    moment = datetime(2025, 1, 28, 16, 0, tzinfo=UTC)
    states = {
        ("beat", "AAPL"): RuleState(
            fingerprint="f1",
            armed=False,
            pending_since=moment,
            last_fired=moment,
            last_report="2025Q1",
            fired=3,
        ),
        ("drop", "MSFT"): RuleState(),
    }
    db.record([], states, T0)
    assert db.load_states() == states
    db.save_states({("drop", "MSFT"): RuleState(fingerprint="f2", fired=1)})
    assert db.load_states()[("drop", "MSFT")] == RuleState(fingerprint="f2", fired=1)
    db.delete_states([("beat", "AAPL")])
    assert set(db.load_states()) == {("drop", "MSFT")}


def test_market_data_round_trips_by_key(db: Store) -> None:
    assert db.load_market_data("quotes") is None
    db.save_market_data("quotes", '{"AAPL": 1}', T0)
    db.save_market_data("quotes", '{"AAPL": 2}', T0 + timedelta(minutes=1))
    saved = db.load_market_data("quotes")
    assert saved is not None
    assert saved.data_json == '{"AAPL": 2}' and saved.updated_at == T0 + timedelta(minutes=1)


def test_claim_and_finish_walk_a_delivery_through_its_life(db: Store) -> None:
    db.record([(make_alert(1), render, [("hook", "webhook")])], {}, T0)
    [claimed] = db.claim(T0, 10, LEASE)
    assert (claimed.channel, claimed.kind, claimed.attempts) == ("hook", "webhook", 1)
    assert claimed.message.text == "alert 1" and claimed.created_at == T0
    assert db.claim(T0, 10, LEASE) == []  # held under the lease

    retry_at = T0 + timedelta(seconds=30)
    assert db.finish(
        claimed.id, attempt(1, "retry", status_code=503, error="HTTP 503"), "pending", retry_at
    )
    assert db.claim(retry_at - timedelta(seconds=1), 10, LEASE) == []
    assert db.next_due() == retry_at
    [second] = db.claim(retry_at, 10, LEASE)
    assert second.id == claimed.id and second.attempts == 2

    assert db.finish(second.id, attempt(2), "delivered")
    assert not db.finish(second.id, attempt(2, "permanent"), "dead")  # delivered is final
    [entry] = db.history()
    [delivery] = entry.deliveries
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 2, "HTTP 503")
    assert delivery.delivered_at == T0 + timedelta(milliseconds=40)
    records = db.attempts(claimed.id)
    assert [(r.number, r.outcome, r.status_code) for r in records] == [
        (1, "retry", 503),
        (2, "ok", None),
        (2, "permanent", None),
    ]
    assert records[0].duration_ms == 40
    assert db.pending_count() == 0 and db.next_due() is None


def test_deliveries_deferred_to_one_moment_are_claimed_in_the_order_they_fired(
    db: Store,
) -> None:
    # Quiet hours defer every alert of a night to the same end; the ids are random, so
    # only the creation time keeps them in the order they fired.
    until = T0 + timedelta(hours=9)
    for n in range(8):
        fired = T0 + timedelta(minutes=n)
        alert = make_alert(n, when=fired)
        db.record([(alert, render, [("hook", "webhook", Decision.defer(until, "q"))])], {}, fired)
    assert db.claim(until - timedelta(seconds=1), 10, LEASE) == []
    claimed = db.claim(until, 10, LEASE)
    assert [c.message.symbol for c in claimed] == [f"SYM{n}" for n in range(8)]


def test_an_expired_lease_is_claimed_again_and_fences_the_old_owner(db: Store) -> None:
    db.record([(make_alert(1), render, [("hook", "webhook")])], {}, T0)
    [old] = db.claim(T0, 10, LEASE)
    assert db.claim(T0 + LEASE - timedelta(microseconds=1), 10, LEASE) == []
    assert db.next_due() == T0 + LEASE
    [new] = db.claim(T0 + LEASE, 10, LEASE)
    assert new.id == old.id and new.attempts == 2
    # the slow old owner reports a failure: it no longer holds the claim
    assert not db.finish(old.id, attempt(1, "retry"), "pending", T0)
    assert db.history()[0].deliveries[0].status == "sending"
    assert db.finish(new.id, attempt(2), "delivered")


def test_concurrent_claimers_never_get_the_same_delivery(db: Store, url: str) -> None:
    db.record([(make_alert(i), render, [("hook", "webhook")]) for i in range(200)], {}, T0)
    stores = [open_store(url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    claimed: list[list[str]] = [[] for _ in stores]

    def work(index: int) -> None:
        barrier.wait()
        while batch := stores[index].claim(T0, 7, LEASE):
            claimed[index].extend(c.id for c in batch)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    every = [delivery_id for ids in claimed for delivery_id in ids]
    assert len(every) == len(set(every)) == 200


def test_datetimes_come_back_timezone_aware_utc_and_naive_ones_are_refused(db: Store) -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2025, 1, 28, 16, 5, tzinfo=ZoneInfo("America/New_York"))
    db.record([(make_alert(1, when=local), render, [("hook", "webhook")])], {}, local)
    [entry] = db.history()
    assert entry.fired_at == local and entry.fired_at.tzinfo is UTC
    assert entry.deliveries[0].next_attempt_at.tzinfo is UTC
    with pytest.raises(StoreError):
        db.record([(make_alert(2, when=datetime(2025, 1, 1)), render, [])], {}, T0)


def test_history_is_newest_first_and_filters_by_rule_and_status(db: Store) -> None:
    for i in range(5):
        db.record(
            [
                (
                    make_alert(i, rule="beat" if i % 2 else "drop", when=T0 + timedelta(minutes=i)),
                    render,
                    [("hook", "webhook")],
                )
            ],
            {},
            T0,
        )
    assert [e.symbol for e in db.history()] == ["SYM4", "SYM3", "SYM2", "SYM1", "SYM0"]
    assert [e.symbol for e in db.history(limit=2)] == ["SYM4", "SYM3"]
    assert [e.symbol for e in db.history(rule="beat")] == ["SYM3", "SYM1"]
    [first] = db.claim(T0, 1, LEASE)
    db.finish(first.id, attempt(1, "permanent", status_code=404, error="HTTP 404"), "dead")
    [dead] = db.history(status="dead")
    assert dead.deliveries[0].last_error == "HTTP 404"


def _resolved(fired: Alert, when: datetime, resolves_key: str | None) -> Alert:
    return replace(
        fired,
        dedup_key=fired.dedup_key + RESOLVED_SUFFIX,
        fired_at=when,
        text="RESOLVED",
        kind="resolved",
        resolves_key=resolves_key,
    )


def test_a_resolved_alert_names_the_alert_it_resolves_in_the_same_transaction(db: Store) -> None:
    fired = make_alert(1)
    routes = [("hook", "webhook")]
    later = T0 + timedelta(minutes=5)
    [fired_id, resolved_id] = db.record(
        [(fired, render, routes), (_resolved(fired, later, fired.dedup_key), render, routes)],
        {},
        later,
    )
    entries = {e.alert_id: e for e in db.history()}
    assert entries[resolved_id].message.resolves == fired_id
    assert entries[resolved_id].message.kind == "resolved"
    assert entries[fired_id].message.resolves is None
    # recorded again (a restart re-deriving it): dropped by its dedup key
    again = _resolved(fired, later + timedelta(minutes=1), fired.dedup_key)
    assert db.record([(again, render, routes)], {}, later) == []


def test_a_resolved_alert_whose_key_is_unknown_names_the_latest_fired_one_or_none(
    db: Store,
) -> None:
    routes = [("hook", "webhook")]
    old, new = make_alert(1), replace(make_alert(1), dedup_key="beat:SYM1:2025Q2")
    [_, new_id] = db.record(
        [(old, render, routes), (replace(new, fired_at=T0 + timedelta(minutes=1)), render, routes)],
        {},
        T0,
    )
    later = T0 + timedelta(minutes=5)
    [found] = db.record([(_resolved(new, later, "gone"), render, routes)], {}, later)
    [lost] = db.record([(_resolved(make_alert(2), later, None), render, routes)], {}, later)
    entries = {e.alert_id: e for e in db.history()}
    assert entries[found].message.resolves == new_id
    assert entries[lost].message.resolves is None

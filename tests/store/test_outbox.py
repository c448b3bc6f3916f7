"""The outbox contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.engine import RESOLVED_SUFFIX, Alert, RuleState, fresh_state
from service.errors import StoreError
from service.stages import Decision
from service.store import AttemptRecord, Finished, Store, open_store
from service.store import state as state_rows
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


def test_states_beyond_one_batch_are_saved_in_batches_in_one_transaction(
    db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_rows, "SAVE_BATCH", 7)
    states = {
        (f"r{i}", f"S{i % 5}"): RuleState(fingerprint=f"f{i % 3}", fired=i % 4, armed=i % 2 == 0)
        for i in range(50)  # seven full batches and one of one
    }
    db.record([], states, T0)
    assert db.load_states() == states
    changed = {key: replace(s, fired=s.fired + 1) for key, s in list(states.items())[::3]}
    # a state the database refuses (armed is NOT NULL) in the last batch: none is saved
    refused = {**changed, ("r99", "S0"): replace(RuleState(), armed=None)}  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        db.record([], refused, T0)
    assert db.load_states() == states
    db.record([], changed, T0)
    assert db.load_states() == {**states, **changed}


def test_loaded_states_that_have_not_fired_are_the_engines_shared_fresh_ones(db: Store) -> None:
    states = {
        ("soon", "AAPL"): RuleState(fingerprint="f1"),
        ("soon", "MSFT"): RuleState(fingerprint="f1"),
        ("beat", "AAPL"): RuleState(fingerprint="f1", armed=False, fired=1),
    }
    db.record([], states, T0)
    loaded = db.load_states()
    assert loaded == states
    assert loaded[("soon", "AAPL")] is fresh_state("f1") is loaded[("soon", "MSFT")]
    assert loaded[("beat", "AAPL")].fingerprint is fresh_state("f1").fingerprint


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


# --- the hot path's plain SQL (plain.py) against the Core statements it replaced ------------


def _core_claimable_ids(
    url: str, now: datetime, limit: int, exclude: list[str], held: list[str]
) -> list[str]:
    """What the Core query the plain-SQL claim replaced would take, in its order (run on
    a SQLAlchemy engine of the same database: the store itself has none on SQLite)."""
    from sqlalchemy import and_, or_, select

    from service.store.db import create_db_engine, read_tx
    from service.store.tables import DELIVERY, SENDING, WAITING

    c = DELIVERY.c
    due = or_(
        and_(c.status.in_(WAITING), c.next_attempt_at <= now),
        and_(c.status == SENDING, c.lease_until <= now),
    )
    query = (
        select(c.id)
        .where(due, c.channel.not_in(exclude), c.id.not_in(held))
        .order_by(c.next_attempt_at, c.created_at, c.id)
        .limit(limit)
    )
    engine = create_db_engine(url)
    try:
        with read_tx(engine) as connection:
            return [str(i) for i in connection.execute(query).scalars()]
    finally:
        engine.dispose()


def _deliveries(db: Store) -> dict[str, tuple[str, int]]:
    return {d.id: (d.status, d.attempts) for e in db.history(limit=500) for d in e.deliveries}


def test_the_plain_sql_claim_takes_the_rows_the_core_query_names_in_its_order(
    db: Store, url: str
) -> None:
    # a mix: pending due and not yet, deferred, leases run out and running, final rows,
    # several channels (one excluded) and ids held by the claimer
    for n in range(12):
        fired = T0 + timedelta(minutes=n)
        route = ("hook" if n % 3 else "team", "webhook")
        if n in (4, 5):
            route = (route[0], "webhook", Decision.defer(T0 + timedelta(hours=1 + n % 2), "q"))
        db.record([(make_alert(n, when=fired), render, [route, ("spare", "slack")])], {}, fired)
    early = db.claim(T0 + timedelta(minutes=3), 3, LEASE, exclude={"spare"})
    db.finish(early[0].id, attempt(1), "delivered")
    db.finish(early[1].id, attempt(1, "permanent"), "dead")
    later = db.claim(T0 + timedelta(minutes=3), 1, timedelta(hours=5), exclude={"spare"})
    now = T0 + timedelta(hours=1, minutes=5)  # early[2]'s lease ran out, later[0]'s runs
    before = _deliveries(db)
    held = [i for i, (status, _n) in before.items() if status == "pending"][:2]
    every = _core_claimable_ids(url, now, 100, ["spare"], held)
    assert early[2].id in every and later[0].id not in every
    expected = _core_claimable_ids(url, now, 5, ["spare"], held)
    assert len(expected) == 5 < len(every)  # a real choice: more are due than it takes
    claimed = db.claim(now, 5, LEASE, exclude={"spare"}, held=held)
    assert [d.id for d in claimed] == expected
    after = _deliveries(db)
    for delivery in claimed:
        assert after[delivery.id] == ("sending", before[delivery.id][1] + 1)
        assert delivery.attempts == after[delivery.id][1]
        assert delivery.lease_until == now + LEASE and delivery.created_at.tzinfo is UTC
        assert delivery.message.id == delivery.alert_id
    assert {i: s for i, s in after.items() if i not in expected} == {
        i: s for i, s in before.items() if i not in expected
    }


def test_a_drain_of_pending_deferred_and_run_out_deliveries_goes_in_the_core_querys_order(
    db: Store, url: str
) -> None:
    # Each of the claim's three ways of being due (one query branch each, each cut at the
    # limit) holds more due rows than a claim takes, interleaved in time: every claim of
    # the drain must still be the first `limit` of them all, as the single query had it.
    now = T0 + timedelta(hours=2)
    for n in range(30):
        fired = T0 + timedelta(minutes=n)
        routes: list[Any] = [("hook", "webhook")]
        if n % 3 == 1:  # deferred to a moment before `now`, in steps that interleave
            routes = [("hook", "webhook", Decision.defer(T0 + timedelta(minutes=n + 30), "q"))]
        db.record([(make_alert(n, when=fired), render, routes)], {}, fired)
    # a third of the pending ones are claimed and their leases run out before `now`
    leased = db.claim(T0 + timedelta(minutes=40), 7, timedelta(minutes=5))
    assert len(leased) == 7
    drained: list[str] = []
    while expected := _core_claimable_ids(url, now, 4, [], []):
        claimed = db.claim(now, 4, LEASE)
        assert [d.id for d in claimed] == expected
        drained += expected
    assert len(drained) == len(set(drained)) == 30
    assert {d.id for d in leased} <= set(drained)


def test_a_claim_reads_about_the_rows_it_takes_however_long_the_backlog(
    sqlite_url: str,
) -> None:
    # The work of one claim, counted in SQLite VM instructions (deterministic, unlike a
    # clock), at a backlog of 40 and of 4,000 due deliveries of each way of being due:
    # reading and sorting every due row would cost a hundred times more at the second.
    import sqlite3

    from service.store import outbox
    from service.store.lite import SqlitePlain, configure

    def work_of_a_claim(backlog: int) -> int:
        store = open_store(sqlite_url)
        try:
            store.record(
                [
                    (make_alert(n, rule=f"r{backlog}", when=T0), render, [("hook", "webhook")])
                    for n in range(backlog)
                ],
                {},
                T0,
            )
            later = T0 + timedelta(hours=1)
            store.record(
                [
                    (
                        make_alert(n, rule=f"d{backlog}"),
                        render,
                        [("hook", "webhook", Decision.defer(later, "q"))],
                    )
                    for n in range(backlog)
                ],
                {},
                T0,
            )
            while store.claim(T0, 500, timedelta(minutes=1)):  # sending, leases run out
                pass
            store.record(
                [
                    (make_alert(n, rule=f"p{backlog}"), render, [("hook", "webhook")])
                    for n in range(backlog)
                ],
                {},
                T0,
            )
        finally:
            store.close()
        connection = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
        configure(connection, memory=False)
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.set_progress_handler(count, 100)
            claimed = outbox.claim(SqlitePlain(connection), later, 16, LEASE)
            connection.set_progress_handler(None, 0)
            assert len(claimed) == 16
            connection.execute("ROLLBACK")
        finally:
            connection.close()
        return steps[0] * 100

    small = work_of_a_claim(40)
    large = work_of_a_claim(4000)
    assert large < 2 * small, (small, large)


def test_claim_next_claims_as_claim_does_and_says_when_each_channel_is_due_next(
    db: Store,
) -> None:
    later = T0 + timedelta(hours=1)
    db.record([(make_alert(n), render, [("a", "webhook")]) for n in range(3)], {}, T0)
    db.record([(make_alert(9), render, [("b", "webhook", Decision.defer(later, "q"))])], {}, T0)
    db.record([(make_alert(7, rule="c"), render, [("c", "webhook")])], {}, T0)
    [leased] = db.claim(T0, 10, LEASE, exclude={"a", "b"})
    claimed, upcoming = db.claim_next(T0, 10, LEASE, exclude={"b"})
    assert sorted(d.channel for d in claimed) == ["a", "a", "a"]
    # what it just claimed counts as held: channel a has nothing else to wait for
    assert upcoming == {"b": later, "c": leased.lease_until}
    ids = [d.id for d in claimed]
    assert db.next_due(held=ids) == leased.lease_until
    assert db.next_due(exclude={"c"}, held=ids) == later
    db.record([(make_alert(n, rule="d"), render, [("a", "webhook")]) for n in range(2)], {}, T0)
    full, none = db.claim_next(T0, 2, LEASE)
    assert len(full) == 2 and none is None  # it took all it could: more may be due
    assert db.claim_next(T0, 0, LEASE) == ([], None)


def test_a_group_of_finished_attempts_moves_each_delivery_as_finish_would(db: Store) -> None:
    db.record([(make_alert(n), render, [("hook", "webhook")]) for n in range(3)], {}, T0)
    one, two, three = db.claim(T0, 3, LEASE)
    retry_at = T0 + timedelta(seconds=30)
    done = T0 + timedelta(milliseconds=40)
    moved = db.finish_many(
        [
            Finished(one.id, attempt(1), "delivered"),
            Finished(
                two.id, attempt(1, "retry", status_code=503, error="HTTP 503"), "pending", retry_at
            ),
            Finished(three.id, attempt(7, "retry"), "pending", retry_at),  # not its claim
            Finished(one.id, attempt(1, "permanent"), "dead"),  # delivered is final
        ]
    )
    assert moved == [True, True, False, False]
    entries = {d.id: d for e in db.history() for d in e.deliveries}
    assert (entries[one.id].status, entries[one.id].delivered_at) == ("delivered", done)
    assert entries[two.id].status == "pending" and entries[two.id].next_attempt_at == retry_at
    assert entries[two.id].last_error == "HTTP 503"
    assert entries[three.id].status == "sending"
    # every attempt is recorded, moved or not
    assert [a.outcome for a in db.attempts(one.id)] == ["ok", "permanent"]
    assert [(a.number, a.status_code) for a in db.attempts(two.id)] == [(1, 503)]
    assert [a.number for a in db.attempts(three.id)] == [7]
    assert db.claim(retry_at, 10, LEASE)[0].id == two.id


def test_a_group_of_distinct_deliveries_moves_in_one_statement_with_the_same_guards(
    db: Store,
) -> None:
    # each delivery once (PostgreSQL moves them with one UPDATE): the claim's fence and
    # the finality of delivered hold row by row, as in finish()
    db.record([(make_alert(n), render, [("hook", "webhook")]) for n in range(4)], {}, T0)
    one, two, three, four = db.claim(T0, 4, LEASE)
    assert db.finish(four.id, attempt(1), "delivered")
    retry_at = T0 + timedelta(seconds=30)
    moved = db.finish_many(
        [
            Finished(one.id, attempt(1), "delivered"),
            Finished(two.id, attempt(1, "permanent", error="HTTP 404"), "dead"),
            Finished(three.id, attempt(2, "retry"), "pending", retry_at),  # not its claim
            Finished(four.id, attempt(1, "permanent"), "dead"),  # delivered is final
        ]
    )
    assert moved == [True, True, False, False]
    entries = {d.id: d for e in db.history() for d in e.deliveries}
    assert [entries[d.id].status for d in (one, two, three, four)] == [
        "delivered",
        "dead",
        "sending",
        "delivered",
    ]
    assert entries[one.id].delivered_at == T0 + timedelta(milliseconds=40)
    assert entries[two.id].last_error == "HTTP 404" and entries[two.id].delivered_at is None
    assert entries[three.id].next_attempt_at == T0  # unchanged
    assert [len(db.attempts(d.id)) for d in (one, two, three, four)] == [1, 1, 1, 2]

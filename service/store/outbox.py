"""The transactional outbox: alerts and their deliveries, claims, attempts, history.

Promises:
- `record()` writes each alert with its dedup key and one delivery row per channel in the
  caller's single transaction, before anything is sent. A resolved alert's message names
  the id of the alert it resolves, found in that transaction. An alert whose dedup key exists is
  skipped silently (`ON CONFLICT DO NOTHING` on both backends): that unique constraint, not
  memory, is what keeps one alert per rule, symbol and event across restarts and replicas.
- `claim()` hands each due delivery to one claimer only: `FOR UPDATE SKIP LOCKED` on
  PostgreSQL, `BEGIN IMMEDIATE` (one writer at a time) on SQLite. A claim is a lease: a
  `sending` row whose lease ran out (its worker died) is due again, and so is one whose
  holder is known to be gone (`replica.py`), at once. Each claim counts one attempt, so a
  delivery that keeps crashing its worker still reaches `max_attempts`.
- `finish()` records the attempt and moves the delivery in one transaction;
  `finish_many()` does it for a group of finished attempts in one transaction (the
  worker's group commit: one durable commit for many deliveries). `delivered` is
  final. A non-delivered outcome applies only while the caller still holds the claim (its
  attempt number matches and the row is `sending`), so a slow worker whose lease ran out
  cannot overwrite a newer claim.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from service.engine import AMENDED_SUFFIX, RESOLVED_SUFFIX, Alert
from service.notify.base import Message
from service.store.plain import Plain, marks, maybe_moment, moment_of
from service.store.replica import dead_holders
from service.store.statuses import DEAD, DEFERRED, DELIVERED, PENDING, SENDING, WAITING
from service.store.types import (
    AttemptRecord,
    ClaimedDelivery,
    DeliverySummary,
    Finished,
    HistoryEntry,
    NewAlert,
    Route,
    Status,
)

MAX_ERROR_CHARS = 2000


def new_id() -> str:
    """A fresh random id (uuid4, 32 hex digits) for an alert or a delivery."""
    return uuid.uuid4().hex


#: The outbox's statements (see `plain.py`), over the column names.
_INSERT_ALERT: Final = (
    "INSERT INTO alert (id, dedup_key, rule, symbol, report_key, fired_at, message_json)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING"
)
_INSERT_DELIVERY: Final = (
    "INSERT INTO delivery (id, alert_id, channel, kind, status, attempts, next_attempt_at,"
    " created_at, hold_reason) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)"
)
_INSERT_ATTEMPT: Final = (
    "INSERT INTO attempt (delivery_id, number, started_at, finished_at, outcome, status_code,"
    " error, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# A delivered outcome is final and applies whoever holds the claim; any other applies
# only while the caller holds it (its attempt number, still sending). A value left NULL
# keeps the column's (COALESCE): one statement text for every outcome.
_MOVE: Final = (
    "UPDATE delivery SET status = ?, lease_until = NULL, last_error = COALESCE(?, last_error),"
    " next_attempt_at = COALESCE(?, next_attempt_at), delivered_at = COALESCE(?, delivered_at)"
    f" WHERE id = ? AND status <> '{DELIVERED}'"
)
_MOVE_HELD: Final = f"{_MOVE} AND status = '{SENDING}' AND attempts = ?"
#: `_MOVE`/`_MOVE_HELD` of many deliveries at once (PostgreSQL), as (id, status, error,
#: next_attempt_at, delivered_at, attempt number) rows; the ids of those moved.
_MOVE_ROW: Final = (
    "(?, ?, CAST(? AS text), CAST(? AS timestamptz), CAST(? AS timestamptz), CAST(? AS integer))"
)
_MOVE_MANY: Final = (
    "UPDATE delivery SET status = v.status, lease_until = NULL,"
    " last_error = COALESCE(v.error, delivery.last_error),"
    " next_attempt_at = COALESCE(v.next_at, delivery.next_attempt_at),"
    " delivered_at = COALESCE(v.delivered_at, delivery.delivered_at)"
    " FROM (VALUES {rows}) AS v (id, status, error, next_at, delivered_at, number)"
    f" WHERE delivery.id = v.id AND delivery.status <> '{DELIVERED}' AND (v.status ="
    f" '{DELIVERED}' OR (delivery.status = '{SENDING}' AND delivery.attempts = v.number))"
    " RETURNING delivery.id"
)
_CLAIMED_COLUMNS: Final = (
    "delivery.id, delivery.alert_id, delivery.channel, delivery.kind, delivery.attempts,"
    " delivery.created_at, delivery.next_attempt_at,"
    " (SELECT alert.message_json FROM alert WHERE alert.id = delivery.alert_id)"
)
#: Due deliveries go earliest first; of those due at the same moment (deferred to the end
#: of one quiet window, say) the older first, so a channel gets its alerts in the order
#: they fired (the id is random: the last tie-break only).
_CLAIM_ORDER_SQL: Final = "next_attempt_at, created_at, id"


def record(db: Plain, alerts: Sequence[NewAlert], now: datetime) -> list[str]:
    """Insert new alerts and their deliveries; return the ids of the alerts inserted."""
    inserted: list[str] = []
    deliveries: list[tuple[object, ...]] = []
    waiting: list[tuple[tuple[object, ...], Sequence[Route]]] = []  # rendered, not inserted

    def insert_waiting() -> None:
        for alert_id, channels in _insert_alerts(db, waiting):
            deliveries.extend(
                _delivery_row(db, alert_id, route, now) for route in _one_per_channel(channels)
            )
            inserted.append(alert_id)
        waiting.clear()

    for alert, render, channels in alerts:
        alert_id = new_id()
        message = render(alert, alert_id)
        if message.id != alert_id:
            raise ValueError(f"render() must use the alert id it is given ({alert.rule})")
        if alert.kind in ("resolved", "amended"):
            insert_waiting()  # the alert it names may be one of those
            named = _resolved_alert_id(db, alert)
            if alert.kind == "resolved":
                message = replace(message, kind="resolved", resolves=named)
            else:
                message = replace(message, kind="amended", amends=named)
        row = (
            alert_id,
            alert.dedup_key,
            alert.rule,
            alert.symbol,
            alert.report_key,
            db.when(alert.fired_at),
            message.to_json(),
        )
        waiting.append((row, channels))
    insert_waiting()
    # the deliveries go in together at the end (a lookup above reads alerts only)
    db.run_many(_INSERT_DELIVERY, deliveries)
    return inserted


#: Alerts per multi-row INSERT on PostgreSQL (7 parameters each, of at most 65,535).
_ALERTS_PER_INSERT: Final = 500


def _insert_alerts(
    db: Plain, waiting: Sequence[tuple[tuple[object, ...], Sequence[Route]]]
) -> list[tuple[str, Sequence[Route]]]:
    """Insert these alert rows, in order, each skipped when its dedup key exists (also
    when an earlier one of them has it); the (id, routes) of those inserted. SQLite: one
    INSERT each (no round trip to save); PostgreSQL: one multi-row INSERT ... RETURNING."""
    if db.sqlite:
        return [
            (str(row[0]), routes)
            for row, routes in waiting
            if db.run(_INSERT_ALERT, row).rowcount == 1
        ]
    out: list[tuple[str, Sequence[Route]]] = []
    for start in range(0, len(waiting), _ALERTS_PER_INSERT):
        chunk = waiting[start : start + _ALERTS_PER_INSERT]
        rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        statement = _INSERT_ALERT.replace("VALUES (?, ?, ?, ?, ?, ?, ?)", f"VALUES {rows}")
        params = [value for row, _routes in chunk for value in row]
        new = {str(i) for (i,) in db.run(f"{statement} RETURNING id", params)}
        out += [(str(row[0]), routes) for row, routes in chunk if row[0] in new]
    return out


def _resolved_alert_id(db: Plain, alert: Alert) -> str | None:
    """The id of the alert a resolved alert resolves: the one stored under its
    `resolves_key` (written earlier in this transaction, or before), else the latest fired
    alert of its rule and symbol; None when there is none (the store was emptied)."""
    if alert.resolves_key is not None:
        found = db.run(_ALERT_OF_KEY, (alert.resolves_key,)).fetchone()
        if found is not None:
            return str(found[0])
    latest = db.run(
        _LATEST_ALERT,
        (
            alert.rule,
            alert.symbol,
            f"%{RESOLVED_SUFFIX}",
            f"%{AMENDED_SUFFIX}%",
            db.when(alert.fired_at),
        ),
    ).fetchone()
    return None if latest is None else str(latest[0])


_ALERT_OF_KEY: Final = "SELECT id FROM alert WHERE dedup_key = ?"
#: The latest alert of a rule and symbol that is neither a resolution nor an amendment.
_LATEST_ALERT: Final = (
    "SELECT id FROM alert WHERE rule = ? AND symbol = ? AND dedup_key NOT LIKE ?"
    " AND dedup_key NOT LIKE ? AND fired_at <= ? ORDER BY fired_at DESC, id LIMIT 1"
)


def _one_per_channel(routes: Sequence[Route]) -> list[Route]:
    """The first route of each channel name (one delivery row per channel)."""
    seen: dict[str, Route] = {}
    for route in routes:
        seen.setdefault(route[0], route)
    return list(seen.values())


def _delivery_row(db: Plain, alert_id: str, route: Route, now: datetime) -> tuple[object, ...]:
    """The outbox row of one channel (`_INSERT_DELIVERY`'s parameters), as the stages
    decided: pending (send), muted (kept, never sent) or deferred (due at the deferral's
    end)."""
    channel, kind = route[0], route[1]
    decision = route[2] if len(route) == 3 else None
    status, due, reason = PENDING, now, None
    if decision is not None and decision.action == "mute":
        status, reason = decision.status, decision.reason
    elif decision is not None and decision.action == "defer" and decision.until is not None:
        reason = decision.reason
        if decision.until > now:
            status, due = DEFERRED, decision.until
    return (new_id(), alert_id, channel, kind, status, db.when(due), db.when(now), reason)


def _claim_branches(
    db: Plain,
    now: datetime,
    dead: Sequence[str],
    exclude: Collection[str],
    held: Collection[str],
) -> list[tuple[str, list[object]]]:
    """The ways a delivery is due, each as a WHERE clause and its parameters: pending and
    due, deferred and due, sending under a lease that ran out or whose holder is gone;
    each not of the channels in `exclude`, not in `held`.

    One clause per status, so that each is a range of `ix_delivery_due` (status,
    next_attempt_at, created_at, id) read in the claim's order: a claim reads about as
    many rows as it takes, however long the backlog (an OR of the three made the planner
    fetch and sort every due row on each claim)."""
    at = db.when(now)
    branches: list[tuple[str, list[object]]] = [
        ("status = ? AND next_attempt_at <= ?", [status, at]) for status in WAITING
    ]
    if dead:  # leases of replicas known to be gone are void whatever their time says
        branches.append(
            (
                f"status = ? AND (lease_until <= ? OR lease_holder IN ({marks(len(dead))}))",
                [SENDING, at, *dead],
            )
        )
    else:
        branches.append(("status = ? AND lease_until <= ?", [SENDING, at]))
    filters, values = "", []
    if exclude:
        filters += f" AND channel NOT IN ({marks(len(exclude))})"
        values += list(exclude)
    if held:
        filters += f" AND id NOT IN ({marks(len(held))})"
        values += list(held)
    return [(where + filters, [*params, *values]) for where, params in branches]


def _dead_holders(db: Plain, now: datetime, me: str | None) -> list[str]:
    """Holders of leases still running whose replica is gone (PostgreSQL; else none).
    `me`, the claimer, is alive (its liveness lock was just ensured): only the others'
    leases are looked up in `pg_locks`, so a lone replica's claim needs no such query."""
    if db.sqlite:
        return []
    holders = [
        str(holder)
        for (holder,) in db.run(
            "SELECT DISTINCT lease_holder FROM delivery WHERE status = ? AND lease_until > ?"
            " AND lease_holder IS NOT NULL AND lease_holder <> ?",
            (SENDING, db.when(now), me or ""),
        )
    ]
    return dead_holders(db, holders) if holders else []


def claim(
    db: Plain,
    now: datetime,
    limit: int,
    lease: timedelta,
    holder: str | None = None,
    exclude: Collection[str] = (),
    held: Collection[str] = (),
) -> list[ClaimedDelivery]:
    """Mark up to `limit` due deliveries `sending` until now + lease, held by `holder` (a
    replica id, or None when nobody can check this process's liveness), and return them.
    Due: pending and due, or sending under a lease that ran out or whose holder is gone.
    Deliveries of the channels in `exclude` are left alone (the worker excludes channels
    whose destination host is at its cap, or that left the rule file), and so are the
    deliveries in `held` (the caller's own, still in flight: never claimed twice)."""
    dead = _dead_holders(db, now, holder)
    branches = _claim_branches(db, now, dead, exclude, held)
    lease_until = now + lease
    sets = [SENDING, db.when(lease_until), holder]
    assignments = "status = ?, lease_until = ?, lease_holder = ?, attempts = attempts + 1"
    # Each branch's first `limit` rows in the claim order, then the first `limit` of those.
    first = (
        "SELECT id, next_attempt_at, created_at FROM delivery WHERE {where}"
        f" ORDER BY {_CLAIM_ORDER_SQL} LIMIT ?"
    )
    branch_values = [value for _where, params in branches for value in [*params, limit]]
    if db.sqlite:  # BEGIN IMMEDIATE: the only writer, nothing to skip
        union = " UNION ALL ".join(
            f"SELECT * FROM ({first.format(where=where)})" for where, _params in branches
        )
        pick = f"SELECT id FROM ({union}) ORDER BY {_CLAIM_ORDER_SQL} LIMIT ?"
        statement = (
            f"UPDATE delivery SET {assignments} WHERE id IN ({pick}) RETURNING {_CLAIMED_COLUMNS}"
        )
        values = [*sets, *branch_values, limit]
    else:
        # The rows each branch reads are locked until commit, and those others hold are
        # skipped (a UNION takes no FOR UPDATE: each branch locks its own). A row a branch
        # locked but the claim did not take is skipped by others only until this commit.
        ctes = ", ".join(
            f"due{n} AS MATERIALIZED ({first.format(where=where)} FOR UPDATE SKIP LOCKED)"
            for n, (where, _params) in enumerate(branches)
        )
        union = " UNION ALL ".join(f"SELECT * FROM due{n}" for n in range(len(branches)))
        statement = (
            f"WITH {ctes}, picked AS ({union} ORDER BY {_CLAIM_ORDER_SQL} LIMIT ?)"
            f" UPDATE delivery SET {assignments} FROM picked WHERE delivery.id = picked.id"
            f" RETURNING {_CLAIMED_COLUMNS}"
        )
        values = [*branch_values, limit, *sets]
    # RETURNING has no order: the claim order is (next_attempt_at, created_at, id)
    claimed: Iterable[Any] = db.run(statement, values)
    rows = sorted(claimed, key=lambda r: (r[6], r[5], r[0]))
    return [
        ClaimedDelivery(
            id=delivery_id,
            alert_id=alert_id,
            channel=channel,
            kind=kind,
            attempts=attempts,
            created_at=moment_of(created_at),
            lease_until=lease_until,
            message=Message.from_json(message_json),
        )
        for delivery_id, alert_id, channel, kind, attempts, created_at, _due, message_json in rows
    ]


def finish(
    db: Plain,
    delivery_id: str,
    attempt: AttemptRecord,
    new_status: Status,
    next_attempt_at: datetime | None,
) -> bool:
    """Record `attempt` and move the delivery to `new_status`. False when the delivery was
    not moved (already delivered, or claimed again by someone else since)."""
    [moved] = finish_many(db, [Finished(delivery_id, attempt, new_status, next_attempt_at)])
    return moved


def finish_many(db: Plain, finished: Sequence[Finished]) -> list[bool]:
    """`finish()` of each item, in the caller's one transaction (a group commit): one
    INSERT of every attempt (executemany), then one guarded UPDATE per delivery, in
    order. Whether each moved."""
    for item in finished:
        if item.new_status not in (PENDING, DELIVERED, DEAD):
            raise ValueError(f"finish() cannot set status {item.new_status!r}")
        if item.new_status == PENDING and item.next_attempt_at is None:
            raise ValueError("a pending delivery needs next_attempt_at")
    if not finished:
        return []
    attempts: list[tuple[object, ...]] = []
    moves: list[tuple[object, ...]] = []
    for item in finished:
        attempt = item.attempt
        error = (attempt.error or "")[:MAX_ERROR_CHARS] or None
        attempts.append(
            (
                item.delivery_id,
                attempt.number,
                db.when(attempt.started_at),
                db.when(attempt.finished_at),
                attempt.outcome,
                attempt.status_code,
                error,
                attempt.duration_ms,
            )
        )
        delivered = item.new_status == DELIVERED
        moves.append(
            (
                item.new_status,
                error,
                db.when(item.next_attempt_at),
                db.when(attempt.finished_at) if delivered else None,
                item.delivery_id,
                attempt.number,
            )
        )
    db.run_many(_INSERT_ATTEMPT, attempts)
    ids = [item.delivery_id for item in finished]
    if db.sqlite or len(set(ids)) < len(ids):  # no round trip to save / one after another
        return [
            db.run(_MOVE, m[:5]).rowcount == 1
            if m[0] == DELIVERED
            else db.run(_MOVE_HELD, m).rowcount == 1
            for m in moves
        ]
    # PostgreSQL, each delivery once: the same guarded UPDATE for all, one round trip
    rows = ", ".join([_MOVE_ROW] * len(moves))
    params = [value for m in moves for value in (m[4], *m[:4], m[5])]
    moved = {str(i) for (i,) in db.run(_MOVE_MANY.replace("{rows}", rows), params)}
    return [delivery_id in moved for delivery_id in ids]


def attempts_of(db: Plain, delivery_id: str) -> list[AttemptRecord]:
    """Every recorded attempt of a delivery, oldest first."""
    rows = db.run(
        "SELECT number, started_at, finished_at, outcome, status_code, error FROM attempt"
        " WHERE delivery_id = ? ORDER BY id",
        (delivery_id,),
    )
    return [
        AttemptRecord(
            number=number,
            started_at=moment_of(started_at),
            finished_at=moment_of(finished_at),
            outcome=outcome,
            status_code=status_code,
            error=error,
        )
        for number, started_at, finished_at, outcome, status_code, error in rows
    ]


_ALERT_COLUMNS: Final = "id, rule, symbol, dedup_key, report_key, fired_at, message_json"
_SUMMARY_COLUMNS: Final = (
    "alert_id, id, channel, kind, status, attempts, next_attempt_at, last_error,"
    " delivered_at, hold_reason"
)


def history(db: Plain, limit: int, rule: str | None, status: Status | None) -> list[HistoryEntry]:
    """The newest `limit` alerts (optionally of one rule, or having a delivery in `status`)."""
    where: list[str] = []
    params: list[object] = []
    if rule is not None:
        where.append("rule = ?")
        params.append(rule)
    if status is not None:
        where.append("id IN (SELECT alert_id FROM delivery WHERE status = ?)")
        params.append(status)
    alerts = db.run(
        f"SELECT {_ALERT_COLUMNS} FROM alert"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY fired_at DESC, id LIMIT ?",
        [*params, limit],
    ).fetchall()
    ids = [row[0] for row in alerts]
    by_alert: dict[str, list[DeliverySummary]] = {alert_id: [] for alert_id in ids}
    if ids:
        rows = db.run(
            f"SELECT {_SUMMARY_COLUMNS} FROM delivery WHERE alert_id IN ({marks(len(ids))})"
            " ORDER BY channel",
            ids,
        )
        for alert_id, *row in rows:
            by_alert[alert_id].append(
                DeliverySummary(
                    id=row[0],
                    channel=row[1],
                    kind=row[2],
                    status=row[3],
                    attempts=row[4],
                    next_attempt_at=moment_of(row[5]),
                    last_error=row[6],
                    delivered_at=maybe_moment(row[7]),
                    hold_reason=row[8],
                )
            )
    return [
        HistoryEntry(
            alert_id=alert_id,
            rule=rule_name,
            symbol=symbol,
            dedup_key=dedup_key,
            report_key=report_key,
            fired_at=moment_of(fired_at),
            message=Message.from_json(message_json),
            deliveries=tuple(by_alert[alert_id]),
        )
        for alert_id, rule_name, symbol, dedup_key, report_key, fired_at, message_json in alerts
    ]


def pending_count(db: Plain) -> int:
    """Deliveries not final yet (pending, deferred, or sending under a lease)."""
    statuses = (*WAITING, SENDING)
    row = db.run(
        f"SELECT count(*) FROM delivery WHERE status IN ({marks(len(statuses))})", statuses
    ).fetchone()
    return int(row[0])


def next_due(
    db: Plain, exclude: Collection[str] = (), held: Collection[str] = ()
) -> datetime | None:
    """When the earliest non-final delivery that `claim(exclude=, held=)` would consider
    becomes claimable, or None when there is none."""
    moments = [m for ch, m in next_due_by_channel(db, held).items() if ch not in exclude]
    return min(moments) if moments else None


def next_due_by_channel(db: Plain, held: Collection[str] = ()) -> dict[str, datetime]:
    """For each channel with a non-final delivery not in `held`: when the earliest of them
    becomes claimable (pending or deferred: its `next_attempt_at`; sending: its lease's
    end). `next_due(exclude=)` is the earliest of the channels not excluded."""
    # the CASEs' parameters, then the WHERE's
    params: list[object] = [*WAITING, SENDING, *WAITING, SENDING]
    where = f"status IN ({marks(len(WAITING) + 1)})"
    if held:
        where += f" AND id NOT IN ({marks(len(held))})"
        params += list(held)
    rows: Iterable[Any] = db.run(
        f"SELECT channel, MIN(CASE WHEN status IN ({marks(len(WAITING))}) THEN next_attempt_at"
        " END), MIN(CASE WHEN status = ? THEN lease_until END)"
        f" FROM delivery WHERE {where} GROUP BY channel",
        params,
    )
    due: dict[str, datetime] = {}
    for channel, waiting, leased in rows:
        moments = [moment_of(m) for m in (waiting, leased) if m is not None]
        if moments:
            due[str(channel)] = min(moments)
    return due

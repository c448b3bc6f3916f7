"""`service/status.py`: the status snapshot the page and `/api/status` render, from states
the real engine produced, real market data and history entries shaped as the store's."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from service.engine import RuleState, step
from service.market import EarningsEvent, Quote, ReportTime, variables
from service.marketdata import MarketData
from service.notify.base import Message
from service.rules import RuleSet
from service.status import Replica, status_snapshot
from service.store.types import DeliverySummary, HistoryEntry, Silence
from tests.rules.conftest import load

T0 = datetime(2026, 2, 4, 16, 30, tzinfo=UTC)

RULES = """\
channels:
  hook: {type: webhook, url: "https://example.com/hook"}
rules:
  - name: over-ten
    symbols: [LUMN, ACME, ZZZZ]
    when: price > 10
    cooldown: 1h
    notify: [hook]
  - name: held-under-nine
    symbols: [LUMN]
    when: price < 9
    for: 10m
    notify: [hook]
  - name: lumn-miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify: [hook]
"""


def ruleset() -> RuleSet:
    return load(RULES)


def market() -> MarketData:
    data = MarketData(
        quotes={
            "LUMN": Quote("LUMN", 8.5, 8.46, time=T0),
            "ACME": Quote("ACME", 12.0, 11.0, time=T0),
        }
    )
    upcoming = EarningsEvent(
        "ACME",
        date(2026, 2, 10),
        ReportTime.BMO,
        2026,
        1,
        eps_estimate=1.25,
        revenue_estimate=2.5e9,
    )
    reported = EarningsEvent(
        "LUMN",
        date(2026, 2, 3),
        ReportTime.AMC,
        2025,
        4,
        eps_estimate=-0.21,
        eps_actual=-0.30,
        revenue_estimate=3.08e9,
        revenue_actual=3.041e9,
    )
    data.apply_events([upcoming, reported], ["ACME", "LUMN"], date(2026, 1, 28), date(2026, 3, 1))
    return data


def states(rs: RuleSet, data: MarketData) -> dict[tuple[str, str], RuleState]:
    """The states the engine reaches: over-ten fired for ACME 5 minutes ago, held-under-nine
    pending for LUMN since 4 minutes ago."""
    out = {}
    for rule in rs.rules:
        for symbol in rule.symbols:
            now = T0 - timedelta(minutes=5 if rule.name == "over-ten" else 4)
            values = variables(data.snapshot(symbol), now)
            state = step(rule, None, values, now)[0]
            out[(rule.name, symbol)] = state
    return out


def replica(**kwargs: object) -> Replica:
    return Replica(healthy=True, health="ok", leading=True, **kwargs)  # type: ignore[arg-type]


def history() -> list[HistoryEntry]:
    message = Message("a1", "over-ten", "ACME", "ACME over ten", "ACME at $12.00", T0)
    return [
        HistoryEntry(
            alert_id="a1",
            rule="over-ten",
            symbol="ACME",
            dedup_key="k",
            report_key=None,
            fired_at=T0 - timedelta(minutes=5),
            message=message,
            deliveries=(
                DeliverySummary(
                    "d1",
                    "hook",
                    "webhook",
                    "failed",
                    2,
                    T0,
                    "HTTP 500 from https://example.com/***",
                    None,
                ),
                DeliverySummary(
                    "d2",
                    "mail",
                    "email",
                    "deferred",
                    0,
                    T0 + timedelta(hours=2),
                    None,
                    None,
                    "quiet hours",
                ),
            ),
        )
    ]


def by(snapshot: dict, rule: str, symbol: str) -> dict:
    (r,) = [x for x in snapshot["rules"] if x["name"] == rule]
    (s,) = [x for x in r["symbols"] if x["symbol"] == symbol]
    return s


def snapshot(**kwargs: object) -> dict:
    rs = ruleset()
    data = market()
    args: dict = {
        "ruleset": rs,
        "states": states(rs, data),
        "data": data,
        "silences": [],
        "alerts": history(),
        "replica": replica(),
        "now": T0,
    }
    args.update(kwargs)
    return status_snapshot(**args)


def test_each_rule_and_symbol_has_its_state_and_the_values_it_reads() -> None:
    s = snapshot()
    assert [r["name"] for r in s["rules"]] == ["over-ten", "held-under-nine", "lumn-miss"]
    acme = by(s, "over-ten", "ACME")
    assert acme["state"] == "cooldown"
    assert acme["headline"] == "cooldown until 2026-02-04 17:25Z"
    assert acme["last_fired"] == "2026-02-04T16:25:00+00:00"
    assert acme["values"]["price"]["text"] == "12"
    lumn = by(s, "over-ten", "LUMN")
    assert lumn["state"] == "armed" and lumn["condition"] is False
    zzzz = by(s, "over-ten", "ZZZZ")
    assert zzzz["state"] == "unknown" and zzzz["headline"] == "unknown data: price"
    pending = by(s, "held-under-nine", "LUMN")
    assert pending["state"] == "pending"
    assert pending["pending_left_seconds"] == 360
    assert pending["headline"] == "pending: 6m of `for` left"
    fired = by(s, "lumn-miss", "LUMN")
    assert fired["state"] == "fired" and fired["headline"] == "fired at 2026-02-04 16:26Z"
    assert s["states"] == {
        "silenced": 0,
        "pending": 1,
        "cooldown": 1,
        "fired": 1,
        "unknown": 1,
        "armed": 1,
    }


def test_a_silence_comes_before_every_other_state() -> None:
    silence = Silence(
        "s1", "over-ten", "ACME", T0 - timedelta(hours=1), T0 + timedelta(hours=3), None, T0
    )
    s = snapshot(silences=[silence])
    acme = by(s, "over-ten", "ACME")
    assert acme["state"] == "silenced"
    assert acme["silenced_until"] == "2026-02-04T19:30:00+00:00"
    assert by(s, "over-ten", "LUMN")["state"] == "armed"  # another symbol


def test_the_next_and_last_reports_with_consensus_window_actuals_and_surprise() -> None:
    s = snapshot()
    (upcoming,) = s["reports"]["next"]
    assert upcoming["symbol"] == "ACME" and upcoming["fiscal_period"] == "2026Q1"
    assert (upcoming["date"], upcoming["time"]) == ("2026-02-10", "bmo")
    assert upcoming["eps_estimate"] == 1.25
    assert upcoming["window_start"] == "2026-02-10T11:00:00+00:00"  # 06:00 New York
    (last,) = s["reports"]["last"]
    assert last["symbol"] == "LUMN" and last["eps_actual"] == -0.30
    assert round(last["eps_surprise_pct"], 1) == -42.9
    assert last["text"]["eps_surprise"] == "-42.9%"


def test_the_last_alerts_carry_each_delivery_as_history_shows_it() -> None:
    (alert,) = snapshot()["alerts"]
    assert (alert["rule"], alert["symbol"], alert["message"]) == (
        "over-ten",
        "ACME",
        "ACME at $12.00",
    )
    hook, mail = alert["deliveries"]
    assert (hook["channel"], hook["status"], hook["attempts"]) == ("hook", "failed", 2)
    assert hook["note"] == "HTTP 500 from https://example.com/***"
    assert mail["note"] == "until 2026-02-04 18:30Z: quiet hours"


def test_the_replica_part_and_the_whole_snapshot_is_json() -> None:
    s = snapshot(replica=replica(stream={"connected": False, "down_since": None}))
    assert s["replica"]["leading"] is True and s["replica"]["health"] == "ok"
    assert s["stream"] == {"connected": False, "down_since": None}
    assert s["budget"] is None
    json.dumps(s, allow_nan=False)


def test_the_copy_read_in_a_thread_is_not_changed_by_later_merges() -> None:
    from service.status import _copy

    data = market()
    copy = _copy(data)
    assert copy == data
    data.apply_quotes({"LUMN": Quote("LUMN", 9.9, 8.46, time=T0 + timedelta(seconds=1))}, T0)
    data.reports["LUMN"].clear()
    assert copy.quotes["LUMN"].price == 8.5 and copy.reports["LUMN"]

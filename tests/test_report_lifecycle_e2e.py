"""End to end (issue #13, items 1-2): `earnwatch run` against the local Finnhub server.
(a) the consensus is revised as the actuals appear: the beat alert uses the consensus last
seen before them, `eps_estimate_latest` the revised one; (b) a pending report's date moves
twice: two `earnings_date_changed` alerts, and the reminder only for the final date."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.daemon_setup import ROW, TODAY, write_env
from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

pytestmark = pytest.mark.slow

BEAT = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-beat
    symbols: [LUMN]
    when: reported and eps_surprise_pct > 0
    notify: [hook]
    message: "LUMN beat: {{ eps_actual }} vs {{ eps_estimate }} (now {{ eps_estimate_latest }})"
"""


def bodies(receiver: Receiver) -> list[dict]:
    return [json.loads(r.body) for r in receiver.requests]


def seen(daemon: Daemon, line: str) -> bool:
    return line in daemon.log()


def test_the_beat_uses_the_consensus_frozen_before_the_actuals(tmp_path: Path) -> None:
    with FakeFinnhub() as finnhub, Receiver() as receiver:
        finnhub.set_event(**ROW)  # LUMN 2025Q4 today, amc, consensus -0.21
        finnhub.set_quote("LUMN", 8.46, 8.93, int(time.time()))
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(BEAT)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(
                lambda: seen(daemon, f"calendar LUMN: {TODAY} amc 2025Q4"), 20, "the row", daemon
            )
            polls = finnhub.count("/calendar/earnings")
            wait_for(lambda: finnhub.count("/calendar/earnings") >= polls + 2, 20, "more polls")
            # the actuals arrive with a consensus revised after the fact
            finnhub.set_event(
                **{**ROW, "epsEstimate": -0.10, "epsActual": 0.23, "revenueActual": 3041000000}
            )
            wait_for(lambda: receiver.requests, 20, "the beat alert", daemon)
            time.sleep(3)  # more polls of the same row: no second alert
            daemon.stop()
    sent = bodies(receiver)
    assert [b["rule"] for b in sent] == ["lumn-beat"], daemon.log()[-3000:]
    values = sent[0]["values"]
    assert values["eps_estimate"] == -0.21 and values["eps_estimate_latest"] == -0.10
    assert round(values["eps_surprise_pct"], 2) == 209.52  # against -0.21, not -0.10 (330 %)
    assert values["consensus_frozen"] is True
    assert "LUMN beat: 0.23 vs -0.21 (now -0.1)" in json.dumps(sent[0])


MOVES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-moved
    symbols: [LUMN]
    when: earnings_date_changed and not reported
    notify: [hook]
  - name: lumn-tomorrow
    symbols: [LUMN]
    when: not reported and hours_to_earnings <= 24
    notify: [hook]
"""


def test_a_date_that_moves_twice_alerts_twice_and_the_reminder_follows(tmp_path: Path) -> None:
    today = date.fromisoformat(TODAY)
    first, second = (
        (today + timedelta(days=10)).isoformat(),
        (today + timedelta(days=20)).isoformat(),
    )

    def schedule(finnhub: FakeFinnhub, day: str) -> None:
        with finnhub.lock:  # one row of the report, re-dated (set_event keys by date)
            finnhub.calendar = [{**finnhub.calendar[0], "date": day}]

    with FakeFinnhub() as finnhub, Receiver() as receiver:
        finnhub.set_event(**{**ROW, "date": first})
        finnhub.set_quote("LUMN", 8.46, 8.93, int(time.time()))
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(MOVES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: seen(daemon, f"calendar LUMN: {first} amc"), 20, "the row", daemon)
            time.sleep(2)
            schedule(finnhub, second)
            wait_for(lambda: len(receiver.requests) >= 1, 20, "the first move", daemon)
            time.sleep(3)  # the same date polled again: nothing more
            assert len(receiver.requests) == 1, bodies(receiver)
            schedule(finnhub, TODAY)  # pulled in to today: the reminder is due
            wait_for(lambda: len(receiver.requests) >= 3, 20, "the second move", daemon)
            time.sleep(3)
            daemon.stop()
    sent = bodies(receiver)
    got = [(b["rule"], b["values"]["earnings_date"]) for b in sent]
    assert got[0] == ("lumn-moved", second), daemon.log()[-3000:]
    assert sorted(got[1:]) == [("lumn-moved", TODAY), ("lumn-tomorrow", TODAY)]
    moved = {b["values"]["earnings_date"]: b["values"] for b in sent if b["rule"] == "lumn-moved"}
    assert moved[second]["earnings_date_previous"] == first
    assert moved[TODAY]["earnings_date_previous"] == second


def test_the_consensus_seen_before_a_restart_stays_the_frozen_one(tmp_path: Path) -> None:
    with FakeFinnhub() as finnhub, Receiver() as receiver:
        finnhub.set_event(**ROW)
        finnhub.set_quote("LUMN", 8.46, 8.93, int(time.time()))
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(BEAT)
        daemon = Daemon(tmp_path, "--rules", "rules.yaml").start()
        try:
            line = f"calendar LUMN: {TODAY} amc 2025Q4"
            wait_for(lambda: seen(daemon, line), 20, "the row", daemon)
            time.sleep(2)  # saved with the last known data
            daemon.stop()
            # while it is down, the actuals arrive with a revised consensus
            finnhub.set_event(
                **{**ROW, "epsEstimate": -0.10, "epsActual": 0.23, "revenueActual": 3041000000}
            )
            daemon.start()
            wait_for(lambda: receiver.requests, 20, "the beat alert", daemon)
        finally:
            daemon.stop()
    values = bodies(receiver)[0]["values"]
    assert values["eps_estimate"] == -0.21 and values["eps_estimate_latest"] == -0.10
    assert values["consensus_frozen"] is True

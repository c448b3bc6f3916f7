"""End to end (issue #10.12): Finnhub sends CHPT's two real rows for one day, the older
fiscal year carrying the time of day; `earnwatch run` alerts the 2022Q4 miss, not a beat."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.providers.conftest import fixture_json
from tests.servers import Receiver
from tests.test_daemon_e2e import TODAY, write_env

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}", secret: "${HOOK_SECRET}"}
rules:
  - name: chpt-miss
    symbols: [CHPT]
    when: reported and eps_surprise_pct < 0
    notify: [hook]
  - name: chpt-beat
    symbols: [CHPT]
    when: reported and eps_surprise_pct > 0
    notify: [hook]
"""


def test_chpt_duplicate_rows_alert_the_2022q4_miss_once(tmp_path: Path) -> None:
    rows = fixture_json("finnhub", "calendar_duplicates.json")["earningsCalendar"]
    chpt = [{**r, "date": TODAY} for r in rows if r["symbol"] == "CHPT"]
    with FakeFinnhub() as finnhub, Receiver() as receiver:
        with finnhub.lock:  # set_event keeps one row per (symbol, date); Finnhub sends two
            finnhub.calendar = chpt
        finnhub.set_quote("CHPT", 13.5, 14.0, int(time.time()))
        write_env(tmp_path, finnhub, receiver, None)
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: receiver.requests, 20, "the CHPT alert", daemon)
            time.sleep(3)  # more polls of the same rows
            daemon.stop()
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert [b["rule"] for b in bodies] == ["chpt-miss"], daemon.log()[-3000:]
    values = bodies[0]["values"]
    assert values["fiscal_period"] == "2022Q4" and values["eps_estimate"] == -0.1521
    assert values["earnings_time"] == "amc"

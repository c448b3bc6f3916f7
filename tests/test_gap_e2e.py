"""End to end (issue #13, item 5): `earnwatch run` against the local server that speaks
Finnhub's API. An amc report dated yesterday; a quote before it sets `price_at_report`, a
quote before the next session's open (whose `o` is still the report day's open) leaves
`gap_pct` unknown, and the first quote of that session, with its open 10 % lower, fires
`when: gap_pct < -5` once, with `gap_pct` and `price_at_open` in the webhook's values."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.market import NEW_YORK, EarningsEvent, ReportTime
from tests.alerting_e2e import write_env
from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
defaults:
  notify: [hook]
rules:
  - name: gap-down
    symbols: [LUMN]
    when: gap_pct < -5
    message: "{{ symbol }} opened {{ gap_pct | round(1) }}% from {{ price_at_report }}"
"""


def test_a_gap_down_rule_fires_once_when_the_first_session_after_the_report_opens(
    tmp_path: Path,
) -> None:
    today = datetime.now(UTC).astimezone(NEW_YORK).date()
    reported = today - timedelta(days=1)
    event = EarningsEvent("LUMN", reported, ReportTime.AMC)
    opens = event.first_open  # the next NYSE session's open after yesterday's close
    before = event.published_at - timedelta(minutes=5)
    with FakeFinnhub() as finnhub, Receiver() as receiver:
        finnhub.set_event(
            symbol="LUMN",
            date=reported.isoformat(),
            hour="amc",
            year=2025,
            quarter=4,
            epsEstimate=-0.21,
            epsActual=0.23,
            revenueEstimate=3080000000,
            revenueActual=3041000000,
        )
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: finnhub.count("/calendar/earnings") >= 1, 15, "a calendar", daemon)
            time.sleep(2)  # the calendar is applied before the first quote
            finnhub.set_quote("LUMN", 8.00, 8.20, int(before.timestamp()), open=8.10)
            seen = finnhub.count("/quote")
            wait_for(lambda: finnhub.count("/quote") >= seen + 3, 15, "quote polls", daemon)
            pre = opens - timedelta(minutes=30)
            finnhub.set_quote("LUMN", 7.10, 8.00, int(pre.timestamp()), open=8.10)
            seen = finnhub.count("/quote")
            wait_for(lambda: finnhub.count("/quote") >= seen + 3, 15, "quote polls", daemon)
            assert receiver.requests == []  # no gap from a pre-market quote
            first = opens + timedelta(minutes=1)
            finnhub.set_quote("LUMN", 7.30, 8.00, int(first.timestamp()), open=7.20)
            wait_for(lambda: receiver.requests, 15, "the gap alert", daemon)
            later = opens + timedelta(minutes=20)
            finnhub.set_quote("LUMN", 7.00, 8.00, int(later.timestamp()), open=7.20)
            seen = finnhub.count("/quote")
            wait_for(lambda: finnhub.count("/quote") >= seen + 3, 15, "quote polls", daemon)
            assert daemon.stop() == 0
    assert len(receiver.requests) == 1, [r.body for r in receiver.requests]
    body = json.loads(receiver.requests[0].body)
    assert body["rule"] == "gap-down"
    assert body["values"]["gap_pct"] == pytest.approx(-10.0)
    assert body["values"]["price_at_open"] == 7.20
    assert body["message"] == "LUMN opened -10% from 8"

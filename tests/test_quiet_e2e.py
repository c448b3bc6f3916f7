"""End to end: quiet hours of a channel with `earnwatch run` as a subprocess, a fake
Finnhub and a real webhook receiver. An alert due inside the window is recorded
`deferred` (`earnwatch history --json` shows when it goes) and arrives once, at the
window's end, with its original `fired_at`; an `urgent: true` rule goes through the same
quiet channel at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.alerting_e2e import write_env
from tests.e2e import ROOT, Daemon, count_rows, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook:
    type: webhook
    url: "${{HOOK_URL}}"
    quiet_hours: {{from: "{start}", to: "{end}", tz: UTC}}
rules:
  - name: above
    symbols: [LUMN]
    when: price > 9
    notify: [hook]
{extra}"""
URGENT = """\
  - name: far-above
    symbols: [LUMN]
    when: price > 9
    notify: [hook]
    urgent: true
"""
#: The daemon takes a few seconds to start and fire: a window ending sooner than this
#: after it is computed is waited out first, so it ends 15-80 s after the alert.
MARGIN = timedelta(seconds=20)


def history(folder: Path) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EARNWATCH_", "FINNHUB_"))}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "service", "history", "--json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries


def window_to_next_minute() -> tuple[str, str, datetime]:
    """(from, to, the end): from two minutes before the current one to the next minute
    boundary, in UTC; waits for the boundary first when fewer than MARGIN remain."""
    now = datetime.now(UTC)
    boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if boundary - now < MARGIN:
        time.sleep((boundary - now).total_seconds() + 0.2)
        boundary += timedelta(minutes=1)
    start = boundary - timedelta(minutes=3)
    return f"{start:%H:%M}", f"{boundary:%H:%M}", boundary


def by_rule(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["rule"]: e for e in entries}


@pytest.mark.timeout(240)
def test_an_alert_inside_quiet_hours_waits_for_the_end_and_arrives_once_with_its_fired_at(
    tmp_path: Path,
) -> None:
    """Waits for real time, up to about 80 s: the window ends at the next wall-clock
    minute boundary, and the daemon must send the delivery then, not before."""
    start, end, boundary = window_to_next_minute()
    with FakeFinnhub() as finnhub, Receiver() as receiver:
        finnhub.set_quote("LUMN", 9.5, 8.5, int(time.time()))
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(RULES.format(start=start, end=end, extra=""))
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            db = tmp_path / "earnwatch.db"
            wait_for(lambda: count_rows(db, "delivery") >= 1, 15, "the alert", daemon)
            assert datetime.now(UTC) < boundary, "the daemon fired after the window ended"
            (entry,) = history(tmp_path)
            (delivery,) = entry["deliveries"]
            assert delivery["status"] == "deferred", daemon.log()[-3000:]
            assert datetime.fromisoformat(delivery["next_attempt_at"]) == boundary
            assert delivery["hold_reason"] == f"quiet hours of hook until {end} UTC"
            assert receiver.requests == []

            before_end = (boundary - datetime.now(UTC)).total_seconds() - 1
            time.sleep(max(0.0, before_end))
            assert receiver.requests == [], "sent before the window ended"
            wait_for(lambda: receiver.requests, 20, "the delivery at the window's end", daemon)
            arrived = datetime.now(UTC)
            time.sleep(3)  # more passes and claims: still once
            assert len(receiver.requests) == 1
            assert daemon.stop() == 0
        log = daemon.log()
    body = json.loads(receiver.requests[0].body)
    assert body["rule"] == "above" and body["symbol"] == "LUMN"
    assert body["fired_at"] == entry["fired_at"]  # the original time, not the send's
    assert datetime.fromisoformat(body["fired_at"]) < boundary <= arrived
    (entry,) = history(tmp_path)
    assert [d["status"] for d in entry["deliveries"]] == ["delivered"]
    assert "Traceback" not in log


def test_an_urgent_rule_goes_through_a_quiet_channel_at_once(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    start, end = now - timedelta(minutes=2), now + timedelta(minutes=10)
    rules = RULES.format(start=f"{start:%H:%M}", end=f"{end:%H:%M}", extra=URGENT)
    with FakeFinnhub() as finnhub, Receiver() as receiver:
        finnhub.set_quote("LUMN", 9.5, 8.5, int(time.time()))
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(rules)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: receiver.requests, 15, "the urgent alert", daemon)
            time.sleep(2)  # more passes and claims: the other one still waits
            assert len(receiver.requests) == 1
            entries = by_rule(history(tmp_path))
            assert daemon.stop() == 0
    assert json.loads(receiver.requests[0].body)["rule"] == "far-above"
    assert [d["status"] for d in entries["far-above"]["deliveries"]] == ["delivered"]
    (waiting,) = entries["above"]["deliveries"]
    assert waiting["status"] == "deferred"
    assert waiting["hold_reason"] == f"quiet hours of hook until {end:%H:%M} UTC"

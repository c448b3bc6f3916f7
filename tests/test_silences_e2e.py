"""End to end (issue #14.1): with `earnwatch run` running, `earnwatch silence add` stops the
very next alert of its rule (recorded `silenced`, never sent), and after
`earnwatch silence expire` the next crossing is sent again."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.alerting_e2e import health, metric, write_env
from tests.e2e import ROOT, Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-above
    symbols: [LUMN]
    when: price > 7.5
    notify: [hook]
"""


def earnwatch(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A one-shot command beside the daemon, reading the same `.env`."""
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )


def history(folder: Path) -> list[dict[str, Any]]:
    result = earnwatch(folder, "history", "--json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_a_silence_stops_the_next_alert_of_its_rule_and_its_expiry_lets_the_next_one_go(
    tmp_path: Path,
) -> None:
    with FakeFinnhub() as finnhub, Receiver() as receiver:

        def quote(price: float) -> None:
            finnhub.set_quote("LUMN", price, 7.2, int(time.time()))

        def polled(times: int = 2) -> None:
            polls = finnhub.count("/quote")
            wait_for(lambda: finnhub.count("/quote") >= polls + times, 10, "polls", daemon)

        quote(7.0)
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: health(daemon) == (200, "ok"), 15, "a healthy daemon", daemon)
            polled()

            added = earnwatch(tmp_path, "silence", "add", "--rule", "lumn-above", "--for", "1h")
            assert added.returncode == 0, added.stderr
            silence_id = added.stdout.split()[0]
            quote(8.0)  # the crossing, right after the silence: silenced
            wait_for(lambda: history(tmp_path), 10, "the silenced alert", daemon)
            [silenced] = history(tmp_path)
            polled()  # time for a delivery, had there been one to make
            assert receiver.requests == []
            silenced_count = metric(daemon, "earnwatch_alerts_silenced_total", rule="lumn-above")

            quote(7.0)  # re-armed
            polled()
            expired = earnwatch(tmp_path, "silence", "expire", silence_id)
            assert expired.returncode == 0, expired.stderr
            assert earnwatch(tmp_path, "silence", "list").stdout == "no active silences\n"
            quote(8.0)  # the next crossing: sent
            wait_for(lambda: receiver.requests, 10, "the alert after the expiry", daemon)
            polled()
            assert daemon.stop() == 0
        log = daemon.log()
        entries = history(tmp_path)

    assert silenced["rule"] == "lumn-above" and silenced["symbol"] == "LUMN"
    assert [
        (d["channel"], d["status"], d["hold_reason"], d["attempts"]) for d in silenced["deliveries"]
    ] == [("hook", "silenced", f"silence {silence_id}", 0)]
    assert len(receiver.requests) == 1
    newest, oldest = entries
    sent = json.loads(receiver.requests[0].body)
    assert sent["values"]["price"] == 8.0 and sent["alert_id"] == newest["alert_id"]
    assert oldest["alert_id"] == silenced["alert_id"]
    assert [d["status"] for d in oldest["deliveries"]] == ["silenced"]
    assert [d["status"] for d in newest["deliveries"]] == ["delivered"]
    assert silenced_count == 1
    assert f"lumn-above LUMN on hook: silenced (silence {silence_id})" in log
    assert "Traceback" not in log

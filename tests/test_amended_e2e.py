"""End to end (issue #13, item 3): `earnwatch run` against the local server that speaks
Finnhub's API and a webhook receiver, two rules with `notify_amended: true`:

- `lumn-beat` fires on the first actuals (EPS 0.23); the provider corrects the EPS to
  0.25: exactly one `alert.amended` naming the first alert's `alert_id`, with the old and
  new values; the corrected figures polled again, and a restart, send nothing more; a
  second correction (0.27) sends a second `alert.amended`, naming the first alert again.
- `lumn-big-beat` (EPS above 0.24) does not fire on 0.23 and fires on the corrected 0.25:
  a correction before it fired is no amendment (no `alert.amended` for 0.23 -> 0.25);
  the second correction, 0.25 -> 0.27, is one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_setup import ROW, write_env
from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-beat
    symbols: [LUMN]
    when: reported and eps_surprise_pct > 0
    notify_amended: true
    notify: [hook]
  - name: lumn-big-beat
    symbols: [LUMN]
    when: reported and eps_actual > 0.24
    notify_amended: true
    notify: [hook]
"""
REVENUE = 3041000000


def bodies(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.requests]


def of(receiver: Receiver, rule: str) -> list[tuple[str, dict[str, Any]]]:
    return [(b["type"], b) for b in bodies(receiver) if b["rule"] == rule]


def eps(finnhub: FakeFinnhub, value: float) -> None:
    finnhub.set_event(**{**ROW, "epsActual": value, "revenueActual": REVENUE})


def polls(finnhub: FakeFinnhub, daemon: Daemon, more: int = 2) -> None:
    """Wait until the daemon has polled the calendar `more` more times."""
    target = finnhub.count("/calendar/earnings") + more
    wait_for(lambda: finnhub.count("/calendar/earnings") >= target, 30, "more polls", daemon)


def test_corrected_actuals_send_one_alert_amended_per_correction_naming_the_first_alert(
    tmp_path: Path,
) -> None:
    with FakeFinnhub() as finnhub, Receiver() as receiver:
        eps(finnhub, 0.23)
        finnhub.set_quote("LUMN", 8.46, 8.93, int(time.time()))
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(RULES)
        daemon = Daemon(tmp_path, "--rules", "rules.yaml").start()
        try:
            wait_for(lambda: receiver.requests, 30, "the beat alert", daemon)
            polls(finnhub, daemon)
            assert [t for t, _ in of(receiver, "lumn-beat")] == ["alert.fired"]
            assert of(receiver, "lumn-big-beat") == []

            eps(finnhub, 0.25)  # the provider corrects the EPS
            wait_for(lambda: len(receiver.requests) >= 3, 30, "amended + big beat", daemon)
            polls(finnhub, daemon, 3)  # the corrected figures, re-sent unchanged
            daemon.stop()
            daemon.start()  # a restart: the correction is already sent
            polls(finnhub, daemon, 3)
            beat = of(receiver, "lumn-beat")
            big = of(receiver, "lumn-big-beat")
            assert [t for t, _ in beat] == ["alert.fired", "alert.amended"], bodies(receiver)
            assert [t for t, _ in big] == ["alert.fired"], bodies(receiver)  # no false amend

            eps(finnhub, 0.27)  # a second correction
            wait_for(lambda: len(receiver.requests) >= 5, 30, "the second amendments", daemon)
            polls(finnhub, daemon, 3)
        finally:
            daemon.stop()
        log = daemon.log()
    beat = of(receiver, "lumn-beat")
    big = of(receiver, "lumn-big-beat")
    assert [t for t, _ in beat] == ["alert.fired", "alert.amended", "alert.amended"], log[-3000:]
    assert [t for t, _ in big] == ["alert.fired", "alert.amended"], log[-3000:]
    assert len(receiver.requests) == 5

    (_, fired), (_, first), (_, second) = beat
    assert fired["values"]["eps_actual"] == 0.23
    assert first["amends"] == second["amends"] == fired["alert_id"]
    assert len({fired["alert_id"], first["alert_id"], second["alert_id"]}) == 3
    assert first["title"] == "LUMN · lumn-beat amended"
    assert first["message"] == "AMENDED: LUMN: lumn-beat: EPS 0.23 -> 0.25, revenue 3.041B"
    assert (first["values"]["eps_actual_previous"], first["values"]["eps_actual"]) == (
        0.23,
        0.25,
    )
    assert first["values"]["revenue_actual_previous"] == first["values"]["revenue_actual"]
    assert second["message"] == "AMENDED: LUMN: lumn-beat: EPS 0.25 -> 0.27, revenue 3.041B"
    assert (second["values"]["eps_actual_previous"], second["values"]["eps_actual"]) == (
        0.25,
        0.27,
    )

    (_, big_fired), (_, big_amended) = big
    assert big_fired["values"]["eps_actual"] == 0.25  # it fired on the corrected figures
    assert big_amended["amends"] == big_fired["alert_id"]
    assert big_amended["message"] == (
        "AMENDED: LUMN: lumn-big-beat: EPS 0.25 -> 0.27, revenue 3.041B"
    )
    assert "Traceback" not in log

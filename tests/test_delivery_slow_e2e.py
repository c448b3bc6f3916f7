"""End to end (issue #10.3): `earnwatch run` as a subprocess against receivers on
127.0.0.1 that send `200` headers and then drip their body, 1 byte every 2 s.

Before: the httpx timeout was per read, so such a send never ended; its lease ran out and
the same delivery was claimed and sent again while the first send still ran (copies of
one `webhook-id` open at once), and drips took every delivery slot, so an alert to a
healthy receiver stayed pending with 0 attempts.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.e2e import Daemon, count_rows, fast_env, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver
from tests.slow_servers import DripReceiver

pytestmark = pytest.mark.slow

TODAY = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
SLOW = ["AAA", "BBB", "CCC", "DDD"]
FAST = "GGG"
RULES = """\
channels:
  slow: {type: webhook, url: "${SLOW_URL}"}
  fast: {type: webhook, url: "${FAST_URL}"}
rules:
  - name: slow-miss
    symbols: [SLOW_SYMBOLS]
    when: reported and eps_actual < eps_estimate
    notify: [slow]
    message: "{{ symbol }} missed"
  - name: fast-miss
    symbols: [FAST_SYMBOL]
    when: reported and eps_actual < eps_estimate
    notify: [fast]
    message: "{{ symbol }} missed"
""".replace("SLOW_SYMBOLS", ", ".join(SLOW)).replace("FAST_SYMBOL", FAST)


def row(symbol: str, *, reported: bool) -> dict[str, object]:
    actuals = {"epsActual": -0.30, "revenueActual": 3041000000} if reported else {}
    return {
        "symbol": symbol,
        "date": TODAY,
        "hour": "amc",
        "year": 2025,
        "quarter": 4,
        "epsEstimate": -0.21,
        "revenueEstimate": 3080000000,
        **actuals,
    }


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    with FakeFinnhub() as fake:
        for symbol in [*SLOW, FAST]:
            fake.set_event(**row(symbol, reported=False))
            fake.set_quote(symbol, 8.46, 8.93, int(time.time()))
        yield fake


def write_env(folder: Path, finnhub: FakeFinnhub, slow: str, fast: str, *extra: str) -> None:
    lines = [
        *fast_env(folder, finnhub.base_url),
        "EARNWATCH_HTTP_TIMEOUT=3s",  # per read: a 2 s drip never trips it
        f"SLOW_URL={slow}",
        f"FAST_URL={fast}",
        *extra,
    ]
    (folder / ".env").write_text("\n".join(lines) + "\n")
    (folder / "rules.yaml").write_text(RULES)


def attempts(db: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db, timeout=5) as connection:
        return list(connection.execute("SELECT outcome, error FROM attempt ORDER BY id"))


def test_a_dripping_receiver_gets_one_copy_of_a_delivery_at_a_time_cut_at_the_deadline(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with DripReceiver() as slow, Receiver() as fast:
        write_env(
            tmp_path,
            finnhub,
            slow.url_for("/hook"),
            fast.url_for("/hook"),
            "EARNWATCH_DELIVERY_LEASE=3s",  # below the deadline: raised, and renewed
            "EARNWATCH_DELIVERY_TIMEOUT=4s",
        )
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: finnhub.count("/calendar/earnings") >= 1, 15, "a poll", daemon)
            finnhub.set_event(**row("AAA", reported=True))
            wait_for(lambda: slow.seen, 10, "the first dripping send", daemon)
            first = time.monotonic()
            # before the fix, a second copy opened when the 3 s lease ran out
            wait_for(lambda: len(slow.seen) >= 3, 40, "three attempts", daemon)
            took = time.monotonic() - first
            db = tmp_path / "earnwatch.db"
            log = daemon.log()
        assert slow.max_open_per_id == 1, [vars(s) for s in slow.seen]
        assert len(slow.ids()) == 1  # every attempt the same delivery
        cut = [s for s in slow.seen if s.ended is not None]
        assert all(s.hung_up and s.sent < 10 for s in cut)  # we hung up: the deadline
        assert took < 35  # three 4 s deadlines and their backoffs, not 2,000 s of drip
        recorded = attempts(db)
        assert len(recorded) >= 2
        assert all(outcome == "retry" for outcome, _ in recorded)
        assert "'slow': no complete reply within 4 s (the send deadline)" in str(recorded[0][1])
        assert "is not above the longest send deadline" in log  # the lease was raised
        assert "Traceback" not in log


def test_a_slow_host_cannot_take_every_slot_and_the_healthy_alert_arrives_promptly(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with DripReceiver() as slow, Receiver() as fast:
        write_env(
            tmp_path,
            finnhub,
            slow.url_for("/hook"),
            fast.url_for("/hook"),
            "EARNWATCH_DELIVERY_CONCURRENCY=4",
            "EARNWATCH_DELIVERY_PER_HOST=2",
            "EARNWATCH_DELIVERY_TIMEOUT=60s",  # the cap, not the deadline, must let it by
        )
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: finnhub.count("/calendar/earnings") >= 1, 15, "a poll", daemon)
            for symbol in SLOW:
                finnhub.set_event(**row(symbol, reported=True))
            db = tmp_path / "earnwatch.db"
            wait_for(lambda: count_rows(db, "alert") == 4, 10, "the 4 slow alerts", daemon)
            wait_for(lambda: slow.open_now() >= 2, 10, "the slow host at its cap", daemon)
            time.sleep(1.0)  # give a third slow send the chance to start (it must not)
            finnhub.set_event(**row(FAST, reported=True))
            took = wait_for(lambda: fast.requests, 15, "the healthy receiver's alert", daemon)
            still_dripping = slow.open_now()
            daemon_log = daemon.log()
        assert still_dripping == 2  # the slow one is still dripping meanwhile
        assert slow.max_open == 2  # EARNWATCH_DELIVERY_PER_HOST
        assert slow.max_open_per_id == 1
        assert took < 10, daemon_log[-3000:]  # one poll and one send, not a 60 s deadline
        assert len(fast.requests) == 1
        assert "Traceback" not in daemon_log

"""Two `earnwatch run` processes on one PostgreSQL: one leads, the other stands by and
takes over when the leader is killed with kill -9 in the middle of a burst of alerts.
Every alert is delivered; none is stored twice or delivered as two deliveries."""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver, Reply

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TODAY = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
SYMBOLS = [f"M{i:03d}" for i in range(200)]
RULES = f"""\
channels:
  hook: {{type: webhook, url: "${{HOOK_URL}}"}}
groups:
  burst: [{", ".join(SYMBOLS)}]
rules:
  - name: miss
    symbols: burst
    when: reported and eps_actual < eps_estimate
    notify: [hook]
"""


LUMN_MISS = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify: [hook]
"""


def replica(
    folder: Path, pg_url: str, finnhub: FakeFinnhub, receiver: Receiver, rules: str = RULES
) -> Daemon:
    folder.mkdir()
    (folder / ".env").write_text(
        "\n".join(
            [
                "FINNHUB_API_KEY=test-finnhub-key",
                f"FINNHUB_BASE_URL={finnhub.base_url}",
                f"EARNWATCH_DATABASE_URL={pg_url}",
                "EARNWATCH_ALLOW_PRIVATE_TARGETS=true",
                "EARNWATCH_HTTP=off",
                "EARNWATCH_DELIVERY_CONCURRENCY=4",
                "EARNWATCH_DELIVERY_LEASE=3s",
                f"HOOK_URL={receiver.url_for('/hook')}",
            ]
        )
        + "\n"
    )
    (folder / "rules.yaml").write_text(rules)
    return Daemon(folder, "--rules", "rules.yaml")


def stored_alerts(pg_url: str) -> int:
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM alert")).scalar_one())
    finally:
        engine.dispose()


def test_the_standby_takes_over_a_killed_leader_and_every_alert_arrives_once(
    tmp_path: Path, pg_url: str
) -> None:
    # Slow replies keep the burst going long enough to kill the leader in the middle of it.
    with FakeFinnhub() as finnhub, Receiver(default=Reply(200, b"ok", delay=0.15)) as receiver:
        for symbol in SYMBOLS:  # 200 reports already out, each a miss
            finnhub.set_event(
                symbol=symbol,
                date=TODAY,
                hour="amc",
                year=2025,
                quarter=4,
                epsEstimate=0.50,
                epsActual=0.40,
            )
        first = replica(tmp_path / "a", pg_url, finnhub, receiver).start()
        second = replica(tmp_path / "b", pg_url, finnhub, receiver)
        try:
            wait_for(lambda: "now leads" in first.log(), 20, "the first replica to lead", first)
            second.start()
            wait_for(
                lambda: "standby" in second.log(), 20, "the second replica to stand by", second
            )
            wait_for(lambda: len(receiver.requests) >= 20, 30, "the burst to be under way", first)
            assert len(receiver.requests) < 200, (
                "the burst ended before the kill: slow the receiver"
            )
            first.kill9()
            took = wait_for(
                lambda: "now leads" in second.log(), 20, "the standby to take over", second
            )
            wait_for(
                lambda: len({json.loads(r.body)["alert_id"] for r in receiver.requests}) >= 200,
                60,
                "every alert",
                second,
            )
            time.sleep(2)
            assert second.stop() == 0
        finally:
            first.stop()
            second.stop()
        assert took < 15, f"takeover took {took:.1f} s"

    assert stored_alerts(pg_url) == 200
    by_alert: dict[str, set[str]] = {}
    for request in receiver.requests:
        by_alert.setdefault(json.loads(request.body)["alert_id"], set()).add(
            request.headers["webhook-id"]
        )
    assert len(by_alert) == 200
    assert all(len(ids) == 1 for ids in by_alert.values())  # one delivery per alert, never two
    resent = sum(
        n - 1 for n in Counter(r.headers["webhook-id"] for r in receiver.requests).values()
    )
    # A resend of the same delivery (same webhook-id) happens only for a request the killed
    # leader had in flight: at most its delivery concurrency.
    assert resent <= 4, f"{resent} resends"
    assert not re.search(r"Traceback", first.log() + second.log())


def test_a_frozen_leader_is_replaced_and_polls_nothing_once_it_resumes(
    tmp_path: Path, pg_url: str
) -> None:
    """SIGSTOP keeps the leader's TCP session open, so its lock does not go away by itself:
    the standby must terminate the stale holder within EARNWATCH_FAILOVER, and the old
    leader, resumed, must notice it no longer leads and poll nothing."""
    failover = 4.0
    with FakeFinnhub() as feed_a, FakeFinnhub() as feed_b, Receiver() as receiver:
        for feed in (feed_a, feed_b):  # one feed per replica: who polled is observable
            feed.set_event(
                symbol="LUMN", date=TODAY, hour="amc", year=2025, quarter=4, epsEstimate=-0.21
            )
        first = replica(tmp_path / "a", pg_url, feed_a, receiver, LUMN_MISS)
        second = replica(tmp_path / "b", pg_url, feed_b, receiver, LUMN_MISS)
        for folder in (tmp_path / "a", tmp_path / "b"):
            with (folder / ".env").open("a") as env:
                env.write(f"EARNWATCH_FAILOVER={failover}s\nEARNWATCH_CALENDAR_REFRESH=1s\n")
        first.start()
        try:
            wait_for(lambda: "now leads" in first.log(), 20, "the first replica to lead", first)
            second.start()
            wait_for(
                lambda: "standby" in second.log(), 20, "the second replica to stand by", second
            )
            assert first.process is not None
            first.process.send_signal(signal.SIGSTOP)
            took = wait_for(
                lambda: "now leads" in second.log(),
                3 * failover,
                "the standby to take over",
                second,
            )
            first.process.send_signal(signal.SIGCONT)
            wait_for(
                lambda: "stopped leading" in first.log(),
                10,
                "the resumed replica to step down",
                first,
            )
            polls_after = feed_a.count("/calendar/earnings")
            for feed in (feed_a, feed_b):  # now the report is out, a miss
                feed.set_event(
                    symbol="LUMN",
                    date=TODAY,
                    hour="amc",
                    year=2025,
                    quarter=4,
                    epsEstimate=-0.21,
                    epsActual=-0.3,
                )
            wait_for(
                lambda: len(receiver.requests) >= 1, 10, "the miss from the new leader", second
            )
            time.sleep(3)
            assert feed_a.count("/calendar/earnings") == polls_after  # the old leader polls nothing
            assert len(receiver.requests) == 1
        finally:
            if first.process is not None and first.process.poll() is None:
                first.process.send_signal(signal.SIGCONT)
            first.stop()
            second.stop()
    assert took < failover * 1.5, f"takeover took {took:.1f} s with EARNWATCH_FAILOVER={failover}s"
    assert stored_alerts(pg_url) == 1

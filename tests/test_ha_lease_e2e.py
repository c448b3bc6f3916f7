"""Two `earnwatch run` on one PostgreSQL, the leader killed with kill -9 while it has
deliveries in flight: the survivor sees the dead replica's liveness lock gone and resends
those deliveries at once, not when their (one-minute) lease runs out."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver, Reply
from tests.test_ha_e2e import TODAY, stored_alerts

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FAILOVER = 6.0
HELD = 8  # the leader's first claims (its delivery concurrency), held by the receiver
SYMBOLS = [f"K{i:03d}" for i in range(12)]
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


def replica(folder: Path, pg_url: str, finnhub: FakeFinnhub, receiver: Receiver) -> Daemon:
    folder.mkdir()
    lines = [
        "FINNHUB_API_KEY=test-finnhub-key",
        f"FINNHUB_BASE_URL={finnhub.base_url}",
        f"EARNWATCH_DATABASE_URL={pg_url}",
        "EARNWATCH_ALLOW_PRIVATE_TARGETS=true",
        "EARNWATCH_HTTP=off",
        f"EARNWATCH_DELIVERY_CONCURRENCY={HELD}",
        f"EARNWATCH_DELIVERY_PER_HOST={HELD}",  # every held send to the one receiver
        "EARNWATCH_DELIVERY_LEASE=60s",  # far beyond the bound below: it must not matter
        f"EARNWATCH_FAILOVER={FAILOVER:g}s",
        f"HOOK_URL={receiver.url_for('/hook')}",
    ]
    (folder / ".env").write_text("\n".join(lines) + "\n")
    (folder / "rules.yaml").write_text(RULES)
    return Daemon(folder, "--rules", "rules.yaml")


def delivered(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        query = "SELECT count(*) FROM delivery WHERE status = 'delivered'"
        return int(connection.execute(sa.text(query)).scalar_one())


def test_deliveries_in_flight_at_a_killed_leader_arrive_within_failover_plus_5_s(
    tmp_path: Path, pg_url: str
) -> None:
    # The first HELD requests (the leader's first batch) get no answer before the kill.
    script = [Reply(200, b"ok", delay=30.0)] * HELD
    with FakeFinnhub() as finnhub, Receiver(script, default=Reply(200, b"ok")) as receiver:
        for symbol in SYMBOLS:  # reports already out, each a miss
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
        engine = sa.create_engine(pg_url)
        try:
            wait_for(lambda: "now leads" in first.log(), 20, "the first replica to lead", first)
            wait_for(lambda: len(receiver.requests) >= HELD, 20, "the leader's sends", first)
            second.start()
            wait_for(lambda: "standby" in second.log(), 20, "the second replica", second)
            wait_for(
                lambda: delivered(engine) == len(SYMBOLS) - HELD,
                20,
                "the standby to deliver the rest",
                second,
            )
            assert delivered(engine) == len(SYMBOLS) - HELD  # the held ones are in flight
            first.kill9()
            killed = time.monotonic()
            took = wait_for(
                lambda: delivered(engine) == len(SYMBOLS),
                FAILOVER + 20,
                "the dead leader's deliveries",
                second,
            )
            wait_for(lambda: "now leads" in second.log(), 20, "the standby to lead", second)
            time.sleep(2)
            assert second.stop() == 0
        finally:
            first.stop()
            second.stop()
            engine.dispose()
    assert took < FAILOVER + 5, f"the in-flight deliveries took {took:.1f} s after the kill"
    assert stored_alerts(pg_url) == len(SYMBOLS)
    by_alert: dict[str, set[str]] = {}
    for request in receiver.requests:
        by_alert.setdefault(json.loads(request.body)["alert_id"], set()).add(
            request.headers["webhook-id"]
        )
    assert len(by_alert) == len(SYMBOLS)
    assert all(len(ids) == 1 for ids in by_alert.values())  # one delivery per alert
    sends = Counter(r.headers["webhook-id"] for r in receiver.requests)
    resent = [webhook_id for webhook_id, n in sends.items() if n > 1]
    held = {r.headers["webhook-id"] for r in receiver.requests[:HELD]}
    assert set(resent) == held and all(sends[w] == 2 for w in resent)  # only those in flight
    assert all(r.at - killed < FAILOVER + 5 for r in receiver.requests[HELD:] if r.at > killed)
    assert not re.search(r"Traceback", first.log() + second.log())

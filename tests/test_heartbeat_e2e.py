"""End to end (issue #10.14): the dead man's switch beats while healthy, and only then."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.alerting_e2e import health, write_env
from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

pytestmark = pytest.mark.slow

PING = "/ping/0c5e8a7e-hb-s3cr3t"
RULES = """\
rules:
  - name: lumn-above
    symbols: [LUMN]
    when: price > 9
"""


def test_heartbeats_arrive_every_second_while_healthy_and_stop_while_not(
    tmp_path: Path,
) -> None:
    with FakeFinnhub() as finnhub, Receiver() as receiver:

        def pings() -> int:
            return sum(1 for r in receiver.requests if r.path == PING and r.method == "GET")

        finnhub.set_quote("LUMN", 8.0, 7.2, int(time.time()))
        write_env(
            tmp_path,
            finnhub,
            receiver,
            [
                f"EARNWATCH_HEARTBEAT_URL={receiver.url_for(PING)}",
                "EARNWATCH_HEARTBEAT_INTERVAL=1s",
            ],
        )
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: pings() >= 3, 20, "three heartbeats", daemon)
            with finnhub.lock:
                finnhub.faults = [(500, '{"error": "boom"}')] * 100_000
            wait_for(lambda: health(daemon)[0] == 503, 20, "an unhealthy daemon", daemon)
            stopped_at = pings()
            time.sleep(3.5)
            assert pings() <= stopped_at + 1  # at most one beat already on its way
            silent = pings()
            with finnhub.lock:
                finnhub.faults = []
            # The provider's circuit breaker skips it for 30 s after 5 failures in a row.
            wait_for(lambda: pings() >= silent + 2, 60, "heartbeats again", daemon)
            assert daemon.stop() == 0
        log = daemon.log()
    assert log.count("heartbeat withheld while unhealthy: ") == 1, log[-3000:]
    assert "0c5e8a7e" not in log and "s3cr3t" not in log and "Traceback" not in log

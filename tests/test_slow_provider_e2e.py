"""End to end (issue #10.4): Finnhub's `/quote` drips one byte every 2 s for one symbol
under a 3 s timeout (httpx's timeouts are per read, so without a total deadline that call
lasts hours). `earnwatch run` gives it up at its deadline (logged), keeps polling the
other symbol, alerts its crossing, and `/healthz` turns 503 naming the stalled symbol."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e import Daemon, wait_for
from tests.fakes.drip import DripFinnhub
from tests.servers import Receiver
from tests.test_daemon_e2e import write_env

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}", secret: "${HOOK_SECRET}"}
rules:
  - name: lumn-above
    symbols: [LUMN]
    when: price > 8
    notify: [hook]
  - name: slow-above
    symbols: [SLOW]
    when: price > 8
    notify: [hook]
"""


def health(daemon: Daemon) -> httpx.Response:
    port = re.search(r"health and metrics on http://127\.0\.0\.1:(\d+)", daemon.log())
    assert port is not None, daemon.log()[-2000:]
    return httpx.get(f"http://127.0.0.1:{port.group(1)}/healthz", timeout=5)


def test_a_dripping_quote_is_cut_at_its_deadline_and_healthz_turns_503(tmp_path: Path) -> None:
    with DripFinnhub(interval=2.0) as finnhub, Receiver() as receiver:
        finnhub.set_quote("LUMN", 7.5, 7.4, int(time.time()))
        finnhub.drip.add("SLOW")
        write_env(tmp_path, finnhub, receiver, None)
        with (tmp_path / ".env").open("a") as env:
            env.write("EARNWATCH_HTTP_TIMEOUT=3s\n")
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: finnhub.count("/quote") >= 2, 15, "the first quote calls", daemon)
            wait_for(
                lambda: "quote gave no complete answer within 3 s" in daemon.log(),
                15,
                "the deadline of the dripping call, logged",
                daemon,
            )
            lumn_calls = sum(1 for p, q, _ in finnhub.requests if q.get("symbol") == ["LUMN"])
            finnhub.set_quote("LUMN", 8.2, 7.4, int(time.time()))  # the crossing
            wait_for(lambda: receiver.requests, 20, "the LUMN alert", daemon)
            wait_for(
                lambda: health(daemon).status_code == 503,
                30,
                "/healthz to report the stale SLOW price",
                daemon,
            )
            reply = health(daemon)
            later = sum(1 for p, q, _ in finnhub.requests if q.get("symbol") == ["LUMN"])
            daemon.stop()
    assert "SLOW" in reply.text and "older than" in reply.text, reply.text
    assert later >= lumn_calls + 2  # LUMN kept being polled while SLOW stalled
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert [b["rule"] for b in bodies] == ["lumn-above"]
    log = daemon.log()
    assert "test-finnhub-key" not in log and "Traceback" not in log

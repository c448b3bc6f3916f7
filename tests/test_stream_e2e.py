"""End to end: `earnwatch run` against a local Finnhub (REST and its trade stream) and a
webhook receiver (issue #12.1). The stream's trades alert at once; a closed or silent
stream is replaced with backoff while REST polling keeps alerting; a late, older trade
never moves the price back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.alerting_e2e import health, metric, write_env
from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.fakes.finnhub_stream import FakeFinnhubStream
from tests.servers import Receiver

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-above
    symbols: [LUMN]
    when: price > 7.56
    notify: [hook]
"""


def stream_env(stream: FakeFinnhubStream, *extra: str) -> list[str]:
    return ["EARNWATCH_STREAM=finnhub", f"FINNHUB_STREAM_URL={stream.url}", *extra]


def prices(receiver: Receiver) -> list[float]:
    return [json.loads(r.body)["values"]["price"] for r in receiver.requests]


def test_a_streamed_trade_alerts_within_a_second_once_and_a_late_older_one_is_dropped(
    tmp_path: Path,
) -> None:
    with FakeFinnhub() as finnhub, FakeFinnhubStream() as stream, Receiver() as receiver:
        finnhub.set_quote("LUMN", 7.20, 8.46, int(time.time()) - 5)
        # REST every 60 s: it cannot be what delivers the crossing below.
        write_env(
            tmp_path,
            finnhub,
            receiver,
            stream_env(stream, "EARNWATCH_PRICE_POLL=60s", "EARNWATCH_OFF_HOURS_POLL=60s"),
        )
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: stream.subscribed() == {"LUMN"}, 15, "the subscription", daemon)
            wait_for(lambda: finnhub.count("/quote") >= 1, 10, "the first REST price", daemon)
            wait_for(lambda: metric(daemon, "earnwatch_stream_connected") == 1, 10, "connected")
            time.sleep(0.5)
            quotes_before = finnhub.count("/quote")
            now_ms = int(time.time() * 1000)
            sent = time.monotonic()
            stream.trade("LUMN", 7.61, now_ms)
            wait_for(lambda: receiver.requests, 1.0, "the streamed crossing", daemon)
            latency = receiver.requests[0].at - sent
            # Late and older: were it taken, 7.00 would re-arm the rule and 7.62 fire again.
            stream.trade("LUMN", 7.00, now_ms - 2_000)
            stream.trade("LUMN", 7.62, now_ms + 1)
            wait_for(
                lambda: metric(daemon, "earnwatch_stream_trades_total") >= 2, 5, "trades counted"
            )
            time.sleep(1.5)
            assert finnhub.count("/quote") == quotes_before  # no REST poll meanwhile
            assert health(daemon) == (200, "ok")
            assert metric(daemon, "earnwatch_price_age_seconds_count") >= 2
            assert daemon.stop() == 0
        log = daemon.log()
    assert prices(receiver) == [7.61]
    assert latency < 1.0
    assert "test-finnhub-key" not in log
    assert "stream: connected to ws://127.0.0.1" in log


def test_a_closed_then_silent_stream_is_replaced_with_backoff_while_rest_alerts(
    tmp_path: Path,
) -> None:
    with FakeFinnhub() as finnhub, FakeFinnhubStream() as stream, Receiver() as receiver:
        finnhub.set_quote("LUMN", 7.20, 8.46, int(time.time()))
        write_env(tmp_path, finnhub, receiver, stream_env(stream, "EARNWATCH_STREAM_IDLE=2s"))
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: stream.subscribed(1) == {"LUMN"}, 15, "subscribed", daemon)
            stream.close_all()  # Finnhub closes the stream
            wait_for(lambda: stream.subscribed(2) == {"LUMN"}, 10, "resubscribed", daemon)
            # Then it goes quiet without closing, and refuses the next connections.
            stream.token = "another-key"
            stream.silent = True
            silent_at = time.monotonic()
            wait_for(lambda: stream.refused >= 1, 15, "the watchdog's reconnection", daemon)
            assert time.monotonic() - silent_at >= 2.0
            wait_for(
                lambda: health(daemon)[1].startswith("ok (degraded: stream down since "),
                5,
                "degraded health",
                daemon,
            )
            assert health(daemon)[0] == 200
            assert metric(daemon, "earnwatch_stream_connected") == 0
            finnhub.set_quote("LUMN", 7.61, 8.46, int(time.time()))  # REST still covers
            wait_for(lambda: receiver.requests, 10, "the crossing through REST", daemon)
            refused = stream.refused
            stream.token, stream.silent = "test-finnhub-key", False
            wait_for(lambda: stream.subscribed(3) == {"LUMN"}, 30, "back on the stream", daemon)
            wait_for(lambda: health(daemon) == (200, "ok"), 5, "healthy again", daemon)
            assert daemon.stop() == 0
        log = daemon.log()
    assert prices(receiver) == [7.61]
    assert refused <= 4  # backed off: 1, 2, 4 s... not a tight loop
    assert log.count("refused the connection") == 1  # logged once
    assert "nothing received for 2 s" in log
    assert "test-finnhub-key" not in log and "another-key" not in log

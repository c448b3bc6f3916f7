"""End to end (issue #10.11): Finnhub answers `/quote` with `charset=hex`. Each call is a
provider data error: logged in one line, counted in
`earnwatch_provider_errors_total{kind="data"}`, and `/healthz` turns 503 saying why,
where the LookupError used to escape as a traceback while `/healthz` said ok."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e import Daemon, wait_for
from tests.fakes.charset import CharsetFinnhub
from tests.servers import Receiver
from tests.test_daemon_e2e import write_env

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}", secret: "${HOOK_SECRET}"}
rules:
  - {name: lumn-above, symbols: [LUMN], when: price > 8, notify: [hook]}
"""


def test_an_unreadable_charset_is_a_counted_data_error_and_healthz_says_so(
    tmp_path: Path,
) -> None:
    with CharsetFinnhub() as finnhub, Receiver() as receiver:
        finnhub.set_quote("LUMN", 8.46, 8.93, int(time.time()))
        write_env(tmp_path, finnhub, receiver, None)
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: "health and metrics on" in daemon.log(), 15, "the server", daemon)
            port = re.search(r"health and metrics on http://127\.0\.0\.1:(\d+)", daemon.log())
            assert port is not None
            base = f"http://127.0.0.1:{port.group(1)}"
            wait_for(
                lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 503,
                20,
                "/healthz to report the failing quotes",
                daemon,
            )
            health = httpx.get(f"{base}/healthz", timeout=5).text
            metrics = httpx.get(f"{base}/metrics", timeout=5).text
            daemon.stop()
    assert "unreadable charset 'hex'" in health, health
    assert re.search(
        r'earnwatch_provider_errors_total\{kind="data",provider="finnhub"\} [1-9]', metrics
    ), metrics
    log = daemon.log()
    assert "unreadable charset 'hex'" in log and "Traceback" not in log
    assert receiver.requests == []

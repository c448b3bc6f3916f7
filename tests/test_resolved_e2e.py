"""End to end: `earnwatch run` as a subprocess, a rule with `notify_resolved: true`, a
local server speaking Finnhub's API and a webhook receiver. The price crosses up (one
`alert.fired`), then falls back below `clear_when` (one `alert.resolved` naming it), and
a restart sends neither again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import ROOT, Daemon, fast_env, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-above-target
    symbols: [LUMN]
    when: price > 7.56
    clear_when: price < 7.40
    notify_resolved: true
    notify: [hook]
"""


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    with FakeFinnhub() as fake:
        yield fake


def price(finnhub: FakeFinnhub, value: float) -> None:
    finnhub.set_quote("LUMN", value, 8.46, int(time.time()))


def quote_polls_after(finnhub: FakeFinnhub, polls: int) -> int:
    """How many quote requests the fake will have seen after `polls` more."""
    return finnhub.count("/quote") + polls


def bodies(receiver: Receiver) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in receiver.requests]


def history_json(folder: Path) -> list[dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EARNWATCH_", "FINNHUB_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "service", "history", "--json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    entries: list[dict[str, object]] = json.loads(done.stdout)
    return entries


def test_falling_back_below_clear_when_sends_one_alert_resolved_naming_the_fired_alert(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    price(finnhub, 7.50)
    with Receiver() as receiver:
        lines = [*fast_env(tmp_path, finnhub.base_url), f"HOOK_URL={receiver.url_for('/hook')}"]
        (tmp_path / ".env").write_text("\n".join(lines) + "\n")
        (tmp_path / "rules.yaml").write_text(RULES)
        daemon = Daemon(tmp_path, "--rules", "rules.yaml")
        with daemon:
            polled = quote_polls_after(finnhub, 2)
            wait_for(lambda: finnhub.count("/quote") >= polled, 15, "two quote polls", daemon)
            assert receiver.requests == []  # 7.50: below the target, nothing fired

            price(finnhub, 7.70)
            wait_for(lambda: len(receiver.requests) >= 1, 10, "the fired alert", daemon)
            price(finnhub, 7.45)  # below the target, not below clear_when: still not resolved
            polled = quote_polls_after(finnhub, 2)
            wait_for(lambda: finnhub.count("/quote") >= polled, 10, "two more polls", daemon)
            assert len(receiver.requests) == 1, bodies(receiver)

            price(finnhub, 7.38)
            wait_for(lambda: len(receiver.requests) >= 2, 10, "the resolved message", daemon)
            polled = quote_polls_after(finnhub, 2)
            wait_for(lambda: finnhub.count("/quote") >= polled, 10, "two more polls", daemon)
            assert daemon.stop() == 0

        daemon.start()  # a restart from the stored states: nothing is owed, nothing is sent
        polled = quote_polls_after(finnhub, 3)
        wait_for(lambda: finnhub.count("/quote") >= polled, 15, "polls after restart", daemon)
        assert daemon.stop() == 0
        fired, resolved, *more = bodies(receiver)

    assert more == [], more
    assert fired["type"] == "alert.fired" and "resolves" not in fired
    assert resolved["type"] == "alert.resolved"
    assert resolved["resolves"] == fired["alert_id"]
    assert resolved["alert_id"] != fired["alert_id"]
    assert resolved["title"] == "LUMN · lumn-above-target resolved"
    assert resolved["message"] == "RESOLVED: LUMN: lumn-above-target no longer holds (price 7.38)"
    assert resolved["values"]["price"] == 7.38  # type: ignore[index]

    newest, oldest = history_json(tmp_path)
    assert (newest["kind"], newest["resolves"]) == ("resolved", fired["alert_id"])
    assert (oldest["kind"], oldest["resolves"]) == ("fired", None)
    assert "Traceback" not in daemon.log()

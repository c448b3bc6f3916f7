"""End to end (issue #10.1): one poisoned rule never silences the others.

The condition language can no longer raise at run time (overflow, division by zero and
non-finite results are unknown, numbers too big for a float are refused at load), so the
poisoned condition here overflows to infinity and must read as unknown: it neither fires
nor stops the other rules. A condition that raises anyway is isolated by the engine
(tests/test_engine_errors.py injects one)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.alerting_e2e import metric, write_env
from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
defaults:
  notify: [hook]
rules:
  - name: poison
    symbols: [LUMN]
    when: price * 1e308 * 10 > 1
  - name: loud
    symbols: [LUMN]
    when: price > 9
    message: "{{ symbol|truncate(1) }}"
  - name: good
    symbols: [LUMN]
    when: price > 9
    message: "{{ symbol }} above 9: {{ price }}"
"""


def test_a_rule_whose_condition_or_message_raises_never_silences_the_others(
    tmp_path: Path,
) -> None:
    with FakeFinnhub() as finnhub, Receiver() as receiver:
        finnhub.set_quote("LUMN", 8.0, 8.5, int(time.time()))
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: finnhub.count("/quote") >= 3, 15, "several quote polls", daemon)
            finnhub.set_quote("LUMN", 9.5, 8.5, int(time.time()))
            wait_for(lambda: len(receiver.requests) >= 2, 10, "the two alerts", daemon)
            time.sleep(2)  # more passes: the poisoned rule keeps failing, logged once
            renders = metric(daemon, "earnwatch_rule_errors_total", rule="loud", kind="render")
            assert daemon.stop() == 0
        log = daemon.log()
    messages = {
        json.loads(r.body)["rule"]: json.loads(r.body)["message"] for r in receiver.requests
    }
    assert len(receiver.requests) == 2, log[-3000:]
    assert messages["good"] == "LUMN above 9: 9.5"
    assert messages["loud"].startswith("LUMN: loud (price > 9): price 9.5")
    assert "message template failed" in messages["loud"]
    assert renders == 1
    assert "poison" not in messages
    assert log.count("rule 'loud': its message failed to render (AssertionError)") == 1
    assert "Traceback" not in log

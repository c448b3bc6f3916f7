"""End to end: `earnwatch run` with rules whose templates fail or overflow at render time.
Each alert still arrives, once: the failing one with the default message and a note, the
overflowing one cut at the cap, and the rules beside them untouched."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.rules.templates import MESSAGE_CAP, TRUNCATED
from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver
from tests.test_daemon_e2e import MISSED, ROW, write_env

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}", secret: "${HOOK_SECRET}"}
defaults:
  notify: [hook]
rules:
  - name: broken-template
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    message: "{{ symbol|truncate(1) }}"
  - name: long-template
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    message: "{{ symbol }}{% for i in 'x' * 5000 %} {{ eps_actual }}{% endfor %}"
  - name: good-template
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    message: "{{ symbol }} missed: EPS {{ eps_actual }} vs {{ eps_estimate }}"
"""


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    with FakeFinnhub() as fake:
        fake.set_event(**ROW)
        fake.set_quote("LUMN", 8.46, 8.93, int(time.time()))
        yield fake


def test_alerts_of_failing_and_overlong_templates_arrive_with_the_fallback(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver, None)
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(
                lambda: finnhub.count("/calendar/earnings") >= 2, 15, "the first polls", daemon
            )
            finnhub.set_event(**MISSED)
            wait_for(lambda: len(receiver.requests) >= 3, 10, "the three alerts", daemon)
            time.sleep(3)  # more passes over the same report: nothing more
            log = daemon.log()
            assert daemon.stop() == 0
    messages = {
        body["rule"]: body["message"]
        for body in (json.loads(request.body) for request in receiver.requests)
    }
    assert len(receiver.requests) == 3, messages
    assert messages["broken-template"] == (
        "LUMN: broken-template (reported and eps_actual < eps_estimate): eps_actual -0.3, "
        "eps_estimate -0.21, reported true (message template failed: AssertionError)"
    )
    long = messages["long-template"]
    assert len(long) <= MESSAGE_CAP and long.startswith("LUMN -0.3 -0.3 ")
    assert long.endswith(TRUNCATED)
    assert messages["good-template"] == "LUMN missed: EPS -0.3 vs -0.21"
    assert "Traceback" not in log


GOOD = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}", secret: "${HOOK_SECRET}"}
rules:
  - name: lumn-miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify: [hook]
    message: "{{ symbol }} missed: EPS {{ eps_actual }} vs {{ eps_estimate }}"
"""
HOSTILE = (
    GOOD
    + """\
  - name: bomb
    symbols: [LUMN]
    when: reported
    notify: [hook]
    message: "{% for i in [1]*10**7 %}{% endfor %}{{ 'x' * 10**9 }}"
"""
)


def test_a_reload_with_a_hostile_template_is_refused_and_the_old_rules_fire(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver, None)
        rules = tmp_path / "rules.yaml"
        rules.write_text(GOOD)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(
                lambda: finnhub.count("/calendar/earnings") >= 2, 15, "the first polls", daemon
            )
            rules.write_text(HOSTILE)
            assert daemon.process is not None
            daemon.process.send_signal(signal.SIGHUP)
            # 35 s and 7.6 GB before the bound; generous here.
            wait_for(lambda: "rule file refused" in daemon.log(), 20, "the refusal", daemon)
            finnhub.set_event(**MISSED)
            wait_for(lambda: receiver.requests, 10, "the old rule's alert", daemon)
            time.sleep(2)
            log = daemon.log()
            assert daemon.stop() == 0
    assert [json.loads(r.body)["rule"] for r in receiver.requests] == ["lumn-miss"]
    assert (
        "rules.yaml:13:14: rules[1].message: the message breaks a limit: a repetition would be "
        "larger than 20,000 characters or items (20,000,000)" in log
    ), log[-3000:]
    assert "Traceback" not in log

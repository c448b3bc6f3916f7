"""End to end: `earnwatch run` with rules whose templates fail or overflow at render time.
Each alert still arrives, once: the failing one with the default message and a note, the
overflowing one cut at the cap, and the rules beside them untouched."""

from __future__ import annotations

import json
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

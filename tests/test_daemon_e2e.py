"""End to end: `earnwatch run` as a subprocess against a local server that speaks
Finnhub's API, a local webhook receiver and a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e import Daemon, count_rows, fast_env, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver, Reply, SmtpServer

pytestmark = pytest.mark.slow

TODAY = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
ROW = {
    "symbol": "LUMN",
    "date": TODAY,
    "hour": "amc",
    "year": 2025,
    "quarter": 4,
    "epsEstimate": -0.21,
    "revenueEstimate": 3080000000,
}
MISSED = {**ROW, "epsActual": -0.30, "revenueActual": 3041000000}

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}", secret: "${HOOK_SECRET}"}
  mail: {type: email, to: [me@example.com]}
rules:
  - name: lumn-miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify: %s
    message: "{{ symbol }} missed: EPS {{ eps_actual }} vs {{ eps_estimate }}"
"""


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    with FakeFinnhub() as fake:
        fake.set_event(**ROW)
        fake.set_quote("LUMN", 8.46, 8.93, int(time.time()))
        yield fake


def write_env(
    folder: Path, finnhub: FakeFinnhub, receiver: Receiver, smtp: SmtpServer | None
) -> None:
    lines = [
        *fast_env(folder, finnhub.base_url),
        "EARNWATCH_DELIVERY_LEASE=3s",  # a send cut short by kill -9 is retaken after this
        f"HOOK_URL={receiver.url_for('/hooks/earnings-s3cr3t-path')}",
        "HOOK_SECRET=whsec_c2VjcmV0LXNpZ25pbmcta2V5",
    ]
    if smtp is not None:
        lines += ["SMTP_HOST=127.0.0.1", f"SMTP_PORT={smtp.port}", "SMTP_SECURITY=none"]
    (folder / ".env").write_text("\n".join(lines) + "\n")


def acknowledged(receiver: Receiver, statuses: list[int]) -> int:
    return sum(1 for s in statuses[: len(receiver.requests)] if 200 <= s < 300)


def test_a_reported_miss_arrives_once_on_each_channel_within_5_seconds(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver() as receiver, SmtpServer() as smtp:
        write_env(tmp_path, finnhub, receiver, smtp)
        (tmp_path / "rules.yaml").write_text(RULES % "[hook, mail]")
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(
                lambda: finnhub.count("/calendar/earnings") >= 2,
                15,
                "the daemon's first calendar polls",
                daemon,
            )
            assert receiver.requests == [] and smtp.messages == []  # not reported: nothing
            finnhub.set_event(**MISSED)
            took = wait_for(
                lambda: receiver.requests and smtp.messages, 5, "the alert on both channels", daemon
            )
            time.sleep(3)  # several more polls of the same report
            assert len(receiver.requests) == 1 and len(smtp.messages) == 1, daemon.log()[-3000:]
            port = re.search(r"health and metrics on http://127\.0\.0\.1:(\d+)", daemon.log())
            assert port is not None, daemon.log()[-2000:]
            base = f"http://127.0.0.1:{port.group(1)}"
            health = httpx.get(f"{base}/healthz", timeout=5)
            metrics = httpx.get(f"{base}/metrics", timeout=5).text
            code = daemon.stop()
        assert (health.status_code, health.text.strip()) == (200, "ok")
        assert 'earnwatch_alerts_fired_total{rule="lumn-miss"} 1.0' in metrics
        assert (
            'earnwatch_deliveries_total{channel_kind="webhook",outcome="delivered"} 1.0' in metrics
        )
        assert 'earnwatch_polls_total{kind="calendar"}' in metrics
        assert code == 0
    body = json.loads(receiver.requests[0].body)
    assert body["rule"] == "lumn-miss" and body["symbol"] == "LUMN"
    assert body["message"] == "LUMN missed: EPS -0.3 vs -0.21"
    assert body["values"]["eps_actual"] == -0.3 and body["values"]["eps_estimate"] == -0.21
    mail = smtp.messages[0].parsed
    assert (
        "-0.3" in mail.get_body(("plain",)).get_content()
        and "-0.21" in mail.get_body(("plain",)).get_content()
    )
    assert took < 5
    log = daemon.log()
    assert "test-finnhub-key" not in log and "s3cr3t-path" not in log and "Traceback" not in log


def test_killed_after_storing_and_before_delivering_the_alert_still_arrives_once(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    statuses: list[int] = []
    # Refusals take 2 s, so the kill always lands while a request is in flight (the hard
    # case: the delivery is leased to the dead process and must be retaken after restart).
    with Receiver(default=Reply(503, delay=2.0)) as receiver:
        write_env(tmp_path, finnhub, receiver, None)
        (tmp_path / "rules.yaml").write_text(RULES % "[hook]")
        db = tmp_path / "earnwatch.db"
        daemon = Daemon(tmp_path, "--rules", "rules.yaml").start()
        try:
            wait_for(
                lambda: finnhub.count("/calendar/earnings") >= 1,
                15,
                "the first calendar poll",
                daemon,
            )
            finnhub.set_event(**MISSED)
            wait_for(
                lambda: count_rows(db, "alert") == 1 and receiver.requests,
                10,
                "the stored alert and a refused attempt",
                daemon,
            )
            daemon.kill9()
            statuses += [503] * len(receiver.requests)
            receiver.default = Reply(200, b"ok")
            daemon.start()
            wait_for(
                lambda: len(receiver.requests) > len(statuses),
                30,
                "the delivery after the restart",
                daemon,
            )
            time.sleep(3)
            statuses += [200] * (len(receiver.requests) - len(statuses))
        finally:
            daemon.stop()
        assert acknowledged(receiver, statuses) == 1, daemon.log()[-3000:]
        assert count_rows(db, "alert") == 1  # the restart did not fire it again
        ids = {r.headers["webhook-id"] for r in receiver.requests}
        bodies = {r.body for r in receiver.requests}
        assert len(ids) == 1 and len(bodies) == 1  # every attempt the same delivery


def test_a_broken_edit_keeps_the_old_rules_and_a_fixed_edit_applies_within_5_seconds(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver, None)
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES % "[hook]")
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: "earnwatch running" in daemon.log(), 15, "the daemon to start", daemon)
            rules.write_text(
                (RULES % "[hook]").replace("eps_actual < eps_estimate", "eps_actul < eps_estimate")
            )
            wait_for(
                lambda: "rule file refused" in daemon.log(),
                5,
                "the refusal of the broken edit",
                daemon,
            )
            assert "rules.yaml:7:" in daemon.log() and "unknown name 'eps_actul'" in daemon.log()
            finnhub.set_event(**MISSED)  # the old rules still fire
            wait_for(lambda: len(receiver.requests) == 1, 5, "the alert from the old rules", daemon)
            fixed = (
                (RULES % "[hook]")
                + "  - name: lumn-above-8\n    symbols: [LUMN]\n    when: price > 8\n    notify: [hook]\n"
            )
            rules.write_text(fixed)
            took = wait_for(lambda: len(receiver.requests) == 2, 5, "the new rule's alert", daemon)
            time.sleep(2)
            assert [json.loads(r.body)["rule"] for r in receiver.requests] == [
                "lumn-miss",
                "lumn-above-8",
            ]
            assert took < 5

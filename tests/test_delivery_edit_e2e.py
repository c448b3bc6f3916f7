"""End to end: a delivery whose channel leaves the rule file waits for it (issue #10.5),
and no command prints a channel's secret URL or a receiver's echo of it (issue #9.9):
`earnwatch run` then `history --json`, `test-notify` and `check`, as subprocesses."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import ROOT, Daemon, fast_env, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver, Reply
from tests.slow_servers import DripReceiver
from tests.test_delivery_slow_e2e import row

pytestmark = pytest.mark.slow

SECRET_PATH = "/services/T000/B000/s3cr3tTOKENpath"
SECRET_QUERY = "code=AzureFnKey0123=="
RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
  other: {type: webhook, url: "${OTHER_URL}"}
rules:
  - name: miss
    symbols: [AAA]
    when: reported and eps_actual < eps_estimate
    notify: [hook]
    message: "{{ symbol }} missed"
"""
WITHOUT_HOOK = """\
channels:
  other: {type: webhook, url: "${OTHER_URL}"}
rules:
  - name: miss
    symbols: [AAA]
    when: reported and eps_actual < eps_estimate
    notify: [other]
    message: "{{ symbol }} missed"
"""


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    with FakeFinnhub() as fake:
        fake.set_event(**row("AAA", reported=False))
        fake.set_quote("AAA", 8.46, 8.93, int(time.time()))
        yield fake


def env_lines(folder: Path, finnhub: FakeFinnhub, hook: str, other: str) -> list[str]:
    return [
        *fast_env(folder, finnhub.base_url),
        f"HOOK_URL={hook}",
        f"OTHER_URL={other}",
    ]


def earnwatch(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EARNWATCH_", "FINNHUB_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def hook_delivery(db: Path) -> tuple[str, int]:
    with sqlite3.connect(db, timeout=5) as connection:
        status, attempts = connection.execute(
            "SELECT status, attempts FROM delivery WHERE channel = 'hook'"
        ).fetchone()
    return str(status), int(attempts)


def test_a_delivery_whose_channel_an_edit_removed_waits_and_arrives_once_it_is_back(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    refusal = Reply(503, f"Service Unavailable: POST {SECRET_PATH}?{SECRET_QUERY}")
    with Receiver(default=refusal) as hook, Receiver() as other:
        lines = env_lines(tmp_path, finnhub, hook.url_for(f"{SECRET_PATH}?{SECRET_QUERY}"), "")
        lines[-1] = f"OTHER_URL={other.url_for('/other')}"
        (tmp_path / ".env").write_text("\n".join(lines) + "\n")
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES)
        db = tmp_path / "earnwatch.db"
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: finnhub.count("/calendar/earnings") >= 1, 15, "a poll", daemon)
            finnhub.set_event(**row("AAA", reported=True))
            wait_for(lambda: len(hook.requests) >= 2, 15, "two refused attempts", daemon)
            rules.write_text(WITHOUT_HOOK)  # the edit removes the channel...
            wait_for(lambda: "is not in the rule file" in daemon.log(), 15, "the wait", daemon)
            # the claim is handed back just after that line is logged: read the row once it is
            wait_for(lambda: hook_delivery(db)[0] == "pending", 15, "the release", daemon)
            status, attempts = hook_delivery(db)
            seen = len(hook.requests)
            time.sleep(4)  # before: dead at once, and dead for good once the file came back
            assert hook_delivery(db) == (status, attempts) and status == "pending"
            hook.default = Reply(200, b"ok")
            rules.write_text(RULES)  # ...and the next edit brings it back
            wait_for(lambda: hook_delivery(db)[0] == "delivered", 20, "the delivery", daemon)
            log = daemon.log()
        assert len(hook.requests) == seen + 1  # waiting sent nothing
        assert hook_delivery(db) == ("delivered", attempts + 1)  # and burnt no attempt
        assert len({r.headers["webhook-id"] for r in hook.requests}) == 1
        assert "s3cr3t" not in log and "AzureFnKey" not in log and "Traceback" not in log

    history = earnwatch(tmp_path, "history", "--json")
    assert history.returncode == 0, history.stderr
    [entry] = json.loads(history.stdout)
    errors = [d["last_error"] for d in entry["deliveries"]]
    assert errors and all(e is None or "s3cr3t" not in e for e in errors)
    with sqlite3.connect(db) as connection:
        stored = [e for (e,) in connection.execute("SELECT error FROM attempt")]
    assert stored and not any("s3cr3t" in (e or "") or "AzureFnKey" in (e or "") for e in stored)
    assert any("Service Unavailable: POST ***?***" in (e or "") for e in stored), stored


def test_test_notify_and_check_print_no_secret_path_or_query(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver(default=Reply(404, f"Cannot POST {SECRET_PATH}?{SECRET_QUERY}")) as hook:
        url = hook.url_for(f"{SECRET_PATH}?{SECRET_QUERY}")
        lines = env_lines(tmp_path, finnhub, url, hook.url_for("/o"))
        (tmp_path / ".env").write_text("\n".join(lines) + "\n")
        (tmp_path / "rules.yaml").write_text(RULES)
        sent = earnwatch(tmp_path, "test-notify", "hook", "--rules", "rules.yaml")
        assert len(hook.requests) == 1
    assert sent.returncode == 1
    out = sent.stdout + sent.stderr
    assert out.strip() == "hook (webhook): failed (permanent): HTTP 404: Cannot POST ***?***"

    # refused by the SSRF check (private targets not allowed): the error names the host only
    public = [line for line in lines if "ALLOW_PRIVATE" not in line]
    (tmp_path / ".env").write_text("\n".join(public) + "\n")
    checked = earnwatch(tmp_path, "check", "rules.yaml")
    assert checked.returncode == 1
    out = checked.stdout + checked.stderr
    assert "refused target '127.0.0.1'" in out and f"http://127.0.0.1:{hook.url[17:]}/***" in out
    assert "s3cr3t" not in out and "AzureFnKey" not in out and "code=" not in out
    assert "Traceback" not in out


def test_test_notify_to_a_dripping_receiver_ends_at_the_send_deadline(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with DripReceiver() as slow:
        lines = env_lines(tmp_path, finnhub, slow.url_for("/hook"), slow.url_for("/o"))
        (tmp_path / ".env").write_text("\n".join([*lines, "EARNWATCH_DELIVERY_TIMEOUT=2s"]) + "\n")
        (tmp_path / "rules.yaml").write_text(RULES)
        started = time.monotonic()
        sent = earnwatch(tmp_path, "test-notify", "hook", "--rules", "rules.yaml")
        took = time.monotonic() - started
    assert sent.returncode == 1
    assert sent.stderr.strip() == (
        "hook (webhook): failed (retryable): no complete reply within 2 s"
    )
    assert took < 30  # before: it ran as long as the drip (1,000 bytes, 2 s apart)

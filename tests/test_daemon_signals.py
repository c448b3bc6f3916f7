"""Signals on `earnwatch run` as a subprocess: the handlers are there from the first log
line to the exit. A SIGHUP during the start is a reload, not the end; a storm of SIGTERMs
during the shutdown still ends in rc 0, and a second one cuts the delivery grace short."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_setup import MISSED, RULES, fake_finnhub, write_env
from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver, Reply

pytestmark = pytest.mark.slow


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    fake = fake_finnhub()
    try:
        yield fake
    finally:
        fake.stop()


def test_sighups_from_the_first_log_line_on_are_reloads_not_the_end(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(RULES)
        daemon = Daemon(tmp_path, "--rules", "rules.yaml").start()
        assert daemon.process is not None
        try:
            # The first line is written once `run()` began; SIGHUP every 20 ms from then
            # until the daemon runs (old code: killed by the first one before `_serve`).
            started = time.monotonic()
            while not daemon.log().strip() and time.monotonic() - started < 30:
                time.sleep(0.002)
            sent = 0
            while "earnwatch running" not in daemon.log() and daemon.process.poll() is None:
                daemon.process.send_signal(signal.SIGHUP)
                sent += 1
                time.sleep(0.02)
                assert time.monotonic() - started < 30, daemon.log()
            assert daemon.process.poll() is None, f"killed after {sent} SIGHUP(s)\n{daemon.log()}"
            wait_for(
                lambda: "rule file unchanged" in daemon.log(), 10, "the requested reload", daemon
            )
            assert daemon.process.poll() is None
        finally:
            code = daemon.stop()
        assert code == 0, daemon.log()[-3000:]
        assert sent >= 1
        assert "Traceback" not in daemon.log()


def test_a_storm_of_sigterms_during_the_shutdown_still_exits_cleanly(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(RULES)
        daemon = Daemon(tmp_path, "--rules", "rules.yaml").start()
        assert daemon.process is not None
        wait_for(lambda: "earnwatch running" in daemon.log(), 20, "the daemon to run", daemon)
        # SIGTERM every 2 ms until the process is gone: none may find the default action
        # (old code: removed its handlers before logging `stopped`, then rc -15).
        started = time.monotonic()
        while daemon.process.poll() is None and time.monotonic() - started < 30:
            daemon.process.send_signal(signal.SIGTERM)
            time.sleep(0.002)
        code = daemon.process.wait(5)
        log = daemon.log()
        assert code == 0, log[-3000:]
        assert "stopped" in log and "Traceback" not in log


def test_a_second_sigterm_cuts_the_delivery_grace_short(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver(default=Reply(200, b"ok", delay=60)) as receiver:
        write_env(tmp_path, finnhub, receiver, "EARNWATCH_SHUTDOWN_GRACE=60s")
        (tmp_path / "rules.yaml").write_text(RULES)
        daemon = Daemon(tmp_path, "--rules", "rules.yaml").start()
        assert daemon.process is not None
        try:
            wait_for(lambda: "earnwatch running" in daemon.log(), 20, "the daemon to run", daemon)
            finnhub.set_event(**MISSED)
            wait_for(lambda: receiver.requests, 15, "a delivery in flight", daemon)
            assert json.loads(receiver.requests[0].body)["rule"] == "lumn-miss"
            daemon.process.send_signal(signal.SIGTERM)
            wait_for(lambda: "stopping" in daemon.log(), 10, "the shutdown to begin", daemon)
            time.sleep(0.5)
            assert daemon.process.poll() is None  # waiting for the delivery (60 s grace)
            asked = time.monotonic()
            daemon.process.send_signal(signal.SIGTERM)
            code = daemon.process.wait(30)  # instead of the rest of the 60 s grace
            took = time.monotonic() - asked
        finally:
            daemon.stop()
        log = daemon.log()
        assert code == 0, log[-3000:]
        assert took < 20
        assert "SIGTERM again: cutting the shutdown grace short" in log
        assert "stopped" in log and "Traceback" not in log

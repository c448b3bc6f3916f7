"""End to end: what the pipeline stores arrives (issue #10.2 and #10.6)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.alerting_e2e import health, metric, write_env
from tests.e2e import Daemon, count_rows, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-above
    symbols: [LUMN]
    when: price > %s
    notify: [hook]
"""


def test_a_condition_edited_and_reverted_still_alerts_on_the_next_crossing(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    with FakeFinnhub() as finnhub, Receiver() as receiver:

        def quote(price: float) -> None:
            finnhub.set_quote("LUMN", price, 7.2, int(time.time()))

        def reloaded(count: int) -> None:
            wait_for(lambda: daemon.log().count("rules reloaded") >= count, 10, "reload", daemon)

        quote(8.0)
        write_env(tmp_path, finnhub, receiver)
        rules.write_text(RULES % "7.5")
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: len(receiver.requests) == 1, 15, "the first crossing", daemon)
            quote(7.0)  # below again: re-armed
            polls = finnhub.count("/quote")
            wait_for(lambda: finnhub.count("/quote") >= polls + 2, 10, "polls at 7.0", daemon)
            rules.write_text(RULES % "8.0")
            reloaded(1)
            rules.write_text(RULES % "7.5")  # reverted: the old fingerprint, a fresh state
            reloaded(2)
            quote(7.8)
            wait_for(lambda: len(receiver.requests) == 2, 10, "the second crossing", daemon)
            time.sleep(1.5)
            dropped = metric(daemon, "earnwatch_alerts_deduplicated_total", rule="lumn-above")
            assert daemon.stop() == 0
        log = daemon.log()
    assert [json.loads(r.body)["values"]["price"] for r in receiver.requests] == [8.0, 7.8]
    assert count_rows(tmp_path / "earnwatch.db", "alert") == 2
    assert log.count("alert lumn-above LUMN:") == 2 and dropped == 0
    assert "already recorded" not in log


def _immutable(paths: list[Path], on: bool) -> None:
    """`chattr +i`: the one way to make a file unwritable for root (who ignores modes),
    also through the descriptors SQLite already holds. The -shm file is left alone: it is
    memory-mapped, and an immutable one ends the process with SIGBUS."""
    for path in paths:
        subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)


@pytest.fixture
def can_chattr(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_text("")
    try:
        _immutable([probe], True)
        _immutable([probe], False)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("chattr +i is not available here (needs CAP_LINUX_IMMUTABLE and ext4)")


def test_a_crossing_while_the_database_is_read_only_arrives_once_it_is_writable(
    tmp_path: Path, can_chattr: None
) -> None:
    db = tmp_path / "earnwatch.db"
    files = [db, tmp_path / "earnwatch.db-wal"]
    with FakeFinnhub() as finnhub, Receiver() as receiver:

        def quote(price: float) -> None:
            finnhub.set_quote("LUMN", price, 7.2, int(time.time()))

        quote(8.0)
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_text(RULES % "9")
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: health(daemon) == (200, "ok"), 15, "a healthy daemon", daemon)
            try:
                _immutable(files, True)
                quote(9.5)  # the crossing, while nothing can be written
                wait_for(
                    lambda: health(daemon)[1].startswith("recording failed: "),
                    10,
                    "/healthz to report the failure",
                    daemon,
                )
                assert health(daemon)[0] == 503
                quote(8.0)  # reverted before the database is back
                polls = finnhub.count("/quote")
                wait_for(lambda: finnhub.count("/quote") >= polls + 2, 10, "polls", daemon)
                assert receiver.requests == [] and count_rows(db, "alert") == 0
            finally:
                _immutable(files, False)
            wait_for(lambda: receiver.requests, 10, "the alert once writable", daemon)
            wait_for(lambda: health(daemon) == (200, "ok"), 10, "/healthz ok again", daemon)
            time.sleep(2)
            assert daemon.stop() == 0
        log = daemon.log()
    assert len(receiver.requests) == 1, log[-3000:]
    assert json.loads(receiver.requests[0].body)["values"]["price"] == 9.5
    assert count_rows(db, "alert") == 1
    assert log.count("recording failed: ") == 1 and "recording works again" in log
    assert "Traceback" not in log

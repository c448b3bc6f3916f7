"""The SQLite store under `earnwatch run` as a subprocess: one daemon per database file, a
database that cannot be written refused at start, and a restart after kill -9 resending
the delivery left in flight at once (not after EARNWATCH_DELIVERY_LEASE)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.store import open_store
from tests.e2e import ROOT, Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver, Reply
from tests.test_daemon_e2e import MISSED, ROW

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-miss
    symbols: [LUMN]
    when: reported and eps_actual < eps_estimate
    notify: [hook]
"""


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    with FakeFinnhub() as fake:
        fake.set_event(**ROW)
        yield fake


def folder_for(
    folder: Path, database: Path, finnhub: FakeFinnhub, receiver: Receiver, *extra: str
) -> Path:
    folder.mkdir(exist_ok=True)
    lines = [
        "FINNHUB_API_KEY=test-finnhub-key",
        f"FINNHUB_BASE_URL={finnhub.base_url}",
        f"EARNWATCH_DATABASE_URL=sqlite:///{database}",
        "EARNWATCH_ALLOW_PRIVATE_TARGETS=true",
        "EARNWATCH_HTTP=off",
        "EARNWATCH_CALENDAR_REFRESH=1s",
        "EARNWATCH_EARNINGS_POLL=1s",
        f"HOOK_URL={receiver.url_for('/hook')}",
        *extra,
    ]
    (folder / ".env").write_text("\n".join(lines) + "\n")
    (folder / "rules.yaml").write_text(RULES)
    return folder


def earnwatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )


def exit_code(daemon: Daemon, within: float) -> int | None:
    """The daemon's exit code once it ended within `within` seconds, else None."""
    assert daemon.process is not None
    try:
        return daemon.process.wait(within)
    except subprocess.TimeoutExpired:
        return None


def test_a_second_daemon_on_one_sqlite_file_is_refused_and_history_still_works(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    database = tmp_path / "earnwatch.db"
    with Receiver() as receiver:
        first = Daemon(
            folder_for(tmp_path / "a", database, finnhub, receiver), "--rules", "rules.yaml"
        )
        second = Daemon(
            folder_for(tmp_path / "b", database, finnhub, receiver), "--rules", "rules.yaml"
        )
        try:
            first.start()
            wait_for(lambda: "earnwatch running" in first.log(), 20, "the first daemon", first)
            second.start()
            code = exit_code(second, 20)
            assert code == 2, f"the second daemon was not refused:\n{second.log()[-3000:]}"
            assert first.process is not None
            expected = (
                f"cannot start: another earnwatch process uses {database.resolve()} "
                f"(pid {first.process.pid}); SQLite allows one"
            )
            lines = [line for line in second.log().splitlines() if line.strip()]
            assert sum(expected in line for line in lines) == 1, second.log()
            assert "Traceback" not in second.log()
            assert "leads" not in second.log()  # it never polled

            history = earnwatch("history", cwd=tmp_path / "a")  # read-only: still works
            assert history.returncode == 0, history.stdout + history.stderr
            finnhub.set_event(**MISSED)
            wait_for(lambda: receiver.requests, 15, "the alert from the first daemon", first)
            wait_for(
                lambda: "lumn-miss" in earnwatch("history", cwd=tmp_path / "b").stdout,
                15,
                "history to show the alert",
            )
            assert first.process.poll() is None  # the first daemon runs on
            assert first.stop() == 0
        finally:
            first.stop()
            second.stop()
    assert len(receiver.requests) == 1
    assert "Traceback" not in first.log()
    # The lock went with the first daemon: a new one starts.
    with Receiver() as receiver:
        folder_for(tmp_path / "b", database, finnhub, receiver)
        again = Daemon(tmp_path / "b", "--rules", "rules.yaml").start()
        try:
            wait_for(lambda: "earnwatch running" in again.log(), 20, "a new daemon", again)
        finally:
            assert again.stop() == 0


def _immutable(path: Path, on: bool) -> bool:
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    flag = "+i" if on else "-i"
    return subprocess.run([chattr, flag, str(path)], capture_output=True).returncode == 0


def test_a_database_file_that_cannot_be_written_stops_the_start_with_one_line(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    """Root ignores file modes, so `chmod 444` proves nothing here: the file is made
    immutable (`chattr +i`, ext4 and others), which stops root's writes too."""
    database = tmp_path / "earnwatch.db"
    open_store(f"sqlite:///{database}").close()  # an existing, migrated database
    if not _immutable(database, True):
        pytest.skip("chattr +i is not available here (needs root and ext2/3/4, xfs or btrfs)")
    try:
        with Receiver() as receiver:
            folder = folder_for(tmp_path / "a", database, finnhub, receiver)
            daemon = Daemon(folder, "--rules", "rules.yaml").start()
            try:
                code = exit_code(daemon, 20)
            finally:
                daemon.stop()
    finally:
        _immutable(database, False)
    log = daemon.log()
    assert code == 2, f"the daemon started on a database it cannot write:\n{log[-3000:]}"
    problem = [line for line in log.splitlines() if "cannot start" in line]
    assert len(problem) == 1, log
    assert re.search(
        rf"cannot start: the database {re.escape(str(database.resolve()))} cannot be written: "
        r"OperationalError: attempt to write a readonly database",
        problem[0],
    ), log
    assert "Traceback" not in log


def test_a_restart_after_kill_9_resends_the_delivery_in_flight_at_once(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    """The lease is a minute; the resend comes within seconds of the restart, because the
    restarted daemon (alone on the file) knows the previous process's leases are void."""
    database = tmp_path / "earnwatch.db"
    finnhub.set_event(**MISSED)
    # The first request is held 30 s, so the kill lands while it is in flight.
    with Receiver([Reply(200, b"ok", delay=30)], default=Reply(200, b"ok")) as receiver:
        folder = folder_for(
            tmp_path / "a", database, finnhub, receiver, "EARNWATCH_DELIVERY_LEASE=60s"
        )
        daemon = Daemon(folder, "--rules", "rules.yaml").start()
        try:
            wait_for(lambda: receiver.requests, 20, "the delivery to be in flight", daemon)
            daemon.kill9()
            restarted = time.monotonic()
            daemon.start()
            wait_for(lambda: len(receiver.requests) >= 2, 15, "the resend", daemon)
            took = receiver.requests[1].at - restarted
            time.sleep(1)
            assert daemon.stop() == 0
        finally:
            daemon.stop()
    assert "due again" in daemon.log()
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 2 and ids[0] == ids[1]  # the same delivery, resent once
    assert json.loads(receiver.requests[1].body)["rule"] == "lumn-miss"
    assert took < 15
    assert "Traceback" not in daemon.log()

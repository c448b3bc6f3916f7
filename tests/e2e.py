"""Running `earnwatch run` as a user would: a subprocess with a rule file and `.env`, in a
temporary folder, against real servers on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fast_env(folder: Path, finnhub_base_url: str) -> list[str]:
    """The `.env` lines an end-to-end daemon starts from: a fake Finnhub, SQLite in
    `folder`, local receivers allowed, health on a free port, every poll each second, no trade
    stream (a later line may turn it on)."""
    return [
        "FINNHUB_API_KEY=test-finnhub-key",
        f"FINNHUB_BASE_URL={finnhub_base_url}",
        f"EARNWATCH_DATABASE_URL=sqlite:///{folder}/earnwatch.db",
        "EARNWATCH_ALLOW_PRIVATE_TARGETS=true",
        "EARNWATCH_HTTP=127.0.0.1:0",
        "EARNWATCH_CALENDAR_REFRESH=1s",
        "EARNWATCH_PRICE_POLL=1s",
        "EARNWATCH_OFF_HOURS_POLL=1s",
        "EARNWATCH_EARNINGS_POLL=1s",
        "EARNWATCH_STREAM=off",  # never Finnhub's real stream; tests/test_stream_e2e.py
    ]


class Daemon:
    """`earnwatch run` in `folder`, its output in `folder/daemon-N.log`."""

    def __init__(self, folder: Path, *args: str) -> None:
        self.folder = folder
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.folder / f"daemon-{self.starts}.log"

    def start(self) -> Daemon:
        self.starts += 1
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("EARNWATCH_", "FINNHUB_", "SMTP_"))
        }
        env["PYTHONPATH"] = str(ROOT)
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "run", *self.args],
                cwd=self.folder,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def log(self) -> str:
        return "\n".join(
            (self.folder / f"daemon-{n}.log").read_text(errors="replace")
            for n in range(1, self.starts + 1)
        )

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(
    condition: Callable[[], object], timeout: float, what: str, daemon: Daemon | None = None
) -> float:
    """Poll until `condition()` is truthy; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    detail = f"\n--- daemon log ---\n{daemon.log()[-4000:]}" if daemon else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")


def count_rows(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0

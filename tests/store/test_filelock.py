"""One daemon per SQLite file: the lock beside the database, its message, and what it leaves
alone (read-only opens, in-memory databases, a holder that died)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.errors import StoreError
from service.store import open_store
from service.store.filelock import ProcessLock, sqlite_file

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_daemon_store_on_one_file_is_refused_naming_the_file_and_the_pid(
    tmp_path: Path, sqlite_url: str
) -> None:
    first = open_store(sqlite_url, daemon=True)
    try:
        with pytest.raises(StoreError) as refused:
            open_store(sqlite_url, daemon=True)
        database = (tmp_path / "earnwatch.db").resolve()
        assert str(refused.value) == (
            f"another earnwatch process uses {database} (pid {os.getpid()}); SQLite allows one"
        )
        assert (tmp_path / "earnwatch.db.lock").read_text().strip() == str(os.getpid())
        reader = open_store(sqlite_url)  # history and friends open without the lock
        assert reader.pending_count() == 0
        reader.close()
    finally:
        first.close()
    again = open_store(sqlite_url, daemon=True)  # closing freed it
    again.close()
    again.close()  # idempotent


def test_in_memory_databases_take_no_lock(tmp_path: Path) -> None:
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("sqlite:///file:x?mode=memory&cache=shared&uri=true") is None
    assert sqlite_file("postgresql://u:p@h/db") is None
    one, two = open_store("sqlite://", daemon=True), open_store("sqlite://", daemon=True)
    one.close()
    two.close()


def test_the_lock_path_follows_symlinks_so_two_names_of_one_file_share_it(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real.db"
    link = tmp_path / "link.db"
    link.symlink_to(real)
    assert sqlite_file(f"sqlite:///{link}") == real.resolve()
    first = open_store(f"sqlite:///{real}", daemon=True)
    try:
        with pytest.raises(StoreError, match="another earnwatch process uses"):
            open_store(f"sqlite:///{link}", daemon=True)
    finally:
        first.close()


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    database = tmp_path / "earnwatch.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from service.store.filelock import ProcessLock;"
            f"ProcessLock.acquire(Path({str(database)!r})); print('locked', flush=True);"
            "time.sleep(60)",
        ],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        with pytest.raises(StoreError, match=rf"\(pid {holder.pid}\)"):
            ProcessLock.acquire(database)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
    deadline = time.monotonic() + 5
    while True:  # the kernel frees the lock with the process
        try:
            ProcessLock.acquire(database).release()
            break
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert (tmp_path / "earnwatch.db.lock").exists()  # never removed: see filelock.py


def test_a_lock_file_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot create the lock file .*nowhere/x\.db\.lock"):
        ProcessLock.acquire(tmp_path / "nowhere" / "x.db")

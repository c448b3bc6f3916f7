"""One daemon per SQLite database file: an exclusive `flock` on `PATH.lock` beside it.

SQLite has no leader election, so two `earnwatch run` on one file would both poll, both
evaluate, and drop each other's alerts under the dedup key. The daemon therefore takes a
non-blocking exclusive lock on `PATH.lock` (PATH resolved, symlinks followed) and holds it
for its lifetime; a second daemon is refused at once, naming the holder's pid, which the
lock file holds. The kernel frees the lock when the process ends, however it ends (kill -9
included), so a stale lock file never blocks a restart; the file itself is never removed
(removing it would let two processes lock two different inodes).

Read-only commands (`history`, `calendar`) do not take the lock. In-memory databases need
none.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from service.errors import StoreError
from service.store.db import parse_sqlite_url


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (resolved), or None for in-memory or other URLs."""
    parsed = parse_sqlite_url(url)
    if parsed is None or parsed.memory:
        return None
    database = parsed.database
    if parsed.uri and database.startswith("file:"):
        # sqlite:///file:NAME?mode=...&uri=true: the file is NAME
        database = database[len("file:") :].partition("?")[0]
    if database in ("", ":memory:"):
        return None
    return Path(os.path.realpath(database))


class ProcessLock:
    """An exclusive lock on `DATABASE.lock`, held until `release()` or the process ends."""

    def __init__(self, database: Path, fd: int) -> None:
        self.database = database
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> ProcessLock:
        """Lock and write our pid, or raise StoreError naming the process that holds it."""
        path = Path(f"{database}.lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            pid = f"pid {holder}" if holder is not None else "pid unknown"
            raise StoreError(
                f"another earnwatch process uses {database} ({pid}); SQLite allows one"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {path}: {exc.strerror}") from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is for the error message only; the lock is what counts
        return cls(database, fd)

    def release(self) -> None:
        """Unlock (idempotent). The file stays: see the module docstring."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None

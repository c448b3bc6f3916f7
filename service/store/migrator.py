"""The schema migration in a child process, so the daemon never holds Alembic.

Alembic and Mako are ~100 modules and ~5.6 MiB that a long-running process would keep
loaded after one `upgrade head` (first start, or the first start after an upgrade).
`migrate_in_child(url)` runs `python -m service.store.migrator` instead, which migrates
exactly as the in-process `db.migrate()` does (one transaction, under the advisory lock on
PostgreSQL: replicas starting together still migrate once) and exits.

- The URL (it may hold a password) goes on the child's stdin, never in its argv.
- The child's own failures come back as the one line the in-process path would raise
  (a `StoreError`'s message, or "cannot open the database: ..." for a driver error): it
  writes that line on stdout and exits with 1. A child that cannot start, dies or is
  killed is one line too, naming how it ended, with the URL's password masked.
- The child's log records (Alembic's "Running upgrade ..." lines) come back on stderr, one
  tab-separated `LEVEL<TAB>logger<TAB>message` line each, and are logged again here.

An in-memory SQLite cannot be migrated from another process: `open_store` migrates those
in-process, and so do the short-lived commands (a child's start would only slow them).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from service.errors import StoreError
from service.store.db import describe_error, migrate, open_database, password_of

log = logging.getLogger(__name__)

#: The child's exit code when it wrote its failure's line on stdout.
FAILED = 1
_MODULE = "service.store.migrator"
#: The folder that holds the `service` package: the child runs this tree's code.
_CODE_ROOT = Path(__file__).resolve().parents[2]


def migrate_in_child(url: str) -> None:
    """Migrate the database of `url` in a child process; raises StoreError as `migrate`."""
    env = dict(os.environ)
    if _CODE_ROOT.name not in ("site-packages", "dist-packages"):
        # a checkout run from its folder or PYTHONPATH; an installed package is found as
        # installed (site-packages ahead of the standard library could shadow it)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(_CODE_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
    try:
        done = subprocess.run(
            # -P: the working folder is not put on sys.path, so a folder of the user's
            # own that holds a `service` package cannot stand in for this one
            [sys.executable, "-P", "-m", _MODULE],
            input=url,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    except OSError as exc:
        raise StoreError(
            f"cannot start the schema migration's process ({sys.executable}): "
            f"{exc.strerror or type(exc).__name__}"
        ) from exc
    _relog(done.stderr)
    if done.returncode == 0:
        return
    line = done.stdout.strip().splitlines()
    if done.returncode == FAILED and line:
        raise StoreError(line[0])
    raise StoreError(_died(done, url))


def _died(done: subprocess.CompletedProcess[str], url: str) -> str:
    """One line for a child that ended without its failure's line."""
    if done.returncode < 0:
        try:
            how = f"was killed by {signal.Signals(-done.returncode).name}"
        except ValueError:
            how = f"was killed by signal {-done.returncode}"
    else:
        how = f"exited with code {done.returncode}"
    last = [x for x in done.stderr.splitlines() if x.strip() and "\t" not in x][-1:]
    detail = f": {last[0].strip()}" if last else ""
    password = password_of(url)
    if password:
        detail = detail.replace(password, "***")
    return f"the schema migration's process {how}{detail}"


def _relog(stderr: str) -> None:
    """Log again the records the child wrote (`LEVEL<TAB>logger<TAB>message` lines)."""
    for line in stderr.splitlines():
        level, _, rest = line.partition("\t")
        name, _, message = rest.partition("\t")
        number = logging.getLevelNamesMapping().get(level)
        if number is not None and name:
            logging.getLogger(name).log(number, "%s", message)


class _LineHandler(logging.Handler):
    """The child's log records, one line each on stderr, for `_relog`."""

    def emit(self, record: logging.LogRecord) -> None:
        message = " ".join(self.format(record).split())
        sys.stderr.write(f"{record.levelname}\t{record.name}\t{message}\n")


def main() -> int:
    """The child: the URL from stdin, `migrate`, and its failure's line on stdout."""
    root = logging.getLogger()
    root.addHandler(_LineHandler())
    root.setLevel(logging.INFO)
    url = sys.stdin.read().strip()
    from service.store import failures  # the child: the store's own error types

    database = None
    try:
        database = open_database(url)
        migrate(database)
    except StoreError as exc:
        sys.stdout.write(f"{exc}\n")
        return FAILED
    except Exception as exc:
        if database is None or not isinstance(exc, failures(database)):
            raise
        sys.stdout.write(f"cannot open the database: {describe_error(exc)}\n")
        return FAILED
    finally:
        if database is not None:
            database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A start that cannot succeed is one line and exit 2: here, a database that cannot be
opened (a StoreError), before any poll."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon_setup import RULES, fake_finnhub, write_env
from tests.e2e import Daemon
from tests.servers import Receiver

pytestmark = pytest.mark.slow


def test_a_database_that_cannot_be_opened_is_one_line_and_exit_2(tmp_path: Path) -> None:
    finnhub = fake_finnhub()
    try:
        with Receiver() as receiver:
            write_env(
                tmp_path,
                finnhub,
                receiver,
                f"EARNWATCH_DATABASE_URL=sqlite:///{tmp_path}/missing/dir/earnwatch.db",
            )
            (tmp_path / "rules.yaml").write_text(RULES)
            daemon = Daemon(tmp_path, "--rules", "rules.yaml").start()
            assert daemon.process is not None
            try:
                assert daemon.process.wait(30) == 2
            finally:
                daemon.stop()  # never leave a daemon behind when it did start
    finally:
        finnhub.stop()
    errors = [line for line in daemon.log().splitlines() if " ERROR " in line]
    # The first thing opened beside the database is its lock file (one daemon per file).
    assert len(errors) == 1 and "cannot start: " in errors[0], errors
    assert "missing/dir/earnwatch.db" in errors[0] and "No such file" in errors[0], errors
    assert "Traceback" not in daemon.log() and finnhub.count("/quote") == 0

"""The daemon's write probe at start: a database it can read but not write is refused with
one line naming it, on both backends; read-only opens (history) still work."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from service.errors import StoreError
from service.store import open_store


def test_a_writable_database_passes_the_probe_and_records_it(sqlite_url: str) -> None:
    store = open_store(sqlite_url, daemon=True)
    store.close()
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name, replica_id FROM probe").fetchall()
    assert rows == [("start", store.replica_id)]


def test_sqlite_an_immutable_database_file_is_refused_at_start(tmp_path: Path) -> None:
    """Tests run as root, which ignores file modes: `chattr +i` stops root's writes too."""
    database = tmp_path / "earnwatch.db"
    url = f"sqlite:///{database}"
    open_store(url).close()
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(database)]).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        reader = open_store(url)  # what `earnwatch history` does: still fine
        assert reader.pending_count() == 0
        reader.close()
        with pytest.raises(StoreError) as refused:
            open_store(url, daemon=True)
    finally:
        subprocess.run([chattr, "-i", str(database)], check=True)
    assert str(refused.value) == (
        f"the database {database.resolve()} cannot be written: "
        "OperationalError: attempt to write a readonly database"
    )
    open_store(url, daemon=True).close()  # the refusal left no lock behind


@pytest.mark.postgres
def test_postgresql_a_read_only_session_is_refused_at_start(pg_url: str) -> None:
    open_store(pg_url).close()
    read_only = pg_url + "?options=-c%20default_transaction_read_only%3Don"
    reader = open_store(read_only)
    reader.close()
    with pytest.raises(StoreError) as refused:
        open_store(read_only, daemon=True)
    message = str(refused.value)
    assert message.startswith("the database 127.0.0.1:5432/")
    assert "cannot be written: ReadOnlySqlTransaction" in message
    assert "earnwatch:earnwatch" not in message  # never the password

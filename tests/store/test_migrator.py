"""The daemon's migration in a child process (service/store/migrator.py): the same schema
and the same one-line failures as the in-process path, the URL never in argv."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from service.errors import StoreError
from service.store import migrator, open_store
from service.store.db import create_db_engine, current_revision, packaged_head
from service.store.tables import METADATA
from tests.test_light_imports import WRAPPER  # the CLI, writing sys.modules at exit

ROOT = Path(__file__).resolve().parents[2]
RULES = """\
version: 1
channels:
  hook: {type: webhook, url: "https://hooks.example.com/x"}
defaults:
  notify: [hook]
rules:
  - name: lumn_up
    symbols: [LUMN]
    when: price > 10
"""


def schema_of(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as connection:
        return sorted(connection.execute("SELECT type, name, sql FROM sqlite_master").fetchall())


def fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for the child's interpreter."""
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def assert_at_head(url: str) -> None:
    """The database at `url` holds the packaged head revision (read on an engine of its
    own, not through the store)."""
    engine = create_db_engine(url)
    try:
        assert current_revision(engine) == packaged_head()
    finally:
        engine.dispose()


def test_a_child_migration_makes_the_schema_the_in_process_path_makes(tmp_path: Path) -> None:
    open_store(f"sqlite:///{tmp_path / 'here.db'}").close()
    migrator.migrate_in_child(f"sqlite:///{tmp_path / 'child.db'}")
    assert schema_of(tmp_path / "child.db") == schema_of(tmp_path / "here.db")
    assert_at_head(f"sqlite:///{tmp_path / 'child.db'}")


@pytest.mark.postgres
def test_replicas_migrating_postgresql_together_migrate_it_once(pg_url: str) -> None:
    failures: list[BaseException] = []

    def replica() -> None:
        try:
            migrator.migrate_in_child(pg_url)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    engine = create_db_engine(pg_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, METADATA) == []
        assert current_revision(engine) == packaged_head()
    finally:
        engine.dispose()


def newer(path: Path) -> str:
    """The URL of a database stamped with a revision this release does not know."""
    url = f"sqlite:///{path}"
    open_store(url).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'r9999'")
    return url


def test_a_newer_database_fails_in_the_child_with_the_in_process_line(tmp_path: Path) -> None:
    url = newer(tmp_path / "newer.db")
    with pytest.raises(StoreError) as here:
        open_store(url)
    with pytest.raises(StoreError) as child:
        open_store(url, daemon=True)
    assert str(child.value) == str(here.value)
    assert "newer earnwatch" in str(child.value)


def run_cli(args: list[str], folder: Path, url: str) -> tuple[int, str, set[str]]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EARNWATCH_", "FINNHUB_", "FMP_", "SMTP_"))
    }
    env = {
        **clean,
        "EARNWATCH_PROVIDERS": "replay",
        "EARNWATCH_DATABASE_URL": url,
        "EARNWATCH_HTTP": "off",
        "MODULES_OUT": str(folder / "modules.txt"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    modules = set((folder / "modules.txt").read_text().splitlines())
    return done.returncode, done.stdout + done.stderr, modules


def test_the_daemon_on_an_empty_file_migrates_it_without_loading_alembic_or_mako(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    url = f"sqlite:///{tmp_path / 'earnwatch.db'}"
    code, output, modules = run_cli(["run", "--once", "--rules", "rules.yaml"], tmp_path, url)
    assert code == 0, output
    assert "service.store.lite" in modules  # the store was opened here, on sqlite3
    # the migration's SQLAlchemy, Alembic and Mako stayed in the child
    assert {m.split(".")[0] for m in modules} & {"alembic", "mako", "sqlalchemy"} == set()
    assert "Running upgrade -> r0001" in output  # the child's log, logged again here
    assert_at_head(url)


def test_the_daemon_refuses_a_newer_database_as_the_in_process_start_did(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    url = newer(tmp_path / "earnwatch.db")
    with pytest.raises(StoreError) as here:
        open_store(url)
    code, output, modules = run_cli(["run", "--once", "--rules", "rules.yaml"], tmp_path, url)
    assert code == 2  # what `run` exits with for a StoreError at its start
    assert f"cannot start: {here.value}" in output
    assert "Traceback" not in output
    assert "alembic" not in {m.split(".")[0] for m in modules}


def test_the_url_goes_to_the_child_on_stdin_never_in_its_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = tmp_path / "seen"
    python = fake_python(tmp_path, f'echo "$@" > {seen}.argv; cat > {seen}.stdin')
    monkeypatch.setattr(sys, "executable", python)
    url = "postgresql+psycopg://earnwatch:hunter2-secret@db.example:5432/earnwatch"
    migrator.migrate_in_child(url)
    assert Path(f"{seen}.argv").read_text().split() == ["-P", "-m", "service.store.migrator"]
    assert Path(f"{seen}.stdin").read_text() == url


def test_the_child_runs_earnwatch_s_code_from_a_folder_holding_another_service_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon started in a project folder of the user's that has a `service/` package:
    the child must not import that one (`python -m` would put the folder first)."""
    other = tmp_path / "service" / "store"
    other.mkdir(parents=True)
    (tmp_path / "service" / "__init__.py").write_text("")
    (other / "__init__.py").write_text("")
    (other / "migrator.py").write_text("import sys\nprint('not earnwatch')\nsys.exit(1)\n")
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'earnwatch.db'}"
    migrator.migrate_in_child(url)
    assert_at_head(url)


def test_a_child_that_dies_is_one_line_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+psycopg://earnwatch:hunter2-secret@db.example:5432/earnwatch"
    monkeypatch.setattr(sys, "executable", fake_python(tmp_path, 'echo "boom: $(cat)" >&2; exit 3'))
    with pytest.raises(StoreError) as died:
        migrator.migrate_in_child(url)
    assert str(died.value).startswith("the schema migration's process exited with code 3: boom")
    assert "hunter2" not in str(died.value)
    assert "\n" not in str(died.value)


def test_a_killed_child_is_one_line_naming_the_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", fake_python(tmp_path, "cat >/dev/null; kill -9 $$"))
    with pytest.raises(StoreError, match=r"^the schema migration's process was killed by SIGKILL$"):
        migrator.migrate_in_child(f"sqlite:///{tmp_path / 'x.db'}")


def test_a_child_that_cannot_start_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with pytest.raises(StoreError, match=r"^cannot start the schema migration's process \(.*\): "):
        migrator.migrate_in_child(f"sqlite:///{tmp_path / 'x.db'}")


def test_a_driver_error_in_the_child_is_the_in_process_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'not-a-database.db'}"
    (tmp_path / "not-a-database.db").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError) as here:
        open_store(url)
    with pytest.raises(StoreError) as child:
        migrator.migrate_in_child(url)
    assert str(child.value) == str(here.value)
    assert str(child.value).startswith("cannot open the database: ")

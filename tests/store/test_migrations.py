"""The packaged migrations build the schema the models describe, on both backends."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from service.errors import StoreError
from service.store import open_store
from service.store.db import alembic_config, create_db_engine, write_tx
from service.store.tables import METADATA

TABLES = {
    "alert",
    "delivery",
    "attempt",
    "rule_state",
    "market_data",
    "silence",
    "alembic_version",
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue("pg_url"))


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def test_there_is_one_head_revision() -> None:
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


def test_open_store_migrates_an_empty_database_and_a_second_open_is_a_no_op(url: str) -> None:
    store = open_store(url)
    assert store.schema_revision() == head()
    store.close()
    again = open_store(url)
    assert again.schema_revision() == head()
    again.close()
    engine = create_db_engine(url)
    try:
        assert set(sa.inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_the_migrated_schema_matches_the_models(url: str) -> None:
    open_store(url).close()
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, METADATA) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_upgrade_again_round_trips(url: str) -> None:
    open_store(url).close()
    engine = create_db_engine(url)
    try:
        with write_tx(engine) as connection:
            command.downgrade(alembic_config(connection), "base")
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
        with write_tx(engine) as connection:
            command.upgrade(alembic_config(connection), "head")
        assert set(sa.inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_a_database_from_a_newer_release_is_refused_with_a_clear_error(url: str) -> None:
    open_store(url).close()
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = 'r9999'"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="newer earnwatch"):
        open_store(url)


def test_sqlite_connections_use_wal_full_sync_busy_timeout_and_foreign_keys(
    sqlite_url: str,
) -> None:
    open_store(sqlite_url).close()
    engine = create_db_engine(sqlite_url)
    try:
        with engine.connect() as connection:

            def pragma(name: str) -> object:
                return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 2  # FULL
            assert int(pragma("busy_timeout")) >= 5000  # type: ignore[call-overload]
            assert pragma("foreign_keys") == 1
    finally:
        engine.dispose()

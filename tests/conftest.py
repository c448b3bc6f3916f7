"""Shared fixtures: the anyio backend, a SQLite store in tmp_path, and the PostgreSQL URL.

PostgreSQL tests read `EARNWATCH_TEST_PG_URL`. Without it, or when the server does not
answer, they are skipped with the reason shown; with `EARNWATCH_REQUIRE_PG=1` (CI) they
fail instead, so CI can never go green by skipping them. Under pytest-xdist each worker
gets a database of its own (`<name>_gw0`, ...), created on first use, so workers never
empty each other's schema or meet each other's advisory locks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.store import Store, open_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'earnwatch.db'}"


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = open_store(sqlite_url)
    yield opened
    opened.close()


def _unavailable(reason: str) -> None:
    if os.environ.get("EARNWATCH_REQUIRE_PG") == "1":
        pytest.fail(f"PostgreSQL required (EARNWATCH_REQUIRE_PG=1) but {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture
def pg_url() -> str:
    """A reachable PostgreSQL URL whose public schema was just emptied."""
    url = os.environ.get("EARNWATCH_TEST_PG_URL", "")
    if not url:
        _unavailable("EARNWATCH_TEST_PG_URL is not set")
    try:
        import sqlalchemy as sa

        url = _worker_database(url, os.environ.get("PYTEST_XDIST_WORKER"))
        engine = sa.create_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
                connection.execute(sa.text("CREATE SCHEMA public"))
        finally:
            engine.dispose()
    except Exception as exc:  # any failure to reach or reset the server
        _unavailable(f"cannot reach {url.rsplit('@', 1)[-1]}: {type(exc).__name__}")
    return url


def _worker_database(url: str, worker: str | None) -> str:
    """`url` itself outside xdist; else the URL of this worker's database, created from
    `url`'s server if it does not exist yet."""
    if not worker:
        return url
    import sqlalchemy as sa

    base = sa.engine.make_url(url)
    name = f"{base.database}_{worker}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            found = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if found is None:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)

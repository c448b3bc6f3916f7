"""Alembic environment: runs on the connection `service.store.db.migrate()` hands in.

Run from code only (no alembic.ini, no logging setup here: the daemon owns logging). Batch
mode keeps ALTERs possible on SQLite; `transactional_ddl` keeps the whole upgrade in the
caller's transaction on SQLite too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from service.store.tables import METADATA

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through service.store.db.migrate(), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=METADATA,
    render_as_batch=True,
    transactional_ddl=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

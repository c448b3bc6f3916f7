"""Lease holders and the start probe: `delivery.lease_holder` names the replica that holds a
`sending` lease (so others can void it once that replica is gone), and `probe` takes the
write a starting daemon makes to prove the database is writable.

Revision ID: r0002
Revises: r0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0002"
down_revision: str | None = "r0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("lease_holder", sa.String(64), nullable=True))
    op.create_table(
        "probe",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("replica_id", sa.String(64), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("probe")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("lease_holder")

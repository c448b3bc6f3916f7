"""Stage outcomes: `delivery.hold_reason` says which stage muted or deferred a delivery,
and why (statuses `muted` and `deferred`; see service/stages.py).

Revision ID: r0003
Revises: r0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0003"
down_revision: str | None = "r0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("hold_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("hold_reason")

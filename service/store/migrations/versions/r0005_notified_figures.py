"""Amended figures: `rule_state.eps_notified` and `revenue_notified` hold the actual EPS
and revenue a rule with `notify_amended` last notified for its last report, so a
correction is judged against the figures its alert was sent with (service/engine.py,
`amend`), across restarts and replicas.

Revision ID: r0005
Revises: r0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0005"
down_revision: str | None = "r0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("rule_state") as batch:
        batch.add_column(sa.Column("eps_notified", sa.Float(), nullable=True))
        batch.add_column(sa.Column("revenue_notified", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rule_state") as batch:
        batch.drop_column("revenue_notified")
        batch.drop_column("eps_notified")

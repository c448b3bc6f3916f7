"""The initial schema: alert, delivery, attempt, rule_state, market_data.

Revision ID: r0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("dedup_key", sa.String(512), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("report_key", sa.String(200), nullable=True),
        _when("fired_at"),
        sa.Column("message_json", sa.Text(), nullable=False),
        sa.UniqueConstraint("dedup_key", name="uq_alert_dedup_key"),
    )
    op.create_index("ix_alert_rule", "alert", ["rule"])
    op.create_index("ix_alert_fired_at", "alert", ["fired_at"])

    op.create_table(
        "delivery",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "alert_id",
            sa.String(64),
            sa.ForeignKey("alert.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("next_attempt_at"),
        _when("lease_until", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _when("created_at"),
        _when("delivered_at", nullable=True),
        sa.UniqueConstraint("alert_id", "channel", name="uq_delivery_alert_channel"),
    )
    op.create_index("ix_delivery_due", "delivery", ["status", "next_attempt_at"])

    op.create_table(
        "attempt",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            sa.String(64),
            sa.ForeignKey("delivery.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        _when("started_at"),
        _when("finished_at"),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
    )
    op.create_index("ix_attempt_delivery_id", "attempt", ["delivery_id"])

    op.create_table(
        "rule_state",
        sa.Column("rule", sa.String(200), primary_key=True),
        sa.Column("symbol", sa.String(32), primary_key=True),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=False),
        _when("pending_since", nullable=True),
        _when("last_fired", nullable=True),
        sa.Column("last_report", sa.String(200), nullable=True),
        sa.Column("fired", sa.Integer(), nullable=False),
    )

    op.create_table(
        "market_data",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("data_json", sa.Text(), nullable=False),
        _when("updated_at"),
    )


def downgrade() -> None:
    op.drop_table("market_data")
    op.drop_table("rule_state")
    op.drop_index("ix_attempt_delivery_id", table_name="attempt")
    op.drop_table("attempt")
    op.drop_index("ix_delivery_due", table_name="delivery")
    op.drop_table("delivery")
    op.drop_index("ix_alert_fired_at", table_name="alert")
    op.drop_index("ix_alert_rule", table_name="alert")
    op.drop_table("alert")

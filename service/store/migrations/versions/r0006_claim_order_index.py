"""The claim's index: `ix_delivery_due` on (status, next_attempt_at, created_at, id), the
claim's whole order within each status, where it was (status, next_attempt_at). A claim
reads each due status's range in order and stops at its limit (service/store/outbox.py,
`claim`), instead of fetching and sorting every due delivery: a claim costs the same at a
backlog of 100,000 as at 10.

Revision ID: r0006
Revises: r0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "r0006"
down_revision: str | None = "r0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.drop_index("ix_delivery_due", table_name="delivery")
    op.create_index(
        "ix_delivery_due", "delivery", ["status", "next_attempt_at", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_due", table_name="delivery")
    op.create_index("ix_delivery_due", "delivery", ["status", "next_attempt_at"])

"""The month's 766 indicators as last computed, shared by every process that exports
them: one process computes the report (holding a claim while it does), the others read
the result instead of computing the same report themselves.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "indicator_snapshots",
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("took_s", sa.Float(), nullable=True),
        sa.Column("indicators", JSON_DOCUMENT, nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("indicator_snapshots")

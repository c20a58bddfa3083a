"""Poll workers: the engines that poll sources, each with a heartbeat, so that the
sources are shared out among the live ones instead of all going to whichever started
first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "poll_workers",
        sa.Column("owner", sa.String(100), primary_key=True),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("poll_workers")

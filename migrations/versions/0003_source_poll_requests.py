"""Poll-now requests: an operator's "poll this source now", kept on the source's row so
that the engine polling it notices whichever process it runs in.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sources", sa.Column("poll_requested_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite ≥ 3.35 has it): batch mode would rebuild `sources`, and
    # dropping the old table under PRAGMA foreign_keys=ON would cascade to its checkpoints.
    op.drop_column("sources", "poll_requested_at")

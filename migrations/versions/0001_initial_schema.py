"""Initial schema: sources and checkpoints, dossiers and progress, the sync outbox, push
log, quarantine, dead letters, API keys and the portal's reference catalogue.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Self-contained on purpose: it uses plain SQLAlchemy types, not the application's, so that
later changes to app code cannot change what this revision creates.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("unit", sa.String(length=13), nullable=False),
        sa.Column("agency", sa.String(length=13), nullable=True),
        sa.Column("scopes", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "catalogue_agencies",
        sa.Column("code", sa.String(length=13), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("refreshed_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_catalogue_agencies")),
    )
    op.create_table(
        "catalogue_procedures",
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("data", JSON_DOCUMENT, nullable=False),
        sa.Column("refreshed_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_catalogue_procedures")),
    )
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("dialect", sa.String(length=20), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_poll_at", TIMESTAMP, nullable=True),
        sa.Column("last_success_at", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
    )
    op.create_table(
        "dossiers",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("ma_ho_so", sa.String(length=50), nullable=False),
        sa.Column("unit", sa.String(length=13), nullable=False),
        sa.Column("agency", sa.String(length=13), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("source_record_id", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=2), nullable=False),
        sa.Column("state", JSON_DOCUMENT, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=True),
        sa.Column("source_modified_at", TIMESTAMP, nullable=True),
        sa.Column("first_seen_at", TIMESTAMP, nullable=False),
        sa.Column("changed_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_dossiers_source_id_sources"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dossiers")),
        sa.UniqueConstraint("ma_ho_so", name=op.f("uq_dossiers_ma_ho_so")),
    )
    op.create_index(
        "ix_dossiers_agency_received_at", "dossiers", ["agency", "received_at"], unique=False
    )
    op.create_index(
        "ix_dossiers_source_record", "dossiers", ["source_id", "source_record_id"], unique=False
    )
    op.create_index("ix_dossiers_unit", "dossiers", ["unit"], unique=False)
    op.create_table(
        "poll_checkpoints",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(length=100), nullable=False),
        sa.Column("cursor", JSON_DOCUMENT, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_poll_checkpoints_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", "stream", name=op.f("pk_poll_checkpoints")),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("record_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("ma_ho_so", sa.String(length=200), nullable=True),
        sa.Column("unit", sa.String(length=13), nullable=True),
        sa.Column("agency", sa.String(length=13), nullable=True),
        sa.Column("raw", JSON_DOCUMENT, nullable=False),
        sa.Column("raw_hash", sa.String(length=64), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("errors", JSON_DOCUMENT, nullable=False),
        sa.Column("first_seen_at", TIMESTAMP, nullable=False),
        sa.Column("last_seen_at", TIMESTAMP, nullable=False),
        sa.Column("seen_count", sa.Integer(), nullable=False),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_quarantine_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint(
            "source_id", "record_key", name=op.f("uq_quarantine_source_id_record_key")
        ),
    )
    op.create_index("ix_quarantine_ma_ho_so", "quarantine", ["ma_ho_so"], unique=False)
    op.create_index(
        "ix_quarantine_open_unit",
        "quarantine",
        ["unit", "reason_code"],
        unique=False,
        postgresql_where=sa.text("resolved_at IS NULL"),
        sqlite_where=sa.text("resolved_at IS NULL"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("dossier_id", BIG_ID, nullable=False),
        sa.Column("ma_ho_so", sa.String(length=50), nullable=False),
        sa.Column("unit", sa.String(length=13), nullable=False),
        sa.Column("agency", sa.String(length=13), nullable=False),
        sa.Column("service", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("detail", JSON_DOCUMENT, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("redriven_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["dossier_id"],
            ["dossiers.id"],
            name=op.f("fk_dead_letters_dossier_id_dossiers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index("ix_dead_letters_dossier_id", "dead_letters", ["dossier_id"], unique=False)
    op.create_index(
        "ix_dead_letters_open",
        "dead_letters",
        ["unit", "error_code", "created_at"],
        unique=False,
        postgresql_where=sa.text("redriven_at IS NULL"),
        sqlite_where=sa.text("redriven_at IS NULL"),
    )
    op.create_table(
        "progress_records",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("dossier_id", BIG_ID, nullable=False),
        sa.Column("identity_hash", sa.String(length=64), nullable=False),
        sa.Column("record", JSON_DOCUMENT, nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(length=2), nullable=False),
        sa.Column("read_at", TIMESTAMP, nullable=False),
        sa.Column("acked_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["dossier_id"],
            ["dossiers.id"],
            name=op.f("fk_progress_records_dossier_id_dossiers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_progress_records")),
        sa.UniqueConstraint(
            "dossier_id", "identity_hash", name=op.f("uq_progress_records_dossier_id_identity_hash")
        ),
    )
    op.create_index(
        "ix_progress_records_undelivered",
        "progress_records",
        ["dossier_id", "occurred_at", "id"],
        unique=False,
        postgresql_where=sa.text("acked_at IS NULL"),
        sqlite_where=sa.text("acked_at IS NULL"),
    )
    op.create_table(
        "push_attempts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("attempted_at", TIMESTAMP, nullable=False),
        sa.Column("unit", sa.String(length=13), nullable=False),
        sa.Column("service", sa.String(length=40), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("dossier_id", BIG_ID, nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dossier_id"],
            ["dossiers.id"],
            name=op.f("fk_push_attempts_dossier_id_dossiers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_attempts")),
    )
    op.create_index(
        "ix_push_attempts_attempted_at", "push_attempts", ["attempted_at"], unique=False
    )
    op.create_index("ix_push_attempts_dossier_id", "push_attempts", ["dossier_id"], unique=False)
    op.create_table(
        "sync_state",
        sa.Column("dossier_id", BIG_ID, nullable=False),
        sa.Column("unit", sa.String(length=13), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("pending_version", sa.Integer(), nullable=False),
        sa.Column("acked_version", sa.Integer(), nullable=True),
        sa.Column("confirmed_version", sa.Integer(), nullable=True),
        sa.Column("acked_status", sa.String(length=2), nullable=True),
        sa.Column("exists_at_portal", sa.Boolean(), nullable=True),
        sa.Column("pending_since", TIMESTAMP, nullable=True),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.Column("changed_at", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("last_error_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("acked_at", TIMESTAMP, nullable=True),
        sa.Column("confirmed_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["dossier_id"],
            ["dossiers.id"],
            name=op.f("fk_sync_state_dossier_id_dossiers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dossier_id", name=op.f("pk_sync_state")),
    )
    op.create_index(
        "ix_sync_state_due",
        "sync_state",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("pending_since IS NOT NULL"),
        sqlite_where=sa.text("pending_since IS NOT NULL"),
    )
    op.create_index(
        "ix_sync_state_status_acked_at", "sync_state", ["status", "acked_at"], unique=False
    )
    op.create_index(
        "ix_sync_state_unit_due",
        "sync_state",
        ["unit", "next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("pending_since IS NOT NULL"),
        sqlite_where=sa.text("pending_since IS NOT NULL"),
    )
    op.create_index(
        "ix_sync_state_unit_pending_since",
        "sync_state",
        ["unit", "pending_since"],
        unique=False,
        postgresql_where=sa.text("pending_since IS NOT NULL"),
        sqlite_where=sa.text("pending_since IS NOT NULL"),
    )
    op.create_index("ix_sync_state_unit_status", "sync_state", ["unit", "status"], unique=False)


def downgrade() -> None:
    op.drop_table("sync_state")
    op.drop_table("push_attempts")
    op.drop_table("progress_records")
    op.drop_table("dead_letters")
    op.drop_table("quarantine")
    op.drop_table("poll_checkpoints")
    op.drop_table("dossiers")
    op.drop_table("sources")
    op.drop_table("catalogue_procedures")
    op.drop_table("catalogue_agencies")
    op.drop_table("api_keys")

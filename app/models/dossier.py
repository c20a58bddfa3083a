"""Dossiers as last known from their source, and their progress records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigID


class DossierRow(Base):
    """The latest canonical state of a dossier (portal field format, JSON).

    ``version`` only grows: it is bumped exactly when ``content_hash`` changes, and the
    sync state remembers which version the portal acknowledged. A few fields are copied
    out of ``state`` into columns because reports and the API filter on them.
    """

    __tablename__ = "dossiers"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ma_ho_so: Mapped[str] = mapped_column(String(50), unique=True)
    unit: Mapped[str] = mapped_column(String(13))
    agency: Mapped[str] = mapped_column(String(13))
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    source_record_id: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(2))
    state: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    received_at: Mapped[datetime | None]  # NgayTiepNhan: the 766 period a dossier counts in
    source_modified_at: Mapped[datetime | None]
    first_seen_at: Mapped[datetime]
    changed_at: Mapped[datetime]  # when the current version was read from the source

    __table_args__ = (
        Index("ix_dossiers_unit", "unit"),
        Index("ix_dossiers_agency_received_at", "agency", "received_at"),
        Index("ix_dossiers_source_record", "source_id", "source_record_id"),
    )


class ProgressRow(Base):
    """A processing step (``CapNhatTienDoHoSoMC`` item). Stored once per identity (same
    time, status, handler and content); ``acked_at`` is set when the portal accepted it."""

    __tablename__ = "progress_records"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    dossier_id: Mapped[int] = mapped_column(BigID, ForeignKey("dossiers.id", ondelete="CASCADE"))
    identity_hash: Mapped[str] = mapped_column(String(64))
    record: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]  # ThoiDiemXuLy
    status: Mapped[str] = mapped_column(String(2))
    read_at: Mapped[datetime]
    acked_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("dossier_id", "identity_hash"),
        # The pusher reads a dossier's undelivered steps in time order.
        Index(
            "ix_progress_records_undelivered",
            "dossier_id",
            "occurred_at",
            "id",
            postgresql_where=text("acked_at IS NULL"),
            sqlite_where=text("acked_at IS NULL"),
        ),
    )

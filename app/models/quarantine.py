"""Source records the service refused to push, with the reason, until they change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigID

_OPEN = text("resolved_at IS NULL")


class QuarantineEntry(Base):
    """A source record that could not become a valid portal record (unmapped status,
    unparsable date, contract violation, or a permanent refusal by the portal).

    Nothing is dropped: the raw record is kept as the source sent it so that it can be
    evaluated again when the record or the status mapping changes. One row per source
    record (``record_key``); seeing it again updates ``last_seen_at``.
    """

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    record_key: Mapped[str] = mapped_column(String(200))  # e.g. "dossier:4711", "action:9"
    kind: Mapped[str] = mapped_column(String(20))  # dossier | progress
    ma_ho_so: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(13))
    agency: Mapped[str | None] = mapped_column(String(13))
    raw: Mapped[dict[str, Any]]
    raw_hash: Mapped[str] = mapped_column(String(64))
    reason_code: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    errors: Mapped[list[Any]]
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    seen_count: Mapped[int] = mapped_column(default=1)
    resolved_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("source_id", "record_key"),
        Index(
            "ix_quarantine_open_unit",
            "unit",
            "reason_code",
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
        Index("ix_quarantine_ma_ho_so", "ma_ho_so"),
    )

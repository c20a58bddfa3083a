"""What the pusher works from: per-dossier sync state (the outbox), the push log, dead letters."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigID


class SyncStatus(StrEnum):
    """Where a dossier stands with the portal."""

    PENDING = "pending"  # something to push: a newer version or undelivered progress
    ACKED = "acked"  # the portal acknowledged the latest version; read-back not yet done
    SYNCED = "synced"  # read-back confirmed the latest version at the portal
    DEAD = "dead"  # attempts exhausted or a permanent error: waits for a redrive


_DUE = text("pending_since IS NOT NULL")


class SyncState(Base):
    """The outbox: one row per dossier, written in the same transaction as the dossier
    change that makes it pending.

    Coalescing is built in: a new version overwrites ``pending_version`` so the pusher sends
    only the latest state. Workers claim due rows with ``FOR UPDATE SKIP LOCKED`` and hold
    them under a lease (``lease_owner`` / ``lease_expires_at``) so one push at most is in
    flight per dossier and a crashed worker's rows are taken over when the lease expires.
    ``pending_since`` is set while there is work and cleared when everything is
    acknowledged; it is both the claim predicate and the "oldest pending" figure.
    """

    __tablename__ = "sync_state"

    dossier_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("dossiers.id", ondelete="CASCADE"), primary_key=True
    )
    unit: Mapped[str] = mapped_column(String(13))
    status: Mapped[str] = mapped_column(String(10), default=SyncStatus.PENDING.value)
    pending_version: Mapped[int]  # the dossier version the portal should end up holding
    acked_version: Mapped[int | None]  # the version the portal acknowledged
    confirmed_version: Mapped[int | None]  # the version read-back found at the portal
    acked_status: Mapped[str | None] = mapped_column(String(2))  # TrangThaiHoSo at the portal
    # None: unknown; True: the portal holds it (push as update); False: create it.
    exists_at_portal: Mapped[bool | None]
    pending_since: Mapped[datetime | None]
    # Bumped by every change that creates work (new version, new progress). A pusher only
    # clears `pending_since` if the sequence it claimed is still current, so a change that
    # lands while a push is in flight is never forgotten.
    change_seq: Mapped[int] = mapped_column(default=0)
    changed_at: Mapped[datetime]  # when the latest pending change was read from its source
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]

    __table_args__ = (
        # Claim queries: due rows in next-attempt order, overall or for one unit.
        Index(
            "ix_sync_state_due",
            "next_attempt_at",
            postgresql_where=_DUE,
            sqlite_where=_DUE,
        ),
        Index(
            "ix_sync_state_unit_due",
            "unit",
            "next_attempt_at",
            postgresql_where=_DUE,
            sqlite_where=_DUE,
        ),
        # Oldest pending per unit (a gauge every process reads from the database).
        Index(
            "ix_sync_state_unit_pending_since",
            "unit",
            "pending_since",
            postgresql_where=_DUE,
            sqlite_where=_DUE,
        ),
        Index("ix_sync_state_unit_status", "unit", "status"),
        # Read-back picks acknowledged rows oldest first.
        Index("ix_sync_state_status_acked_at", "status", "acked_at"),
    )


class PushAttempt(Base):
    """One item of one push request, as it went. Kept for ``push_log_retention_days``."""

    __tablename__ = "push_attempts"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    attempted_at: Mapped[datetime]
    unit: Mapped[str] = mapped_column(String(13))
    service: Mapped[str] = mapped_column(String(40))
    batch_id: Mapped[str] = mapped_column(String(36))
    dossier_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("dossiers.id", ondelete="CASCADE")
    )
    version: Mapped[int | None]
    outcome: Mapped[str] = mapped_column(String(20))  # ok | rejected | http_error | timeout …
    http_status: Mapped[int | None]
    error_code: Mapped[int | None]
    message: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None]

    __table_args__ = (
        Index("ix_push_attempts_attempted_at", "attempted_at"),
        Index("ix_push_attempts_dossier_id", "dossier_id"),
    )


_OPEN_DEAD = text("redriven_at IS NULL")


class DeadLetter(Base):
    """A push that will not succeed by retrying: its reason, until someone redrives it."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    dossier_id: Mapped[int] = mapped_column(BigID, ForeignKey("dossiers.id", ondelete="CASCADE"))
    ma_ho_so: Mapped[str] = mapped_column(String(50))
    unit: Mapped[str] = mapped_column(String(13))
    agency: Mapped[str] = mapped_column(String(13))
    service: Mapped[str] = mapped_column(String(40))
    version: Mapped[int | None]
    error_code: Mapped[int | None]
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int]
    detail: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    redriven_at: Mapped[datetime | None]

    __table_args__ = (
        Index(
            "ix_dead_letters_open",
            "unit",
            "error_code",
            "created_at",
            postgresql_where=_OPEN_DEAD,
            sqlite_where=_OPEN_DEAD,
        ),
        Index("ix_dead_letters_dossier_id", "dossier_id"),
    )


class PortalHold(Base):
    """Until when the portal asked a unit's client to send nothing (HTTP 429's
    ``Retry-After``, contract §6). Shared by every process that talks to the portal as
    that unit, so a wait one worker was answered holds the others too (issue 8)."""

    __tablename__ = "portal_holds"

    unit: Mapped[str] = mapped_column(String(13), primary_key=True)
    until: Mapped[datetime]


class IndicatorSnapshotRow(Base):
    """The month's 766 indicators as last computed (``name`` "766"), shared by every
    process that exports them: the report of a month can take a minute, so one process
    computes it, holding ``claimed_until`` meanwhile, and the others read the result."""

    __tablename__ = "indicator_snapshots"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    computed_at: Mapped[datetime | None]
    took_s: Mapped[float | None] = mapped_column(Float())
    # {"values": [[unit, agency, indicator, value], …], "points": [[…, points], …]}
    indicators: Mapped[dict[str, Any] | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]

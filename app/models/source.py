"""Source systems the service polls (or that push to it), and their poll checkpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigID


class Source(Base):
    """A configured source. Configuration lives in the TOML file; this row holds what the
    service learns at run time: health, pause switch, and the poll lease that makes sure
    one worker at a time polls it."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    dialect: Mapped[str] = mapped_column(String(20))  # opencps | igate | dvclt | push
    paused: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    last_poll_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    # An operator asked for a poll now (API, any process); the poll that starts next
    # clears it. Through the database because the engine may run in another process.
    poll_requested_at: Mapped[datetime | None]


class PollWorker(Base):
    """An engine that polls sources, alive while its heartbeat has not expired. The
    sources are shared out among the live ones (each takes about its share), so adding a
    worker spreads the polling, the heaviest part of a sync, across processes."""

    __tablename__ = "poll_workers"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    heartbeat_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class PollCheckpoint(Base):
    """Where a poll stream of a source stands. Written in the same transaction as the
    records it covers, so a crash never skips or half-applies a page.

    ``stream`` lets one source keep several cursors (per agency, per day); the cursor is
    dialect-specific JSON (a timestamp and the ids seen at it, a day and its digests, …).
    """

    __tablename__ = "poll_checkpoints"

    source_id: Mapped[int] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    stream: Mapped[str] = mapped_column(String(100), primary_key=True, default="")
    cursor: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class SourceMessage(Base):
    """A message of a queue dialect (DVCLT), kept once acknowledged-to-be.

    A queue has no cursor and its messages carry one status change each; a dossier's
    state is the fold of all its messages in time order. Storing each message (in the
    transaction that stores what it changes, before acknowledging it) lets that fold run
    again whenever a message arrives late, twice, or out of order.
    """

    __tablename__ = "source_messages"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(100))
    ma_ho_so: Mapped[str] = mapped_column(String(200))
    raw: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("source_id", "message_id"),
        Index("ix_source_messages_source_dossier", "source_id", "ma_ho_so"),
    )

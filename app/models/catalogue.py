"""Reference data read from the portal (``LayDanhSachTTHC``, ``LayDanhMucCoQuan``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class Procedure(Base):
    """A procedure (thủ tục hành chính) as the configured portal describes it."""

    __tablename__ = "catalogue_procedures"

    code: Mapped[str] = mapped_column(String(50), primary_key=True)  # MaTTHC
    name: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict[str, Any]]  # the portal's record, verbatim
    refreshed_at: Mapped[datetime]


class Agency(Base):
    """An agency (cơ quan) of the portal's catalogue."""

    __tablename__ = "catalogue_agencies"

    code: Mapped[str] = mapped_column(String(13), primary_key=True)  # MaCoQuan
    name: Mapped[str] = mapped_column(String(500))
    level: Mapped[str] = mapped_column(String(10))  # Cap: BO | TINH
    refreshed_at: Mapped[datetime]

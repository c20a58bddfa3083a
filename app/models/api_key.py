"""API keys of the provincial systems and operators that call the service."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONDocument


class ApiKey(Base):
    """Only a SHA-256 of the key is stored (keys are long random strings, so a fast hash
    is enough); ``prefix`` is the key's first characters, for telling keys apart in lists.
    A key is scoped to a top-level unit (``agency`` null: all its agencies) or one agency."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(13))
    agency: Mapped[str | None] = mapped_column(String(13))
    scopes: Mapped[list[str]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

"""What every repository shares: a session it never commits, and dialect-aware upserts."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.base import Base, table_of


class Repository:
    """Queries for one concern. The caller owns the transaction: repositories flush when
    they need generated ids, but only the request or task boundary commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def insert(self, model: type[Base]) -> Any:
        """``INSERT`` with ``ON CONFLICT`` support on both backends."""
        if self.dialect == "postgresql":
            return postgresql.insert(table_of(model))
        if self.dialect == "sqlite":
            return sqlite.insert(table_of(model))
        raise NotImplementedError(f"unsupported database dialect {self.dialect!r}")

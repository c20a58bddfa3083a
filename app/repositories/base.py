"""What every repository shares: a session it never commits, and dialect-aware upserts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from app.models.base import Base, table_of

# A column as a model's attribute or as a plain expression.
Column = ColumnElement[Any] | QueryableAttribute[Any]


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

    def one_of(self, column: Column, values: Iterable[Any]) -> ColumnElement[bool]:
        """``column IN values``. On PostgreSQL as ``= ANY`` of one array parameter: the
        statement's text is the same however many values there are, so asyncpg prepares
        it once and PostgreSQL plans it once, where an ``IN`` list is a new statement
        for every length, expanded, sent, parsed and planned value by value (a page's
        thousand-value list took longer to plan than to run). SQLite has no arrays."""
        listed = list(values)
        if self.dialect == "postgresql":
            return column == any_(bindparam(None, listed, type_=postgresql.ARRAY(column.type)))
        return column.in_(listed)

    def pairs_of(
        self,
        first: Column,
        second: Column,
        pairs: Iterable[tuple[Any, Any]],
    ) -> ColumnElement[bool]:
        """``(first, second) IN pairs``; on PostgreSQL the pairs come as two array
        parameters, unnested side by side (see :meth:`one_of`), which also lets the
        planner probe a two-column index once a pair instead of OR-ing a thousand
        conditions."""
        listed = list(pairs)
        if self.dialect == "postgresql":
            keys = (
                func.unnest(
                    bindparam(None, [p[0] for p in listed], type_=postgresql.ARRAY(first.type)),
                    bindparam(None, [p[1] for p in listed], type_=postgresql.ARRAY(second.type)),
                )
                .table_valued("first", "second")
                .render_derived()
            )
            return tuple_(first, second).in_(select(keys.c.first, keys.c.second))
        return tuple_(first, second).in_(listed)

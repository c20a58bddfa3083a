"""What every repository shares: a session it never commits, and dialect-aware upserts."""

from __future__ import annotations

import json
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
        """``column IN values`` (integers or strings) as one parameter, whatever their
        number: on PostgreSQL ``= ANY`` of an array, on SQLite ``IN`` the elements of a
        JSON array. The statement's text is then the same however many values there
        are, so it is prepared and planned once, where an ``IN`` list is a new
        statement of every length, expanded, sent and planned value by value (a page's
        thousand-value list took longer to plan than to run); and no list is too long
        (asyncpg takes at most 32,767 parameters a statement; SQLite, as built by
        default, 32,766)."""
        listed = list(values)
        if self.dialect == "postgresql":
            return column == any_(bindparam(None, listed, type_=postgresql.ARRAY(column.type)))
        elements = func.json_each(bindparam(None, json.dumps(listed))).table_valued("value")
        return column.in_(select(elements.c.value))

    def pairs_of(
        self,
        first: Column,
        second: Column,
        pairs: Iterable[tuple[Any, Any]],
    ) -> ColumnElement[bool]:
        """``(first, second) IN pairs``, as :meth:`one_of`: on PostgreSQL two arrays
        unnested side by side (which also lets the planner probe a two-column index once
        a pair instead of OR-ing a thousand conditions), on SQLite one JSON array of
        pairs."""
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
        elements = func.json_each(bindparam(None, json.dumps([list(p) for p in listed])))
        pair = elements.table_valued("value").c.value
        return tuple_(first, second).in_(
            select(func.json_extract(pair, "$[0]"), func.json_extract(pair, "$[1]"))
        )

"""What ``app.db.create_engine`` sets up: SQLite under the one-process engine's
concurrency (pollers, the pusher and read-back each run read-then-write transactions on
their own connections), and statement parameters kept out of error messages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import IntegrityError

from app.db import create_engine, create_session_factory, transaction

metadata = MetaData()
counter = Table("counter", metadata, Column("id", Integer, primary_key=True), Column("n", Integer))
people = Table("people", metadata, Column("name", String(50), primary_key=True))


async def test_read_then_write_transactions_wait_for_each_other(tmp_path: Path) -> None:
    """A deferred transaction that read before another one committed cannot upgrade to
    a write (SQLite answers "database is locked" at once, without waiting): every
    transaction must take the write lock when it begins."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'contention.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        factory = create_session_factory(engine)

        async def worker(number: int) -> None:
            for step in range(15):
                async with transaction(factory) as session:
                    seen = await session.scalar(select(func.count()).select_from(counter))
                    await asyncio.sleep(0.001)  # let the others commit in between
                    await session.execute(
                        insert(counter).values(n=number * 100 + (seen or 0) + step)
                    )

        await asyncio.gather(*(worker(number) for number in range(4)))
        async with factory() as session:
            assert await session.scalar(select(func.count()).select_from(counter)) == 60
    finally:
        await engine.dispose()


async def test_readers_do_not_wait_for_a_unit_of_work(tmp_path: Path) -> None:
    """Only units of work take the write lock up front: a plain session reads the last
    committed state while a writer is under way (WAL)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'readers.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        factory = create_session_factory(engine)
        async with transaction(factory) as writer:
            await writer.execute(insert(counter).values(n=1))
            async with factory() as reader:
                seen = await asyncio.wait_for(
                    reader.scalar(select(func.count()).select_from(counter)), timeout=5
                )
            assert seen == 0
    finally:
        await engine.dispose()


async def test_statement_parameters_stay_out_of_error_messages(tmp_path: Path) -> None:
    """Parameters are records with personal data; an error message ends up in the logs."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hidden.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(insert(people).values(name="Nguyễn Văn An"))
        with pytest.raises(IntegrityError) as raised:
            async with engine.begin() as connection:
                await connection.execute(insert(people).values(name="Nguyễn Văn An"))
        assert "Nguyễn" not in str(raised.value)
    finally:
        await engine.dispose()

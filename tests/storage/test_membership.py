"""``Repository.one_of`` and ``pairs_of``: ``IN`` lists that select exactly their values,
are one statement whatever their length, and take any number of values, on both
backends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import DossierRow, ProgressRow
from app.repositories.dossiers import DossierRepository, IncomingDossier, IncomingProgress
from tests.factories import RECEIVED_AT, make_dossier, make_progress

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)


def _code(n: int) -> str:
    return f"000.00.53.H26-240125-{n:05d}"


async def _stored(session: AsyncSession, count: int, steps: int = 2) -> dict[str, int]:
    """``count`` dossiers with ``steps`` progress records each; MaHoSo → id."""
    repo = DossierRepository(session)
    stored = await repo.upsert_many(
        [IncomingDossier(make_dossier(_code(n), "4"), read_at=NOW) for n in range(count)]
    )
    ids = {item.ma_ho_so: item.dossier_id for item in stored}
    await repo.add_progress(
        [
            IncomingProgress(ids[_code(n)], _step(n, k), NOW)
            for n in range(count)
            for k in range(steps)
        ]
    )
    return ids


def _step(n: int, k: int) -> Any:
    return make_progress(_code(n), "4", at=RECEIVED_AT + timedelta(hours=1, minutes=k))


async def test_one_of_selects_exactly_its_values(session: AsyncSession) -> None:
    ids = await _stored(session, 30, steps=0)
    repo = DossierRepository(session)

    async def codes_where(values: list[str]) -> list[str]:
        rows = await session.scalars(
            select(DossierRow.ma_ho_so).where(repo.one_of(DossierRow.ma_ho_so, values))
        )
        return sorted(rows)

    assert await codes_where([]) == []
    assert await codes_where([_code(3)]) == [_code(3)]
    wanted = [_code(n) for n in range(0, 30, 3)]
    # Repeats and values that match nothing change nothing.
    assert await codes_where([*wanted, *wanted, "000.00.53.H26-991231-00001"]) == sorted(wanted)
    by_id = await session.scalars(
        select(DossierRow.ma_ho_so).where(repo.one_of(DossierRow.id, iter(ids.values())))
    )
    assert sorted(by_id) == sorted(ids)


async def test_pairs_of_selects_exactly_its_pairs(session: AsyncSession) -> None:
    ids = await _stored(session, 12, steps=3)
    repo = DossierRepository(session)
    known = {
        (dossier_id, identity)
        for dossier_id, identity in (
            await session.execute(select(ProgressRow.dossier_id, ProgressRow.identity_hash))
        ).all()
    }
    assert len(known) == 36
    chosen = sorted(known)[::5]
    # A known hash under another dossier's id is not a match: pairs, not two lists.
    assert chosen[0][0] != chosen[-1][0]
    crossed = [(chosen[0][0], chosen[-1][1])]
    absent = [(max(ids.values()) + 1, chosen[0][1])]
    rows = await session.execute(
        select(ProgressRow.dossier_id, ProgressRow.identity_hash).where(
            repo.pairs_of(
                ProgressRow.dossier_id, ProgressRow.identity_hash, [*chosen, *crossed, *absent]
            )
        )
    )
    assert sorted(tuple(row) for row in rows.all()) == chosen
    none = await session.execute(
        select(ProgressRow.id).where(
            repo.pairs_of(ProgressRow.dossier_id, ProgressRow.identity_hash, [])
        )
    )
    assert none.all() == []


@contextmanager
def _statements(session: AsyncSession) -> Iterator[list[str]]:
    """The SQL text of every statement the session sends while the block runs."""
    sent: list[str] = []
    bind = session.get_bind()

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(bind, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(bind, "before_cursor_execute", record)


async def test_a_pages_store_queries_are_the_same_statements_whatever_its_size(
    session: AsyncSession,
) -> None:
    """The store's look-ups by a page's codes and progress identities send the same text
    for a page of 2 and of 40: each is prepared and planned once, where ``IN`` lists made
    a new statement of every length (on PostgreSQL 1,200 parameters for a page of 200
    changed dossiers, planned in ~10 ms)."""
    ids = await _stored(session, 60, steps=2)
    repo = DossierRepository(session)

    async def page(first: int, size: int) -> list[str]:
        codes = [_code(n) for n in range(first, first + size)]
        dossiers = [IncomingDossier(make_dossier(code, "5"), read_at=NOW) for code in codes]
        steps = [  # two known steps and a new one each
            IncomingProgress(ids[_code(n)], _step(n, k), NOW)
            for n in range(first, first + size)
            for k in range(3)
        ]
        with _statements(session) as sent:
            await repo.upsert_many(dossiers)
            added = await repo.add_new_progress(steps)
        assert len(added) == size
        return [text for text in sent if text.lstrip().upper().startswith("SELECT")]

    small, large = await page(0, 2), await page(10, 40)
    assert len(small) == 2
    assert small == large


async def test_lists_longer_than_a_statement_takes_parameters(session: AsyncSession) -> None:
    """40,000 values: more than asyncpg (32,767) or a default SQLite build (32,766) takes
    as parameters of one statement, as re-evaluating a large quarantine can ask for."""
    ids = await _stored(session, 3, steps=1)
    repo = DossierRepository(session)
    values = [*range(-40_000, 0), *ids.values()]
    found = await session.scalars(select(DossierRow.id).where(repo.one_of(DossierRow.id, values)))
    assert sorted(found) == sorted(ids.values())
    pairs = [(n, f"{n:064x}") for n in range(40_000)]
    rows = await session.execute(select(ProgressRow.dossier_id, ProgressRow.identity_hash))
    stored = [(dossier_id, identity) for dossier_id, identity in rows.all()]
    matched = await session.execute(
        select(ProgressRow.dossier_id).where(
            repo.pairs_of(
                ProgressRow.dossier_id,
                ProgressRow.identity_hash,
                [*pairs, *stored],
            )
        )
    )
    assert sorted(matched.scalars()) == sorted(ids.values())

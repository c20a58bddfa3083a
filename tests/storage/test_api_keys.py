"""ApiKeyRepository: only hashes stored, revoked keys not found."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey
from app.repositories.api_keys import ApiKeyRepository

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)
PLAIN = "dsk_live_9f2c0e4b7a1d4c3e8b6f5a2d1c0e9b8a"
HASH = hashlib.sha256(PLAIN.encode()).hexdigest()


async def test_create_and_find_by_hash(session: AsyncSession) -> None:
    repo = ApiKeyRepository(session)
    key = await repo.create(
        key_hash=HASH,
        prefix=PLAIN[:12],
        unit="000.00.00.H26",
        agency="000.00.53.H26",
        scopes=["read", "ingest", "read"],
        now=NOW,
    )
    found = await repo.find_active(HASH)
    assert found is not None and found.id == key.id
    assert found.scopes == ["ingest", "read"]
    assert (found.unit, found.agency) == ("000.00.00.H26", "000.00.53.H26")
    stored = (await session.execute(select(ApiKey.__table__))).mappings().one()
    assert PLAIN not in {str(v) for v in stored.values()}


async def test_revoked_keys_are_not_found(session: AsyncSession) -> None:
    repo = ApiKeyRepository(session)
    key = await repo.create(
        key_hash=HASH,
        prefix="dsk_live_9f2",
        unit="000.00.00.H26",
        agency=None,
        scopes=["admin"],
        now=NOW,
    )
    await repo.touch(key.id, NOW)
    assert await repo.revoke(key.id, NOW)
    assert await repo.find_active(HASH) is None
    assert not await repo.revoke(key.id, NOW)
    assert [k.id for k in await repo.list_for_unit("000.00.00.H26")] == [key.id]


async def test_hashes_are_unique(session: AsyncSession) -> None:
    repo = ApiKeyRepository(session)
    await repo.create(
        key_hash=HASH, prefix="a", unit="000.00.00.H26", agency=None, scopes=["read"], now=NOW
    )
    with pytest.raises(IntegrityError):
        await repo.create(
            key_hash=HASH, prefix="b", unit="000.00.00.H29", agency=None, scopes=["read"], now=NOW
        )


async def test_list_keys_and_find_them_by_id_name_or_prefix(session: AsyncSession) -> None:
    repo = ApiKeyRepository(session)
    made = [
        await repo.create(
            key_hash=f"{n:064x}",
            prefix=f"dsk_k{n}",
            unit=unit,
            agency=None,
            scopes=["read"],
            now=NOW,
            name=name,
        )
        for n, (unit, name) in enumerate(
            [("000.00.00.H26", "igate"), ("000.00.00.H29", "igate"), ("000.00.00.H26", None)]
        )
    ]
    ids = [key.id for key in made]
    assert await repo.revoke(ids[0], NOW)
    assert [k.id for k in await repo.list_keys()] == ids  # revoked ones too
    assert [k.id for k in await repo.list_keys("000.00.00.H26")] == [ids[0], ids[2]]
    named = await repo.matching("igate")
    assert [k.id for k in named] == ids[:2]
    assert named[0].revoked_at == NOW  # as stored, though revoked in this session
    assert [k.id for k in await repo.matching(str(ids[2]))] == [ids[2]]
    assert [k.id for k in await repo.matching("dsk_k1")] == [ids[1]]
    assert await repo.matching("") == []
    assert await repo.matching(str(2**31)) == []  # beyond the column, no error

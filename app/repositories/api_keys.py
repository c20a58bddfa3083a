"""API keys: stored as hashes, looked up by hash."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update

from app.models import ApiKey
from app.repositories.base import Repository

MAX_ID = 2**31 - 1  # an INTEGER column: a larger number names no key (and would not bind)


class ApiKeyRepository(Repository):
    async def create(
        self,
        *,
        key_hash: str,
        prefix: str,
        unit: str,
        agency: str | None,
        scopes: Sequence[str],
        now: datetime,
        name: str | None = None,
    ) -> ApiKey:
        key = ApiKey(
            key_hash=key_hash,
            prefix=prefix,
            name=name,
            unit=unit,
            agency=agency,
            scopes=sorted(set(scopes)),
            created_at=now,
        )
        self.session.add(key)
        await self.session.flush()
        return key

    async def find_active(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, unless it was revoked."""
        return await self.session.scalar(
            select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )

    async def touch(self, key_id: int, now: datetime) -> None:
        await self.session.execute(
            update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now)
        )

    async def revoke(self, key_id: int, now: datetime) -> bool:
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def list_for_unit(self, unit: str) -> Sequence[ApiKey]:
        return (
            await self.session.scalars(
                select(ApiKey).where(ApiKey.unit == unit).order_by(ApiKey.created_at)
            )
        ).all()

    async def list_keys(self, unit: str | None = None) -> Sequence[ApiKey]:
        """Every key, revoked ones included, oldest first; only ``unit``'s when given."""
        query = select(ApiKey).order_by(ApiKey.id)
        if unit is not None:
            query = query.where(ApiKey.unit == unit)
        return (await self.session.scalars(query)).all()

    async def matching(self, which: str) -> Sequence[ApiKey]:
        """The keys an operator names: by id (digits), else by name or display prefix.
        Names are not unique, so several may match."""
        if which.isascii() and which.isdigit():
            if int(which) > MAX_ID:
                return []
            condition = ApiKey.id == int(which)
        else:
            condition = or_(ApiKey.name == which, ApiKey.prefix == which)
        # populate_existing: a key revoked earlier in this session (revoke() updates in
        # SQL only) must show its revoked_at.
        query = select(ApiKey).where(condition).order_by(ApiKey.id)
        query = query.execution_options(populate_existing=True)
        return (await self.session.scalars(query)).all()

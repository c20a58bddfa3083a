"""Portal holds: the latest time until which each unit must send the portal nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.models import PortalHold
from app.repositories.base import Repository


class PortalHoldRepository(Repository):
    async def extend(self, unit: str, until: datetime) -> None:
        """Hold ``unit`` until ``until``, unless it is already held longer: every 429's
        time holds, a later and shorter one does not shorten an earlier."""
        statement = self.insert(PortalHold).values(unit=unit, until=until)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["unit"],
                set_={"until": statement.excluded.until},
                where=PortalHold.until < statement.excluded.until,
            )
        )

    async def until(self, unit: str) -> datetime | None:
        """When ``unit``'s hold ends (perhaps already past), or None if it never had one."""
        return await self.session.scalar(select(PortalHold.until).where(PortalHold.unit == unit))

    async def all(self) -> dict[str, datetime]:
        """Every unit's hold end (past ones too): one row per unit that was ever held."""
        rows = await self.session.execute(select(PortalHold.unit, PortalHold.until))
        return {row.unit: row.until for row in rows}

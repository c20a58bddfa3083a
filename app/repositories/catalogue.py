"""The portal's reference catalogue, as last fetched."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from app.models import Agency, Procedure
from app.models.base import table_of
from app.repositories.base import Repository

# Transaction-scoped advisory lock taken by a catalogue refresh on PostgreSQL (an arbitrary
# constant, the same in every process).
_REFRESH_LOCK = 0x64_6F_73_73_63_61_74  # "dosscat"


@dataclass(frozen=True, slots=True)
class CatalogueAgency:
    code: str
    name: str
    level: str


class CatalogueRepository(Repository):
    async def replace_procedures(self, procedures: Sequence[dict[str, Any]], now: datetime) -> None:
        """Replace the procedure list with the portal's current one (``LayDanhSachTTHC``)."""
        await self._serialise_refreshes()
        await self.session.execute(delete(Procedure))
        if procedures:
            await self.session.execute(
                table_of(Procedure).insert(),
                [
                    {"code": p["MaTTHC"], "name": p["TenTTHC"], "data": p, "refreshed_at": now}
                    for p in procedures
                ],
            )

    async def procedures(self) -> Sequence[Procedure]:
        return (await self.session.scalars(select(Procedure).order_by(Procedure.code))).all()

    async def procedure_codes(self) -> set[str]:
        return set((await self.session.scalars(select(Procedure.code))).all())

    async def procedure(self, code: str) -> Procedure | None:
        return await self.session.get(Procedure, code)

    async def replace_agencies(self, agencies: Sequence[CatalogueAgency], now: datetime) -> None:
        await self._serialise_refreshes()
        await self.session.execute(delete(Agency))
        if agencies:
            await self.session.execute(
                table_of(Agency).insert(),
                [
                    {"code": a.code, "name": a.name, "level": a.level, "refreshed_at": now}
                    for a in agencies
                ],
            )

    async def _serialise_refreshes(self) -> None:
        """Workers starting together refresh at once: without a lock, the second one's
        delete misses the rows the first inserted meanwhile, and its insert collides
        with them. Held until the transaction ends; SQLite serialises writers anyway."""
        if self.dialect == "postgresql":
            await self.session.execute(select(func.pg_advisory_xact_lock(_REFRESH_LOCK)))

    async def agencies(self) -> Sequence[Agency]:
        return (await self.session.scalars(select(Agency).order_by(Agency.code))).all()

    async def agency_names(self, codes: Iterable[str]) -> dict[str, str]:
        """``MaCoQuan`` → ``TenCoQuan`` of those of ``codes`` the catalogue knows."""
        rows = await self.session.execute(
            select(Agency.code, Agency.name).where(Agency.code.in_(list(codes)))
        )
        return dict(rows.all())

"""The portal's "send nothing before" times, shared through the database.

Contract §6: after a 429 a client sends nothing to that unit before the time its
``Retry-After`` names. Several worker processes (and ``serve``) talk to the portal as the
same unit, so to the portal they are one client: a wait one of them was answered must
hold them all, including one that starts during the wait. Each 429 is written to
``portal_holds`` (:meth:`DatabaseHolds.hold`), and each process looks there before every
portal request (:meth:`DatabaseHolds.wait_s`): one indexed read per request, which is
small beside a request that carries up to a hundred dossiers.

The times are wall-clock (UTC), as a Retry-After is. While the database is out of reach
a process sends nothing (:class:`HoldsUnknown`): it could not know another's wait, nor
record what it pushed. A wait it was answered meanwhile is kept and written first
when the database is back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.logs import get_logger
from app.repositories.portal_holds import PortalHoldRepository
from app.sync.portal import HoldsUnknown

log = get_logger("dossier_sync.holds")

_UNREACHABLE = (SQLAlchemyError, OSError)


def wall_clock() -> datetime:
    return datetime.now(UTC)


class DatabaseHolds:
    """A :class:`app.sync.portal.HoldBoard` over the ``portal_holds`` table."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        self.sessions = sessions
        # Real time even where an engine runs on a test's clock: the portal's wait is.
        self.clock = clock
        self._unshared: dict[str, datetime] = {}  # holds not written yet (database away)

    async def hold(self, unit: str, seconds: float) -> None:
        """The portal asked ``unit`` to wait ``seconds``: tell every process."""
        until = self.clock() + timedelta(seconds=seconds)
        self._unshared[unit] = max(until, self._unshared.get(unit, until))
        try:
            await self._share()
        except _UNREACHABLE as error:
            log.warning(
                "could not share the portal's Retry-After yet; kept to share later",
                unit=unit,
                error=type(error).__name__,
            )

    async def wait_s(self, unit: str) -> float:
        """How long, from now, ``unit`` must still send nothing (0: it may send)."""
        try:
            await self._share()
            async with self.sessions() as session:
                until = await PortalHoldRepository(session).until(unit)
        except _UNREACHABLE as error:
            log.warning(
                "could not read the shared Retry-After; sending nothing meanwhile",
                unit=unit,
                error=type(error).__name__,
            )
            raise HoldsUnknown(
                f"the shared Retry-After of {unit} could not be read ({type(error).__name__})"
            ) from None
        if until is None:
            return 0.0
        return max(0.0, (until - self.clock()).total_seconds())

    async def _share(self) -> None:
        """Write the holds kept while the database was away (those not yet past)."""
        now = self.clock()
        for unit in [u for u, until in self._unshared.items() if until <= now]:
            del self._unshared[unit]
        pending = dict(self._unshared)
        if not pending:
            return
        async with transaction(self.sessions) as session:
            repository = PortalHoldRepository(session)
            for unit, until in sorted(pending.items()):
                await repository.extend(unit, until)
        for unit, until in pending.items():
            if self._unshared.get(unit) == until:  # not lengthened while writing
                del self._unshared[unit]

"""The portal's "send nothing before" times, shared through the database.

Contract §6: after a 429 a client sends nothing to that unit before the time its
``Retry-After`` names. Several worker processes (and ``serve``) talk to the portal as the
same unit, so to the portal they are one client: a wait one of them was answered must
hold them all, including one that starts during the wait. Each 429 is written to
``portal_holds`` (:meth:`DatabaseHolds.hold`), and each process looks there before every
portal request (:meth:`DatabaseHolds.wait_s`): one indexed read per request, which is
small beside a request that carries up to a hundred dossiers.

The times are wall-clock (UTC), as a Retry-After is; a process that cannot reach the
database keeps its own hold (the portal client's) and goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.logs import get_logger
from app.repositories.portal_holds import PortalHoldRepository

log = get_logger("dossier_sync.holds")


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

    async def hold(self, unit: str, seconds: float) -> None:
        """The portal asked ``unit`` to wait ``seconds``: tell every process."""
        try:
            async with transaction(self.sessions) as session:
                await PortalHoldRepository(session).extend(
                    unit, self.clock() + timedelta(seconds=seconds)
                )
        except (SQLAlchemyError, OSError) as error:
            log.warning(
                "could not share the portal's Retry-After; other workers may send early",
                unit=unit,
                error=type(error).__name__,
            )

    async def wait_s(self, unit: str) -> float:
        """How long, from now, ``unit`` must still send nothing (0: it may send)."""
        try:
            async with self.sessions() as session:
                until = await PortalHoldRepository(session).until(unit)
        except (SQLAlchemyError, OSError) as error:
            log.warning(
                "could not read the shared Retry-After; going by this process's own",
                unit=unit,
                error=type(error).__name__,
            )
            return 0.0
        if until is None:
            return 0.0
        return max(0.0, (until - self.clock()).total_seconds())

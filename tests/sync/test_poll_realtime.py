"""Polling while the source changes on the wall clock, as a real system does: changes
land in the very second (OpenCPS: whole seconds) that a poll has just read, behind the
reader in the source's order. Once the source is quiet, storage equals the truth."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.simulators import Dialect
from app.sync.normalise.common import Catalogue
from tests.sync.polling import (
    assert_matches_truth,
    poll_until_quiet,
    poller_for,
    simulator,
)


@pytest.mark.parametrize("dialect", ["opencps", "igate", "dvclt"])
async def test_polling_while_the_source_changes_on_the_wall_clock(
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue], dialect: Dialect
) -> None:
    factory, catalogue = sessions
    with simulator(
        dialect, dossiers=40, seed=3, clock="real", ties=True, changes_per_second=60
    ) as (sim, control):
        poller = poller_for(dialect, sim.url, factory, control.truth(), page_size=10)
        try:
            for _ in range(12):
                await poller.poll_once()
                await asyncio.sleep(0.1)
            control.settings(changes_per_second=0)
            # A real poller's interval: rows stamped in the last seconds are read again
            # until their second is safely past (opencps.py, _processed).
            await poll_until_quiet(poller, limit=40, interval_s=0.25)
            await assert_matches_truth(factory, dialect, control.truth(), catalogue)
        finally:
            await poller.aclose()

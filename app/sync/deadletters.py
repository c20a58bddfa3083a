"""Redriving dead letters: the push is tried again from a clean slate."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.repositories.dead_letters import DeadLetterFilter, DeadLetterRepository
from app.repositories.outbox import OutboxRepository


async def redrive(session: AsyncSession, where: DeadLetterFilter, now: datetime) -> list[int]:
    """Close the matching open dead letters and queue their dossiers again (attempt budget
    reset, what the portal holds unknown). Returns the dossier ids. Never commits."""
    dossier_ids = await DeadLetterRepository(session).mark_redriven(where, now)
    await OutboxRepository(session).requeue(dossier_ids, now, "redriven")
    return dossier_ids

"""Operator tasks run from the command line against the configured database: API keys
(create, list, revoke), listing and redriving dead letters. Each runs in one transaction
(the command is the boundary)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.auth import CreatedKey, KeyView, Revocation, Scope, create_key, revoke_key
from app.config import Settings
from app.db import create_engine, create_session_factory, transaction
from app.models import DeadLetter
from app.repositories.api_keys import ApiKeyRepository
from app.repositories.dead_letters import DeadLetterFilter, DeadLetterRepository
from app.sync.deadletters import redrive


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """What an operator sees of a dead letter (the dossier code is not personal data)."""

    created_at: datetime
    ma_ho_so: str
    unit: str
    agency: str
    service: str
    error_code: int | None
    attempts: int
    reason: str

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterView:
        return cls(
            letter.created_at,
            letter.ma_ho_so,
            letter.unit,
            letter.agency,
            letter.service,
            letter.error_code,
            letter.attempts,
            letter.reason,
        )


async def list_dead_letters(
    settings: Settings, where: DeadLetterFilter, limit: int
) -> Sequence[DeadLetterView]:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            letters = await DeadLetterRepository(session).list_open(where, limit=limit)
            return [DeadLetterView.of(letter) for letter in letters]
    finally:
        await engine.dispose()


async def redrive_dead_letters(settings: Settings, where: DeadLetterFilter) -> int:
    """Queue the matching dossiers again; returns how many. The running workers pick them
    up at their next push round."""
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            return len(await redrive(session, where, datetime.now(UTC)))
    finally:
        await engine.dispose()


async def create_api_key(
    settings: Settings, *, unit: str, agency: str | None, scopes: list[Scope], name: str | None
) -> CreatedKey:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            return await create_key(
                session,
                unit=unit,
                agency=agency,
                scopes=scopes,
                now=datetime.now(UTC),
                name=name,
            )
    finally:
        await engine.dispose()


async def list_api_keys(settings: Settings, unit: str | None = None) -> Sequence[KeyView]:
    """Every key (revoked ones too), oldest first; only ``unit``'s when given."""
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            return [KeyView.of(row) for row in await ApiKeyRepository(session).list_keys(unit)]
    finally:
        await engine.dispose()


async def revoke_api_key(settings: Settings, which: str) -> Revocation:
    """Revoke the key named by id, name or prefix (see :func:`app.auth.revoke_key`)."""
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            return await revoke_key(session, which, datetime.now(UTC))
    finally:
        await engine.dispose()

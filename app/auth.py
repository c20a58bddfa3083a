"""API keys and what they allow (service-interface.md, "HTTP API").

A key is a long random string shown once; only its SHA-256 is stored (a slow password
hash buys nothing for 256 random bits, and every request checks one). A key belongs to a
top-level unit — all its agencies — or to one agency, and carries scopes among
``ingest``, ``read`` and ``admin``, each needed by its own routes (``admin`` does not
imply the others: an operator's key is not a provincial system's).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.agency import is_agency_code, unit_of
from app.repositories.api_keys import ApiKeyRepository

KEY_PREFIX = "dsk_"  # tells a dossier-sync key apart in a secret scanner or a config file


class Scope(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's id, reach and scopes."""

    key_id: int
    unit: str
    agency: str | None
    scopes: frozenset[Scope]

    def covers(self, agency: str) -> bool:
        """Whether this key may see or write the dossiers of ``agency``."""
        if self.agency is not None:
            return agency == self.agency
        return is_agency_code(agency) and unit_of(agency) == self.unit

    def covers_unit(self, unit: str) -> bool:
        """Whether this key reaches the whole top-level ``unit`` (unit-wide reads)."""
        return self.agency is None and unit == self.unit


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: str  # shown once, never stored
    key_id: int
    prefix: str


async def create_key(
    session: AsyncSession,
    *,
    unit: str,
    agency: str | None,
    scopes: Iterable[Scope],
    now: datetime,
    name: str | None = None,
) -> CreatedKey:
    """Store a new key's hash and return the key. Never commits."""
    if agency is not None and unit_of(agency) != unit:
        raise ValueError(f"agency {agency} is not an agency of unit {unit}")
    key = new_key()
    prefix = key[: len(KEY_PREFIX) + 6]
    row = await ApiKeyRepository(session).create(
        key_hash=hash_key(key),
        prefix=prefix,
        unit=unit,
        agency=agency,
        scopes=[s.value for s in scopes],
        now=now,
        name=name,
    )
    return CreatedKey(key, row.id, prefix)


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    """The principal of an active key, or None for an unknown or revoked one."""
    row = await ApiKeyRepository(session).find_active(hash_key(key))
    if row is None:
        return None
    scopes = frozenset(Scope(s) for s in row.scopes if s in Scope.__members__.values())
    return Principal(row.id, row.unit, row.agency, scopes)

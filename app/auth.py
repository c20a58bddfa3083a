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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.agency import is_agency_code, unit_of
from app.models import ApiKey
from app.repositories.api_keys import ApiKeyRepository

KEY_PREFIX = "dsk_"  # tells a dossier-sync key apart in a secret scanner or a config file
# A key's last use is written at most this often: enough to tell a key still in use from
# one nobody sends any more (key rotation), without a write on every request.
LAST_USED_EVERY = timedelta(minutes=1)


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


async def authenticate(
    session: AsyncSession, key: str, now: datetime | None = None
) -> Principal | None:
    """The principal of an active key, or None for an unknown or revoked one. With
    ``now``, the key's last use is recorded (at most every :data:`LAST_USED_EVERY`)."""
    keys = ApiKeyRepository(session)
    row = await keys.find_active(hash_key(key))
    if row is None:
        return None
    if now is not None and (row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY):
        await keys.touch(row.id, now)
    scopes = frozenset(Scope(s) for s in row.scopes if s in Scope.__members__.values())
    return Principal(row.id, row.unit, row.agency, scopes)


@dataclass(frozen=True, slots=True)
class KeyView:
    """What an operator sees of a key: never the key, nor its hash."""

    key_id: int
    prefix: str
    name: str | None
    unit: str
    agency: str | None
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey, *, revoked_at: datetime | None = None) -> KeyView:
        return cls(
            row.id,
            row.prefix,
            row.name,
            row.unit,
            row.agency,
            tuple(row.scopes),
            row.created_at,
            row.last_used_at,
            revoked_at or row.revoked_at,
        )


class KeyNotFoundError(LookupError):
    """No key has that id, name or prefix."""


class AmbiguousKeyError(LookupError):
    """Several active keys have that name (or prefix); the operator must pick one by id."""

    def __init__(self, which: str, candidates: Sequence[KeyView]) -> None:
        super().__init__(f"{len(candidates)} active keys are named {which!r}")
        self.candidates = candidates


@dataclass(frozen=True, slots=True)
class Revocation:
    key: KeyView
    now: bool  # False: it had been revoked already (revoking is idempotent)


async def revoke_key(session: AsyncSession, which: str, now: datetime) -> Revocation:
    """Revoke the key named by ``which`` (its id, name or display prefix, as ``keys list``
    shows them); from the next request on it is refused like an unknown key. Never
    commits. Raises :class:`KeyNotFoundError` or :class:`AmbiguousKeyError`."""
    keys = ApiKeyRepository(session)
    # `keys create` prints the prefix followed by an ellipsis; accept it pasted as is.
    found = await keys.matching(which.strip().rstrip("…"))
    if not found:
        raise KeyNotFoundError(f"no API key has the id, name or prefix {which!r}")
    active = [row for row in found if row.revoked_at is None]
    if len(active) > 1:
        raise AmbiguousKeyError(which, [KeyView.of(row) for row in active])
    if not active:
        return Revocation(KeyView.of(found[-1]), now=False)
    [row] = active
    if not await keys.revoke(row.id, now):  # revoked meanwhile by someone else
        [row] = await keys.matching(str(row.id))
        return Revocation(KeyView.of(row), now=False)
    return Revocation(KeyView.of(row, revoked_at=now), now=True)

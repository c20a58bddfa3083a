"""API keys: created once and stored as a hash, found by the key, scoped to a unit or
one agency, their last use recorded, revoked by id, name or prefix (and then refused over
HTTP); the per-key token bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.security import TokenBuckets
from app.auth import (
    KEY_PREFIX,
    LAST_USED_EVERY,
    AmbiguousKeyError,
    KeyNotFoundError,
    Principal,
    Scope,
    authenticate,
    create_key,
    hash_key,
    revoke_key,
)
from app.db import transaction
from app.models import ApiKey
from app.repositories.api_keys import ApiKeyRepository
from tests.api.conftest import Api
from tests.service.conftest import run_cli

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
H26 = "000.00.00.H26"


async def test_a_key_is_stored_only_as_its_hash_and_found_by_the_key(
    session: AsyncSession,
) -> None:
    created = await create_key(
        session, unit=H26, agency=None, scopes=[Scope.READ, Scope.INGEST], now=NOW, name="igate"
    )
    assert created.key.startswith(KEY_PREFIX)
    assert len(created.key) > 40
    [row] = (await session.scalars(select(ApiKey))).all()
    assert row.key_hash == hash_key(created.key) != created.key
    assert created.key not in {row.key_hash, row.prefix, row.name}
    assert created.key.startswith(row.prefix)

    found = await authenticate(session, created.key)
    assert found == Principal(created.key_id, H26, None, frozenset({Scope.READ, Scope.INGEST}))
    assert await authenticate(session, created.key + "x") is None
    assert await authenticate(session, "") is None


async def test_a_revoked_key_is_unknown(session: AsyncSession) -> None:
    created = await create_key(session, unit=H26, agency=None, scopes=[Scope.READ], now=NOW)
    assert await ApiKeyRepository(session).revoke(created.key_id, NOW)
    assert await authenticate(session, created.key) is None


async def test_an_agency_key_must_be_of_its_unit(session: AsyncSession) -> None:
    with pytest.raises(ValueError, match="not an agency of unit"):
        await create_key(session, unit=H26, agency="000.00.53.H29", scopes=[Scope.READ], now=NOW)


@pytest.mark.parametrize(
    ("key_agency", "agency", "covered"),
    [
        (None, "000.00.53.H26", True),  # a unit key: every agency of the unit
        (None, "000.00.00.H26", True),
        (None, "000.00.53.H29", False),  # another province
        (None, "not-a-code", False),
        ("000.00.53.H26", "000.00.53.H26", True),  # an agency key: that agency only
        ("000.00.53.H26", "000.00.54.H26", False),
        ("000.00.53.H26", "000.00.00.H26", False),
    ],
)
def test_what_a_key_covers(key_agency: str | None, agency: str, covered: bool) -> None:
    principal = Principal(1, H26, key_agency, frozenset({Scope.READ}))
    assert principal.covers(agency) is covered
    assert principal.covers_unit(H26) is (key_agency is None)
    assert not principal.covers_unit("000.00.00.H29")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_a_burst_then_the_rate_per_key() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take(1) for _ in range(3)] == [None, None, None]
    assert buckets.take(1) == pytest.approx(0.5)  # one token every 0.5 s
    assert buckets.take(2) is None  # another key has its own bucket
    clock.now += 0.5
    assert buckets.take(1) is None
    assert buckets.take(1) == pytest.approx(0.5)
    clock.now += 100  # refills up to the burst, no more
    assert [buckets.take(1) for _ in range(4)][-1] == pytest.approx(0.5)


def test_keys_create_prints_the_key_once_and_stores_its_hash(tmp_path: Path) -> None:
    directory = tmp_path
    url = f"sqlite:///{directory / 'keys.db'}"
    config = directory / "config.toml"
    config.write_text(f'database_url = "{url}"\n', encoding="utf-8")
    assert run_cli("db", "upgrade", "--config", str(config)).returncode == 0

    made = run_cli(
        "keys", "create", "--config", str(config), "--unit", H26, "--scope", "ingest,read"
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith(KEY_PREFIX)
    assert key not in made.stderr
    assert key not in (directory / "keys.db").read_bytes().decode("latin-1")
    assert hash_key(key) in (directory / "keys.db").read_bytes().decode("latin-1")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--unit", "000.00.53.H26", "--scope", "read"], "--unit"),
        (["--unit", H26, "--agency", "000.00.53.H29", "--scope", "read"], "--agency"),
        (["--unit", H26, "--scope", "read,superuser"], "--scope"),
    ],
)
def test_keys_create_names_the_bad_option(args: list[str], named: str) -> None:
    result = run_cli("keys", "create", *args)
    assert result.returncode == 2
    assert named in result.stderr


async def test_a_key_records_its_last_use_at_most_once_a_minute(session: AsyncSession) -> None:
    created = await create_key(session, unit=H26, agency=None, scopes=[Scope.READ], now=NOW)

    async def last_used() -> datetime | None:
        row = await session.get(ApiKey, created.key_id, populate_existing=True)
        assert row is not None
        return row.last_used_at

    assert await last_used() is None
    assert await authenticate(session, created.key) is not None  # no clock: not recorded
    assert await last_used() is None
    assert await authenticate(session, created.key, NOW) is not None
    assert await last_used() == NOW
    assert await authenticate(session, created.key, NOW + timedelta(seconds=59)) is not None
    assert await last_used() == NOW
    later = NOW + LAST_USED_EVERY
    assert await authenticate(session, created.key, later) is not None
    assert await last_used() == later
    assert await authenticate(session, created.key + "x", later + LAST_USED_EVERY) is None
    assert await last_used() == later


async def test_revoke_a_key_by_id_name_or_prefix(session: AsyncSession) -> None:
    ops = await create_key(
        session, unit=H26, agency=None, scopes=[Scope.ADMIN], now=NOW, name="ops"
    )
    igate = await create_key(
        session, unit=H26, agency="000.00.53.H26", scopes=[Scope.INGEST], now=NOW, name="igate"
    )
    other = await create_key(session, unit=H26, agency=None, scopes=[Scope.READ], now=NOW)

    by_name = await revoke_key(session, "ops", NOW)
    assert by_name.now and by_name.key.key_id == ops.key_id and by_name.key.revoked_at == NOW
    assert await authenticate(session, ops.key) is None
    assert await authenticate(session, igate.key) is not None  # only that one

    again = await revoke_key(session, str(ops.key_id), NOW + timedelta(hours=1))
    assert not again.now and again.key.revoked_at == NOW  # idempotent, first time kept

    pasted = await revoke_key(session, f"{igate.prefix}…", NOW)  # as `keys create` prints it
    assert pasted.now and pasted.key.key_id == igate.key_id
    assert pasted.key.agency == "000.00.53.H26" and pasted.key.scopes == ("ingest",)

    for unknown in ("nobody", "999999", str(2**40), "dsk_"):
        with pytest.raises(KeyNotFoundError):
            await revoke_key(session, unknown, NOW)
    assert await authenticate(session, other.key) is not None


async def test_a_name_several_active_keys_share_revokes_nothing(session: AsyncSession) -> None:
    first = await create_key(session, unit=H26, agency=None, scopes=[Scope.READ], now=NOW, name="x")
    second = await create_key(
        session, unit=H26, agency=None, scopes=[Scope.READ], now=NOW, name="x"
    )
    with pytest.raises(AmbiguousKeyError) as raised:
        await revoke_key(session, "x", NOW)
    assert [c.key_id for c in raised.value.candidates] == [first.key_id, second.key_id]
    assert await authenticate(session, first.key) is not None
    assert await authenticate(session, second.key) is not None

    await revoke_key(session, str(first.key_id), NOW)
    # Once only one of them is active, the name is no longer ambiguous.
    assert (await revoke_key(session, "x", NOW)).key.key_id == second.key_id
    assert await authenticate(session, second.key) is None


async def test_a_revoked_key_is_refused_over_http_from_the_next_request(api: Api) -> None:
    key = await api.key(H26, ["read"])
    path = f"/api/v1/units/{H26}/sync"
    assert (await api.client.get(path, headers=api.auth(key))).status_code == 200
    async with transaction(api.sessions) as session:
        [row] = (await session.scalars(select(ApiKey))).all()
        assert row.last_used_at is not None  # the request was recorded
        await revoke_key(session, str(row.id), datetime.now(UTC))

    refused = await api.client.get(path, headers=api.auth(key))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    fresh = await api.key(H26, ["read"])  # its replacement works
    assert (await api.client.get(path, headers=api.auth(fresh))).status_code == 200

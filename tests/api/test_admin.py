"""The admin API (scope `admin`): sources and their health, pause/resume/poll-now
honoured by a real engine's poll loop running apart from the API (as a worker does),
quarantine listing and re-evaluation, dead letters and redrives, read-back now — each
limited to the key's unit or agency, on both backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from app.auth import Principal, Scope
from app.config import PortalAccount, PortalSettings, Settings, SourceSettings
from app.db import create_session_factory, transaction
from app.demodata import load_demo_catalogue
from app.domain.agency import unit_of_dossier
from app.mockportal.testing import MockPortalHandle
from app.repositories.catalogue import CatalogueAgency, CatalogueRepository
from app.repositories.sources import SourceRepository
from app.sync import admin
from app.sync.engine import Engine
from app.sync.normalise.common import Catalogue, Context, StatusMap
from tests.api.conftest import G05, H26, H29, UNITS, Api, serving
from tests.api.seeding import push_outcomes, received_dossier, source_id, store_dossiers
from tests.conftest import IsolatedDatabase
from tests.simulators.helpers import Control
from tests.sync.polling import expected_from_truth, simulator, source_settings

NOW = datetime.now(UTC)
A53, A54 = "000.00.53.H26", "000.00.54.H26"
NOWHERE = "http://127.0.0.1:9"  # sources no engine polls in these tests


def settings_for(
    database: IsolatedDatabase, sources: list[SourceSettings], portal_url: str = NOWHERE
) -> Settings:
    return Settings(
        database_url=database.url,
        portal=PortalSettings(
            base_url=portal_url,  # type: ignore[arg-type]  # pydantic parses the URL
            accounts=[PortalAccount(unit=u, username=u, password=SecretStr("demo")) for u in UNITS],
        ),
        sources=sources,
    )


def source(
    name: str,
    agencies: list[str],
    *,
    dialect: str = "opencps",
    url: str = NOWHERE,
    interval: float = 2.0,
) -> SourceSettings:
    return source_settings(dialect, url, name=name).model_copy(
        update={"agencies": agencies, "poll_interval_s": interval}
    )


@asynccontextmanager
async def admin_api(
    database: IsolatedDatabase, sources: list[SourceSettings], portal_url: str = NOWHERE
) -> AsyncIterator[Api]:
    async with serving(database, settings_for(database, sources, portal_url)) as api:
        yield api


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)  # well under the keys' rate limit
    raise AssertionError("not reached in time")


async def sources_of(api: Api, key: str) -> dict[str, dict[str, Any]]:
    answer = await api.client.get("/api/v1/admin/sources", headers=api.auth(key))
    assert answer.status_code == 200, answer.text
    return {s["name"]: s for s in answer.json()}


# --- sources: reach and health ---------------------------------------------------------------

SCOPED = [
    source("h26-opencps", [H26]),
    source("h26-53-igate", [A53], dialect="igate"),
    source("shared-dvclt", [H26, H29], dialect="dvclt"),
    source("h29-igate", [H29], dialect="igate"),
]


async def test_sources_are_listed_within_the_keys_reach_with_their_health(
    migrated_database: IsolatedDatabase,
) -> None:
    async with admin_api(migrated_database, SCOPED) as api:
        async with transaction(api.sessions) as session:
            sources = SourceRepository(session)
            row = await sources.ensure("h26-opencps", "opencps", NOW)
            await sources.record_poll(row.id, NOW - timedelta(minutes=5))
            await sources.record_poll(row.id, NOW - timedelta(minutes=2), error="timeout")
            await sources.record_poll(row.id, NOW - timedelta(minutes=1), error="HTTP 503")
            await sources.acquire_poll_lease(row.id, "worker-a", NOW, timedelta(seconds=30))

        unit = await sources_of(api, await api.key(H26, ["admin"]))
        assert set(unit) == {"h26-opencps", "h26-53-igate", "shared-dvclt", f"push:{H26}"}
        assert {n for n, s in unit.items() if s["controllable"]} == {
            "h26-opencps",
            "h26-53-igate",
            f"push:{H26}",
        }
        health = unit["h26-opencps"]
        assert (health["dialect"], health["agencies"], health["paused"]) == (
            "opencps",
            [H26],
            False,
        )
        assert health["consecutive_failures"] == 2 and health["last_error"] == "HTTP 503"
        assert health["last_success_at"] is not None and health["lease_owner"] == "worker-a"
        assert datetime.fromisoformat(health["last_poll_at"]) > datetime.fromisoformat(
            health["last_success_at"]
        )
        never = unit["h26-53-igate"]  # no process has polled it yet
        assert (never["last_poll_at"], never["lease_owner"], never["paused"]) == (None, None, False)
        assert unit[f"push:{H26}"]["poll_interval_s"] is None

        a53 = await sources_of(api, await api.key(H26, ["admin"], agency=A53))
        assert set(a53) == {"h26-opencps", "h26-53-igate", "shared-dvclt", f"push:{H26}"}
        assert {n for n, s in a53.items() if s["controllable"]} == {"h26-53-igate"}
        a54 = await sources_of(api, await api.key(H26, ["admin"], agency=A54))
        assert set(a54) == {"h26-opencps", "shared-dvclt", f"push:{H26}"}
        h29 = await sources_of(api, await api.key(H29, ["admin"]))
        assert set(h29) == {"shared-dvclt", "h29-igate", f"push:{H29}"}


async def _post(api: Api, key: str, path: str, body: Any = None) -> Any:
    return await api.client.post(f"/api/v1/admin{path}", headers=api.auth(key), json=body)


async def test_pause_resume_and_poll_now_are_limited_to_what_the_key_controls(
    migrated_database: IsolatedDatabase,
) -> None:
    async with admin_api(migrated_database, SCOPED) as api:
        h26 = await api.key(H26, ["admin"])
        paused = await _post(api, h26, "/sources/h26-opencps/pause")
        assert paused.status_code == 200 and paused.json()["paused"] is True
        refused = await _post(api, h26, "/sources/h26-opencps/poll")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
        resumed = (await _post(api, h26, "/sources/h26-opencps/resume")).json()
        assert resumed["paused"] is False
        assert resumed["poll_requested_at"] is not None  # catches up at once
        asked = await _post(api, h26, "/sources/h26-53-igate/poll")
        assert asked.status_code == 202 and asked.json()["poll_requested_at"] is not None

        # It also serves H29: pausing it would stop another unit's dossiers.
        shared = await _post(api, h26, "/sources/shared-dvclt/pause")
        assert shared.status_code == 403 and shared.json()["error"]["code"] == "forbidden"
        assert (await _post(api, h26, "/sources/shared-dvclt/poll")).status_code == 202
        for name in ("h29-igate", "no-such-source"):
            missing = await _post(api, h26, f"/sources/{name}/pause")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert (await _post(api, h26, "/sources/h29-igate/poll")).status_code == 404

        a53 = await api.key(H26, ["admin"], agency=A53)
        assert (await _post(api, a53, "/sources/h26-53-igate/pause")).status_code == 200
        assert (await _post(api, a53, "/sources/h26-opencps/pause")).status_code == 403
        assert (await _post(api, a53, f"/sources/push:{H26}/pause")).status_code == 403

        # The unit's push source: pausable by the unit, never polled.
        push = await _post(api, h26, f"/sources/push:{H26}/pause")
        assert push.status_code == 200 and push.json()["paused"] is True
        assert (await _post(api, h26, f"/sources/push:{H26}/poll")).status_code == 409
        assert (await _post(api, h26, f"/sources/push:{H29}/pause")).status_code == 404
        listed = await sources_of(api, h26)
        assert listed[f"push:{H26}"]["paused"] and listed["h26-53-igate"]["paused"]
        assert not listed["h26-opencps"]["paused"]


@asynccontextmanager
async def worker(settings: Settings, api: Api) -> AsyncIterator[Engine]:
    """An engine polling on the API's database but not in the API's process state: the
    API reaches it only through the database, as it reaches a `dossier-sync worker`."""
    engine = Engine(settings, api.sessions, owner="worker-1", pushers=False, reconciler=False)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        yield engine
    finally:
        stop.set()
        await task
        await engine.aclose()


@pytest.fixture
def opencps_h26() -> Iterator[tuple[str, Control]]:
    with simulator("opencps", dossiers=12, seed=5, units=(H26,)) as (running, control):
        yield running.url, control


def _up_to_date(truth: dict[str, Any], keys: list[Any]) -> Callable[[Api, str], Awaitable[bool]]:
    """Whether every dossier changed at the source is stored in its changed state."""
    entries = {d["key"]: d for d in truth["dossiers"]}

    async def check(api: Api, reader: str) -> bool:
        for key in keys:
            entry = entries[key]
            answer = await api.client.get(
                f"/api/v1/dossiers/{entry['ma_ho_so']}", headers=api.auth(reader)
            )
            if answer.status_code != 200:
                return False
            if answer.json()["dossier"]["TrangThaiHoSo"] != entry["expected"]["TrangThaiHoSo"]:
                return False
        return True

    return check


async def test_poll_now_is_honoured_by_the_engine_polling_the_source(
    migrated_database: IsolatedDatabase,
    mock_portal: MockPortalHandle,
    opencps_h26: tuple[str, Control],
) -> None:
    url, control = opencps_h26
    # An hour between polls: any poll after the first is the one asked for.
    sources = [source("h26-opencps", [H26], url=url, interval=3600)]
    async with admin_api(migrated_database, sources, mock_portal.url) as api:
        key, reader = await api.key(H26, ["admin"]), await api.key(H26, ["read"])

        async def polled_once() -> bool:
            return (await sources_of(api, key))["h26-opencps"]["last_success_at"] is not None

        async with worker(api.settings, api):
            await until(polled_once)
            first = (await sources_of(api, key))["h26-opencps"]
            assert first["lease_owner"] == "worker-1"
            changed = control.mutate(4)
            is_up_to_date = _up_to_date(control.truth(), changed)
            await asyncio.sleep(1.5)  # longer than the engine's check for requests
            assert (await sources_of(api, key))["h26-opencps"]["last_poll_at"] == first[
                "last_poll_at"
            ]
            assert not await is_up_to_date(api, reader)

            asked = await _post(api, key, "/sources/h26-opencps/poll")
            assert asked.status_code == 202

            async def polled_again() -> bool:
                now = (await sources_of(api, key))["h26-opencps"]
                return bool(now["last_poll_at"] != first["last_poll_at"])

            await until(polled_again)
            await until(lambda: is_up_to_date(api, reader))
            assert (await sources_of(api, key))["h26-opencps"]["poll_requested_at"] is None


async def test_pause_and_resume_are_honoured_by_the_engines_poll_loop(
    migrated_database: IsolatedDatabase,
    mock_portal: MockPortalHandle,
    opencps_h26: tuple[str, Control],
) -> None:
    url, control = opencps_h26
    sources = [source("h26-opencps", [H26], url=url, interval=0.2)]
    async with admin_api(migrated_database, sources, mock_portal.url) as api:
        key, reader = await api.key(H26, ["admin"]), await api.key(H26, ["read"])

        async def polled() -> bool:
            return (await sources_of(api, key))["h26-opencps"]["last_success_at"] is not None

        async with worker(api.settings, api):
            await until(polled)
            assert (await _post(api, key, "/sources/h26-opencps/pause")).json()["paused"]
            await asyncio.sleep(0.5)  # a poll that had already started finishes
            last = (await sources_of(api, key))["h26-opencps"]["last_poll_at"]
            changed = control.mutate(4)
            is_up_to_date = _up_to_date(control.truth(), changed)
            await asyncio.sleep(1.5)  # seven poll intervals: none of them polls
            assert (await sources_of(api, key))["h26-opencps"]["last_poll_at"] == last
            assert not await is_up_to_date(api, reader)

            resumed = await _post(api, key, "/sources/h26-opencps/resume")
            assert resumed.status_code == 200 and resumed.json()["paused"] is False
            await until(lambda: is_up_to_date(api, reader))
            assert (await sources_of(api, key))["h26-opencps"]["last_poll_at"] != last


# --- quarantine --------------------------------------------------------------------------------


async def _catalogue(api: Api, without: Collection[str] = ()) -> Catalogue:
    """The portal's demo catalogue as a refresh stores it, less the procedures named."""
    demo = load_demo_catalogue()
    procedures = [p for p in demo["procedures"] if p["MaTTHC"] not in without]
    async with transaction(api.sessions) as session:
        repository = CatalogueRepository(session)
        await repository.replace_procedures(procedures, NOW)
        await repository.replace_agencies(
            [CatalogueAgency(a["MaCoQuan"], a["TenCoQuan"], a["Cap"]) for a in demo["agencies"]],
            NOW,
        )
    return Catalogue(
        {p["MaTTHC"]: p for p in demo["procedures"]},
        {a["MaCoQuan"]: a["TenCoQuan"] for a in demo["agencies"]},
    )


async def _quarantine(api: Api, key: str, **params: Any) -> Any:
    return await api.client.get("/api/v1/admin/quarantine", params=params, headers=api.auth(key))


async def test_quarantine_is_listed_per_unit_and_re_evaluated_on_request(
    migrated_database: IsolatedDatabase,
) -> None:
    with simulator("opencps", dossiers=30, seed=11, units=(H26, H29)) as (running, control):
        shared = source("shared-opencps", [H26, H29], url=running.url)
        h29_only = source("h29-igate", [H29], dialect="igate")
        async with admin_api(migrated_database, [shared, h29_only]) as api:
            # The portal's catalogue lacks two procedures that H26 dossiers use and one
            # that an H29 dossier uses: those dossiers are quarantined (unknown_procedure).
            full = await _catalogue(api)
            context = Context(StatusMap("opencps"), full, (H26, H29))
            expected = {
                e["ma_ho_so"]: expected_from_truth("opencps", e, context).dossier
                for e in control.truth()["dossiers"]
            }
            procedure_of = {c: d.MaTTHC for c, d in expected.items() if d is not None}
            h26_codes = {c for c in procedure_of if unit_of_dossier(c) == H26}
            h29_codes = set(procedure_of) - h26_codes
            used_by_h26 = {procedure_of[c] for c in h26_codes}
            used_by_h29 = {procedure_of[c] for c in h29_codes}
            missing = set(sorted(used_by_h26 - used_by_h29)[:2])
            missing |= set(sorted(used_by_h29 - used_by_h26)[:1])
            refused = {c for c, p in procedure_of.items() if p in missing}
            refused_h26, refused_h29 = refused & h26_codes, refused & h29_codes
            assert refused_h26 and refused_h29

            await _catalogue(api, without=missing)
            engine = Engine(api.settings, api.sessions, owner="worker-1")
            try:
                [poller] = [p for p in engine.pollers if p.settings.name == "shared-opencps"]
                assert (await poller.poll_once()).quarantined == len(refused)

                h26 = await api.key(H26, ["admin"])
                page = (await _quarantine(api, h26)).json()
                assert page["total"] == len(refused_h26)
                assert {i["MaHoSo"] for i in page["items"]} == refused_h26
                assert {i["reason_code"] for i in page["items"]} == {"unknown_procedure"}
                assert {i["source"] for i in page["items"]} == {"shared-opencps"}
                assert all(i["unit"] == H26 and i["errors"] for i in page["items"])
                h29 = await api.key(H29, ["admin"])
                assert {i["MaHoSo"] for i in (await _quarantine(api, h29)).json()["items"]} == (
                    refused_h29
                )
                assert (await _quarantine(api, h26, reason="unmapped_status")).json()["total"] == 0
                one = (await _quarantine(api, h26, source="shared-opencps", limit=1, page=2)).json()
                assert (one["total"], one["page"], one["limit"], len(one["items"])) == (
                    len(refused_h26),
                    2,
                    1,
                    1 if len(refused_h26) > 1 else 0,
                )
                assert (await _quarantine(api, h26, source="h29-igate")).status_code == 403
                assert (await _quarantine(api, h26, source="nope")).status_code == 404
                assert (await _quarantine(api, h26, limit=0)).status_code == 422
                agency = next(iter(refused_h26)).split("-")[0]
                by_agency = (
                    await _quarantine(api, await api.key(H26, ["admin"], agency=agency))
                ).json()
                assert {i["MaHoSo"] for i in by_agency["items"]} == {
                    c for c in refused_h26 if c.startswith(agency)
                }

                # The catalogue gains the procedures; polling alone does not look again
                # at records already read (the cursor is past them) …
                await _catalogue(api)
                await poller.poll_once()
                assert (await _quarantine(api, h26)).json()["total"] == len(refused_h26)
                # … a retry makes the next poll re-evaluate the source's quarantine.
                retry = await _post(api, h26, "/quarantine/retry", {"source": "shared-opencps"})
                assert retry.status_code == 202, retry.text
                assert retry.json() == {"scheduled": ["shared-opencps"], "waiting": []}
                listed = (await sources_of(api, h26))["shared-opencps"]
                assert listed["poll_requested_at"] is not None
                report = await poller.poll_once()
                assert report.resolved == len(refused)
                assert (await _quarantine(api, h26)).json()["total"] == 0
                reader = await api.key(H26, ["read"])
                for ma_ho_so in refused_h26:
                    found = await api.client.get(
                        f"/api/v1/dossiers/{ma_ho_so}", headers=api.auth(reader)
                    )
                    assert found.json()["state"] == "pending"
                    assert found.json()["dossier"]["MaTTHC"] == procedure_of[ma_ho_so]
            finally:
                await engine.aclose()

            # Every source of the key by default; a paused one waits for its resume.
            async with transaction(api.sessions) as session:
                sources = SourceRepository(session)
                row = await sources.get_by_name("shared-opencps")
                assert row is not None
                await sources.set_paused(row.id, True)
            assert (await _post(api, h26, "/quarantine/retry")).json() == {
                "scheduled": [],
                "waiting": ["shared-opencps"],
            }
            pushed = await _post(api, h26, "/quarantine/retry", {"source": f"push:{H26}"})
            assert pushed.status_code == 409
            assert (
                await _post(api, h26, "/quarantine/retry", {"source": "h29-igate"})
            ).status_code == 403


# --- dead letters ------------------------------------------------------------------------------

DAY1 = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)  # 09:00 in Hà Nội
DAY2 = datetime(2026, 1, 11, 2, 0, tzinfo=UTC)


def _code(agency: str, n: int) -> str:
    return f"{agency}-240125-{n:05d}"


LETTERS = {  # dossier → (given up on, error code)
    _code(A53, 1): (DAY1, -5),
    _code(A53, 2): (DAY2, -5),
    _code(A54, 3): (DAY2, -6),
    _code("000.00.53.H29", 4): (DAY1, -5),
}


async def _dead_letters(api: Api) -> None:
    source = await source_id(api.sessions, "h26-opencps", NOW)
    await store_dossiers(
        api.sessions, source, [received_dossier(c, "20240125083000") for c in LETTERS], DAY1
    )
    for at, error_code in {(at, code) for at, code in LETTERS.values()}:
        chosen: Any = {c: "dead" for c, v in LETTERS.items() if v == (at, error_code)}
        await push_outcomes(api.sessions, chosen, at, error_code=error_code)


async def _letters(api: Api, key: str, **params: Any) -> Any:
    return await api.client.get("/api/v1/admin/dead-letters", params=params, headers=api.auth(key))


def _codes(answer: Any) -> set[str]:
    assert answer.status_code == 200, answer.text
    return {item["MaHoSo"] for item in answer.json()["items"]}


async def test_dead_letters_are_listed_within_the_key(api: Api) -> None:
    await _dead_letters(api)
    h26 = await api.key(H26, ["admin"])
    everything = await _letters(api, h26)
    assert _codes(everything) == {_code(A53, 1), _code(A53, 2), _code(A54, 3)}
    assert everything.json()["total"] == 3
    item = next(i for i in everything.json()["items"] if i["MaHoSo"] == _code(A54, 3))
    assert (item["unit"], item["agency"], item["error_code"], item["service"]) == (
        H26,
        A54,
        -6,
        "DongBoHoSoMC",
    )
    assert _codes(await _letters(api, h26, error_code=-5)) == {_code(A53, 1), _code(A53, 2)}
    assert _codes(await _letters(api, h26, agency=A54)) == {_code(A54, 3)}
    assert _codes(await _letters(api, h26, unit=H26, error_code=-6)) == {_code(A54, 3)}
    # Local midnight of 11 January; a zone given explicitly is honoured too.
    assert _codes(await _letters(api, h26, since="2026-01-11T00:00:00")) == {
        _code(A53, 2),
        _code(A54, 3),
    }
    assert _codes(await _letters(api, h26, until="2026-01-11T08:59:59+07:00")) == {_code(A53, 1)}
    paged = (await _letters(api, h26, limit=2, page=2)).json()
    assert (paged["total"], len(paged["items"])) == (3, 1)

    a53 = await api.key(H26, ["admin"], agency=A53)
    assert _codes(await _letters(api, a53)) == {_code(A53, 1), _code(A53, 2)}
    assert (await _letters(api, a53, agency=A54)).status_code == 403
    assert _codes(await _letters(api, await api.key(H29, ["admin"]))) == {_code("000.00.53.H29", 4)}
    for params in ({"unit": H29}, {"agency": "000.00.53.H29"}, {"unit": G05}):
        refused = await _letters(api, h26, **params)
        assert refused.status_code == 403, params
        assert refused.json()["error"]["code"] == "forbidden"


async def test_redrives_are_limited_to_the_key_and_cross_unit_ones_refused(api: Api) -> None:
    await _dead_letters(api)
    h26, reader = await api.key(H26, ["admin"]), await api.key(H26, ["read"])
    for body in ({"unit": H29}, {"agency": "000.00.53.H29"}, {"unit": H29, "error_code": -5}):
        refused = await _post(api, h26, "/dead-letters/redrive", body)
        assert refused.status_code == 403, body
    unfiltered = await _post(api, h26, "/dead-letters/redrive", {})
    assert unfiltered.status_code == 422
    assert [d["field"] for d in unfiltered.json()["error"]["details"]] == ["all"]
    assert (await _post(api, h26, "/dead-letters/redrive", {"nope": 1})).status_code == 422

    # -5 is H29's error too: only the key's unit is redriven.
    answer = await _post(api, h26, "/dead-letters/redrive", {"error_code": -5})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"redriven": 2, "dossiers": sorted([_code(A53, 1), _code(A53, 2)])}
    assert _codes(await _letters(api, h26)) == {_code(A54, 3)}
    assert _codes(await _letters(api, await api.key(H29, ["admin"]))) == {_code("000.00.53.H29", 4)}
    state = await api.client.get(f"/api/v1/dossiers/{_code(A53, 1)}", headers=api.auth(reader))
    body = state.json()
    assert (body["state"], body["attempts"], body["dead_letter"]) == ("pending", 0, None)

    a53 = await api.key(H26, ["admin"], agency=A53)
    assert (await _post(api, a53, "/dead-letters/redrive", {"all": True})).json()["redriven"] == 0
    everything = await _post(api, h26, "/dead-letters/redrive", {"all": True})
    assert everything.json() == {"redriven": 1, "dossiers": [_code(A54, 3)]}


# --- read-back ---------------------------------------------------------------------------------


async def test_read_back_now_covers_the_keys_unit_only(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    with simulator("opencps", dossiers=12, seed=3, units=(H26, H29)) as (running, control):
        shared = source("shared-opencps", [H26, H29], url=running.url)
        async with admin_api(migrated_database, [shared], mock_portal.url) as api:
            engine = Engine(api.settings, create_session_factory(migrated_database.engine))
            try:
                assert await engine.refresh_catalogue()
                await engine.pollers[0].poll_once()
                assert engine.pusher is not None
                while (await engine.pusher.push_once()).claimed:
                    pass
                codes: dict[str, list[str]] = {H26: [], H29: []}
                for entry in control.truth()["dossiers"]:
                    codes[unit_of_dossier(entry["ma_ho_so"])].append(entry["ma_ho_so"])
                assert codes[H26] and codes[H29]
                # Someone deleted one of H26's dossiers at the portal after acknowledging it.
                lost = sorted(codes[H26])[0]
                mock_portal.control.delete_dossier(lost)

                h26 = await api.key(H26, ["admin"])
                answer = await _post(api, h26, "/reconcile")
                assert answer.status_code == 200, answer.text
                assert answer.json() == {
                    "unit": H26,
                    "checked": len(codes[H26]),
                    "confirmed": len(codes[H26]) - 1,
                    "requeued": 1,
                    "conflicts": 0,
                    "errors": 0,
                }
                states = await _states(api, H26, codes[H26])
                assert states == {c: "pending" if c == lost else "synced" for c in codes[H26]}
                assert set((await _states(api, H29, codes[H29])).values()) == {"pending"}

                agency = await api.key(H29, ["admin"], agency="000.00.53.H29")
                assert (await _post(api, agency, "/reconcile")).status_code == 403
                no_account = await api.key("000.00.00.H01", ["admin"])
                assert (await _post(api, no_account, "/reconcile")).status_code == 409

                # In `serve` the engine of the process reads back, with its portal client.
                caller = Principal(0, H29, None, frozenset({Scope.ADMIN}))
                report = await admin.read_back(api.sessions, api.settings, engine, caller)
                assert (report.checked, report.confirmed) == (len(codes[H29]), len(codes[H29]))
                assert set((await _states(api, H29, codes[H29])).values()) == {"synced"}
            finally:
                await engine.aclose()


async def _states(api: Api, unit: str, codes: list[str]) -> dict[str, str]:
    reader = await api.key(unit, ["read"])
    out = {}
    for ma_ho_so in codes:
        answer = await api.client.get(f"/api/v1/dossiers/{ma_ho_so}", headers=api.auth(reader))
        out[ma_ho_so] = answer.json()["state"]
    return out


# --- authentication ----------------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/v1/admin/sources", None),
    ("POST", "/api/v1/admin/sources/h26-opencps/pause", None),
    ("POST", "/api/v1/admin/sources/h26-opencps/resume", None),
    ("POST", "/api/v1/admin/sources/h26-opencps/poll", None),
    ("GET", "/api/v1/admin/quarantine", None),
    ("POST", "/api/v1/admin/quarantine/retry", {}),
    ("GET", "/api/v1/admin/dead-letters", None),
    ("POST", "/api/v1/admin/dead-letters/redrive", {"all": True}),
    ("POST", "/api/v1/admin/reconcile", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_admin_routes_need_a_known_key_with_the_admin_scope(
    migrated_database: IsolatedDatabase, method: str, path: str, body: Any
) -> None:
    async with admin_api(migrated_database, SCOPED) as api:
        missing = await api.client.request(method, path, json=body)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
        unknown = await api.client.request(method, path, json=body, headers=api.auth("dsk_unknown"))
        assert unknown.status_code == 401
        for scopes in (["read"], ["ingest"], ["read", "ingest"]):
            key = await api.key(H26, scopes)
            refused = await api.client.request(method, path, json=body, headers=api.auth(key))
            assert refused.status_code == 403, scopes
            assert refused.json()["error"]["code"] == "forbidden"


async def test_the_api_is_described_in_openapi(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert "/api/v1/dossiers/{MaHoSo}" in paths
    assert paths["/api/v1/units/{code}/sync"]["get"]["description"]
    for method, path, _ in ROUTES:
        operation = paths[path.replace("h26-opencps", "{name}")][method.lower()]
        assert operation["description"], path
        assert "admin" in operation["tags"]

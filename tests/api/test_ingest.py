"""Push mode: ``POST /api/v1/dossiers`` and ``POST /api/v1/progress``, through the real
app on both backends — per-item answers, the store and the quarantine behind them, the
caller's reach, and the real pusher taking what was ingested to the mock portal."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.api.app import create_app
from app.api.ingest import MAX_BODY_BYTES
from app.auth import Principal, Scope
from app.config import Settings, SyncSettings
from app.db import create_session_factory, transaction
from app.mockportal.testing import MockPortalHandle
from app.models import DossierRow, ProgressRow, QuarantineEntry, Source, SyncState
from app.repositories.sources import SourceRepository
from app.sync.ingest import ingest_dossiers
from tests.api.conftest import G05, H26, H29, Api
from tests.conftest import IsolatedDatabase
from tests.domain.factories import ABSENT
from tests.e2e.helpers import (
    assert_all_synced,
    assert_portal_holds,
    e2e_settings,
    running,
    sent_items,
)
from tests.factories import PERSONAL, dossier_json, make_progress
from tests.sync.polling import seed_catalogue

DOSSIERS = "/api/v1/dossiers"
PROGRESS = "/api/v1/progress"
A = "000.00.53.H26-240125-00001"
B = "000.00.53.H26-240125-00002"
C = "000.00.54.H26-240125-00003"  # another agency of the same unit
FOREIGN = "000.00.07.H29-240125-00001"  # unit H29


def step(code: str, status: str = "4", hour: int = 1, **overrides: Any) -> dict[str, Any]:
    """A progress record as a client sends it."""
    at = datetime(2024, 1, 25, 1 + hour, 30, tzinfo=UTC)  # after NgayTiepNhan (08:30 +07)
    record = make_progress(code, status, at, **overrides).to_portal()
    return dict(record)


async def push(api: Api, key: str, dossiers: list[Any]) -> dict[str, Any]:
    response = await api.client.post(DOSSIERS, json={"dossiers": dossiers}, headers=api.auth(key))
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def push_steps(api: Api, key: str, records: list[Any]) -> dict[str, Any]:
    response = await api.client.post(PROGRESS, json={"records": records}, headers=api.auth(key))
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def statuses(answer: dict[str, Any]) -> list[str]:
    return [r["status"] for r in answer["results"]]


def fields(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in result["errors"]]


@dataclass(frozen=True, slots=True)
class Row:
    version: int
    state: dict[str, Any]
    source: str
    source_record_id: str | None
    sync: str
    pending_version: int


async def stored(api: Api) -> dict[str, Row]:
    async with api.sessions() as session:
        rows = await session.execute(
            select(DossierRow, SyncState, Source.name)
            .join(SyncState, SyncState.dossier_id == DossierRow.id)
            .join(Source, Source.id == DossierRow.source_id)
        )
        return {
            d.ma_ho_so: Row(
                d.version, dict(d.state), name, d.source_record_id, s.status, s.pending_version
            )
            for d, s, name in rows.all()
        }


async def quarantine(api: Api) -> list[QuarantineEntry]:
    async with api.sessions() as session:
        return list(await session.scalars(select(QuarantineEntry).order_by(QuarantineEntry.id)))


async def steps_of(api: Api, code: str) -> list[dict[str, Any]]:
    async with api.sessions() as session:
        rows = await session.scalars(
            select(ProgressRow.record)
            .join(DossierRow, DossierRow.id == ProgressRow.dossier_id)
            .where(DossierRow.ma_ho_so == code)
            .order_by(ProgressRow.occurred_at)
        )
        return [dict(r) for r in rows]


# --- dossiers: one answer per item ---------------------------------------------------------


async def test_each_item_is_answered_on_its_own_with_errors_by_field_path(api: Api) -> None:
    key = await api.key(H26, ["ingest"])
    answer = await push(
        api,
        key,
        [
            dossier_json(A),
            dossier_json(B, NgayHenTra="20240101000000"),  # before NgayTiepNhan
            42,
            dossier_json(MaHoSo=ABSENT, TrangThaiHoSo="99"),
            dossier_json(C, status="10"),
        ],
    )
    assert (answer["received"], answer["accepted"], answer["unchanged"], answer["rejected"]) == (
        5,
        2,
        0,
        3,
    )
    assert statuses(answer) == ["accepted", "rejected", "rejected", "rejected", "accepted"]
    results = answer["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["MaHoSo"] for r in results] == [A, B, None, None, C]
    assert fields(results[1]) == [("dossiers[1].NgayHenTra", "date_order")]
    assert results[1]["errors"][0]["message"] == "phải ≥ NgayTiepNhan"
    assert fields(results[2]) == [("dossiers[2]", "type")]
    assert ("dossiers[3].MaHoSo", "required") in fields(results[3])
    assert ("dossiers[3].TrangThaiHoSo", "not_allowed") in fields(results[3])
    assert (results[0]["version"], results[4]["version"]) == (1, 1)
    assert all(r["errors"] == [] for r in (results[0], results[4]))

    rows = await stored(api)
    assert set(rows) == {A, C}  # what was refused is not stored, so never pushed
    assert rows[A].state == dossier_json(A)
    assert rows[A].source == f"push:{H26}"
    assert (rows[A].source_record_id or "").startswith("key:")  # which key wrote it
    assert (rows[A].sync, rows[A].pending_version) == ("pending", 1)
    async with api.sessions() as session:
        source = await SourceRepository(session).get_by_name(f"push:{H26}")
    assert source is not None and source.dialect == "push"
    assert source.last_success_at is not None


async def test_identical_content_is_unchanged_and_a_change_is_a_new_version(api: Api) -> None:
    key = await api.key(H26, ["ingest"])
    first = await push(api, key, [dossier_json(A), dossier_json(B)])
    assert statuses(first) == ["accepted", "accepted"]
    again = await push(api, key, [dossier_json(A), dossier_json(B)])
    assert statuses(again) == ["unchanged", "unchanged"]
    assert [r["version"] for r in again["results"]] == [1, 1]
    # Absent and null are the same to the portal: still unchanged.
    assert statuses(await push(api, key, [dossier_json(A, Fax=None)])) == ["unchanged"]

    changed = await push(api, key, [dossier_json(A, status="9"), dossier_json(B)])
    assert statuses(changed) == ["accepted", "unchanged"]
    assert changed["results"][0]["version"] == 2
    rows = await stored(api)
    assert (rows[A].version, rows[A].pending_version, rows[A].state["TrangThaiHoSo"]) == (2, 2, "9")
    assert rows[B].version == 1


async def test_a_dossier_twice_in_one_batch_is_answered_in_order_and_the_last_is_stored(
    api: Api,
) -> None:
    key = await api.key(H26, ["ingest"])
    await push(api, key, [dossier_json(A)])
    answer = await push(
        api,
        key,
        [
            dossier_json(A),  # what is stored: unchanged
            dossier_json(A, status="9"),  # newer
            dossier_json(A, status="9"),  # the same again
            dossier_json(A, status="10"),  # newest: stored
        ],
    )
    assert statuses(answer) == ["unchanged", "accepted", "unchanged", "accepted"]
    assert [r["version"] for r in answer["results"]] == [None, None, None, 2]
    rows = await stored(api)
    assert (rows[A].version, rows[A].state["TrangThaiHoSo"]) == (2, "10")


async def test_procedures_are_checked_against_the_portal_catalogue_once_fetched(
    api: Api,
) -> None:
    await seed_catalogue(api.sessions)
    key = await api.key(H26, ["ingest"])
    answer = await push(api, key, [dossier_json(A), dossier_json(B, MaTTHC="9.999999")])
    assert statuses(answer) == ["accepted", "rejected"]
    assert fields(answer["results"][1]) == [("dossiers[1].MaTTHC", "unknown_procedure")]
    [entry] = await quarantine(api)
    assert (entry.reason_code, entry.ma_ho_so) == ("unknown_procedure", B)


# --- nothing is lost: the quarantine -------------------------------------------------------


async def test_a_rejected_dossier_is_quarantined_with_its_reason_until_sent_valid(
    api: Api,
) -> None:
    key = await api.key(H26, ["ingest"])
    broken = dossier_json(B, NgayHenTra="20240101000000")
    await push(api, key, [dossier_json(A), broken])
    [entry] = await quarantine(api)
    assert (entry.kind, entry.record_key, entry.reason_code) == (
        "dossier",
        f"dossier:{B}",
        "invalid",
    )
    assert entry.reason == "NgayHenTra: phải ≥ NgayTiepNhan"
    assert entry.errors == [
        {"path": "NgayHenTra", "code": "date_order", "message": "phải ≥ NgayTiepNhan"}
    ]
    assert entry.raw == broken  # as sent, personal data included (never logged)
    assert (entry.ma_ho_so, entry.unit, entry.agency) == (B, H26, "000.00.53.H26")
    assert entry.resolved_at is None

    await push(api, key, [broken])  # sent again: the same entry, seen twice
    [entry] = await quarantine(api)
    assert (entry.seen_count, entry.resolved_at) == (2, None)
    assert B not in await stored(api)

    fixed = await push(api, key, [dossier_json(B)])
    assert statuses(fixed) == ["accepted"]
    [entry] = await quarantine(api)
    assert entry.resolved_at is not None
    assert B in await stored(api)


async def test_a_broken_record_without_a_code_is_kept_under_the_callers_unit(api: Api) -> None:
    key = await api.key(H26, ["ingest"], agency="000.00.53.H26")
    await push(api, key, [dossier_json(MaHoSo="not-a-code"), 42, 42])
    entries = await quarantine(api)
    assert len(entries) == 2  # the same broken item twice is one entry, seen twice
    by_raw = {json.dumps(e.raw, sort_keys=True): e for e in entries}
    wrapped = by_raw[json.dumps({"item": 42})]
    assert (wrapped.seen_count, wrapped.ma_ho_so, wrapped.unit, wrapped.agency) == (
        2,
        None,
        H26,
        "000.00.53.H26",
    )
    assert all(e.record_key.startswith("dossier:sha256:") for e in entries)


async def test_values_json_allows_but_the_databases_refuse_fail_only_their_item(
    api: Api,
) -> None:
    key = await api.key(H26, ["ingest"])
    nul = dossier_json(B, ChuHoSo="Nguyễn\u0000Văn An")
    # A lone surrogate and NaN: valid JSON text for Python's parser, not for PostgreSQL.
    body = (
        '{"dossiers": ['
        + json.dumps(dossier_json(A))
        + ","
        + json.dumps(nul)
        + ","
        + json.dumps(dossier_json("000.00.53.H26-240125-00004", ChuHoSo="\ud800"))
        + ","
        + json.dumps(dossier_json("000.00.53.H26-240125-00005")).replace(
            '"KenhThucHien": 2', '"KenhThucHien": NaN'
        )
        + "]}"
    )
    response = await api.client.post(
        DOSSIERS,
        content=body.encode(),
        headers=api.auth(key) | {"content-type": "application/json"},
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    assert statuses(answer) == ["accepted", "rejected", "rejected", "rejected"]
    assert fields(answer["results"][1]) == [("dossiers[1].ChuHoSo", "invalid")]
    assert [e["field"] for e in answer["results"][2]["errors"]] == ["dossiers[2].ChuHoSo"]
    assert [e["field"] for e in answer["results"][3]["errors"]] == ["dossiers[3].KenhThucHien"]
    entries = await quarantine(api)
    assert len(entries) == 3
    raws = {e.ma_ho_so: e.raw for e in entries}
    assert raws[B]["ChuHoSo"] == "Nguyễn\ufffdVăn An"
    assert raws["000.00.53.H26-240125-00004"]["ChuHoSo"] == "\ufffd"
    assert raws["000.00.53.H26-240125-00005"]["KenhThucHien"] == "nan"
    assert set(await stored(api)) == {A}


# --- the caller's reach ----------------------------------------------------------------------


async def test_items_outside_the_keys_unit_are_refused_without_telling_whether_they_exist(
    api: Api,
) -> None:
    h29 = await api.key(H29, ["ingest"])
    await push(api, h29, [dossier_json(FOREIGN)])  # exists, in H29
    missing = "000.00.07.H29-240125-00999"  # does not exist
    h26 = await api.key(H26, ["ingest"])
    answer = await push(
        api, h26, [dossier_json(FOREIGN, status="9"), dossier_json(A), dossier_json(missing)]
    )
    assert statuses(answer) == ["rejected", "accepted", "rejected"]
    existing, _, absent = answer["results"]
    assert fields(existing) == [("dossiers[0].MaHoSo", "out_of_reach")]
    assert existing["errors"][0]["message"] == absent["errors"][0]["message"]
    assert fields(absent) == [("dossiers[2].MaHoSo", "out_of_reach")]

    rows = await stored(api)
    assert (rows[FOREIGN].version, rows[FOREIGN].state["TrangThaiHoSo"]) == (1, "4")
    assert missing not in rows
    # Kept under the caller's unit, not attached to the other unit's dossier.
    foreign = [e for e in await quarantine(api) if e.reason_code == "out_of_reach"]
    assert len(foreign) == 2
    assert {(e.unit, e.ma_ho_so, e.kind) for e in foreign} == {(H26, None, "dossier")}
    assert {e.raw["MaHoSo"] for e in foreign} == {FOREIGN, missing}


async def test_an_agency_key_reaches_only_its_agency(api: Api) -> None:
    key = await api.key(H26, ["ingest"], agency="000.00.53.H26")
    answer = await push(api, key, [dossier_json(A), dossier_json(C)])
    assert statuses(answer) == ["accepted", "rejected"]
    assert fields(answer["results"][1]) == [("dossiers[1].MaHoSo", "out_of_reach")]
    steps = await push_steps(api, key, [step(A), step(C)])
    assert statuses(steps) == ["accepted", "rejected"]
    assert fields(steps["results"][1]) == [("records[1].MaHoSo", "out_of_reach")]


async def test_a_paused_push_source_takes_nothing(api: Api) -> None:
    key = await api.key(H26, ["ingest"])
    await push(api, key, [dossier_json(A)])
    async with transaction(api.sessions) as session:
        sources = SourceRepository(session)
        source = await sources.get_by_name(f"push:{H26}")
        assert source is not None
        await sources.set_paused(source.id, True)
    response = await api.client.post(
        DOSSIERS, json={"dossiers": [dossier_json(B)]}, headers=api.auth(key)
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "source_paused"
    assert response.headers["Retry-After"] == "60"
    assert set(await stored(api)) == {A}


# --- authentication and the envelope -----------------------------------------------------------


@pytest.mark.parametrize(("path", "name"), [(DOSSIERS, "dossiers"), (PROGRESS, "records")])
async def test_keys_are_required_and_need_the_ingest_scope(api: Api, path: str, name: str) -> None:
    body: dict[str, list[Any]] = {name: []}
    missing = await api.client.post(path, json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    unknown = await api.client.post(path, json=body, headers=api.auth("dsk_not-a-key"))
    assert unknown.status_code == 401
    reader = await api.key(H26, ["read", "admin"])
    wrong_scope = await api.client.post(path, json=body, headers=api.auth(reader))
    assert wrong_scope.status_code == 403
    assert wrong_scope.json()["error"]["code"] == "forbidden"
    ingest = await api.key(H26, ["ingest"])
    empty = await api.client.post(path, json=body, headers=api.auth(ingest))
    assert empty.status_code == 202
    assert empty.json() == {
        "received": 0,
        "accepted": 0,
        "unchanged": 0,
        "rejected": 0,
        "results": [],
    }


@pytest.mark.parametrize(("path", "name"), [(DOSSIERS, "dossiers"), (PROGRESS, "records")])
async def test_a_malformed_or_oversized_batch_is_refused_whole_naming_the_field(
    api: Api, path: str, name: str
) -> None:
    key = await api.key(H26, ["ingest"])
    headers = api.auth(key)
    too_many = await api.client.post(path, json={name: [{}] * 501}, headers=headers)
    assert too_many.status_code == 422
    error = too_many.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == [name]
    assert "500" in error["details"][0]["message"]

    misspelt = await api.client.post(path, json={name[:-1]: []}, headers=headers)
    assert misspelt.status_code == 422
    assert {d["field"] for d in misspelt.json()["error"]["details"]} == {name, name[:-1]}
    not_a_list = await api.client.post(path, json={name: {"MaHoSo": A}}, headers=headers)
    assert [d["field"] for d in not_a_list.json()["error"]["details"]] == [name]

    not_json = await api.client.post(
        path, content=b'{"x": ', headers=headers | {"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert [d["field"] for d in not_json.json()["error"]["details"]] == ["body"]

    huge = b'{"' + name.encode() + b'": ["' + b"x" * MAX_BODY_BYTES + b'"]}'
    too_large = await api.client.post(
        path, content=huge, headers=headers | {"content-type": "application/json"}
    )
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "payload_too_large"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(huge), 1 << 20):
            yield huge[start : start + (1 << 20)]

    streamed = await api.client.post(
        path, content=chunked(), headers=headers | {"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    assert await stored(api) == {}
    assert await quarantine(api) == []


# --- progress ------------------------------------------------------------------------------------


async def test_progress_is_stored_once_per_step_and_marks_the_dossier_pending(api: Api) -> None:
    key = await api.key(H26, ["ingest"])
    await push(api, key, [dossier_json(A)])
    records = [step(A, hour=1), step(A, status="9", hour=3), step(A, hour=1)]
    answer = await push_steps(api, key, records)
    assert statuses(answer) == ["accepted", "accepted", "unchanged"]  # the third is the first
    assert [r["MaHoSo"] for r in answer["results"]] == [A, A, A]
    again = await push_steps(api, key, [step(A, hour=1), step(A, hour=1, ChucDanh="Trưởng phòng")])
    # Same dossier, time, status, handler and content: the same step to the portal.
    assert statuses(again) == ["unchanged", "unchanged"]
    assert [s["ThoiDiemXuLy"] for s in await steps_of(api, A)] == [
        records[0]["ThoiDiemXuLy"],
        records[1]["ThoiDiemXuLy"],
    ]
    assert (await stored(api))[A].sync == "pending"


async def test_progress_of_a_dossier_not_stored_is_refused_and_kept_until_sent_again(
    api: Api,
) -> None:
    key = await api.key(H26, ["ingest"])
    early = step(B)
    answer = await push_steps(
        api, key, [early, step(A) | {"ThoiDiemXuLy": "2024-01-25 09:30"}, {"MaHoSo": FOREIGN}]
    )
    assert statuses(answer) == ["rejected", "rejected", "rejected"]
    assert fields(answer["results"][0]) == [("records[0].MaHoSo", "dossier_not_stored")]
    assert fields(answer["results"][1]) == [("records[1].ThoiDiemXuLy", "portal_date")]
    assert fields(answer["results"][2]) == [("records[2].MaHoSo", "out_of_reach")]
    entries = {e.reason_code: e for e in await quarantine(api)}
    assert set(entries) == {"dossier_not_stored", "invalid", "out_of_reach"}
    orphan = entries["dossier_not_stored"]
    assert (orphan.kind, orphan.ma_ho_so, orphan.raw) == ("progress", B, early)
    assert orphan.record_key.startswith(f"progress:{B}:")

    await push(api, key, [dossier_json(B)])
    assert statuses(await push_steps(api, key, [early])) == ["accepted"]
    entries = {e.reason_code: e for e in await quarantine(api)}
    assert entries["dossier_not_stored"].resolved_at is not None
    assert entries["invalid"].resolved_at is None
    assert len(await steps_of(api, B)) == 1


# --- concurrency (row locks: PostgreSQL) ---------------------------------------------------------


@pytest.mark.postgresql_only
async def test_a_call_that_loses_a_race_for_a_new_dossier_is_run_again(
    api: Api, captured_logs: StringIO
) -> None:
    """Another call inserted the same new dossier and has not committed: this call's
    insert waits on it, fails on the unique key once it commits, and is run again —
    answering from what the other call stored instead of failing the batch."""
    key = await api.key(H26, ["ingest"])
    await push(api, key, [dossier_json(C)])  # the push source exists from here on
    other = Principal(key_id=0, unit=H26, agency=None, scopes=frozenset({Scope.INGEST}))
    async with transaction(api.sessions) as session:
        await ingest_dossiers(session, other, [dossier_json(A)], datetime.now(UTC))
        racing = asyncio.create_task(push(api, key, [dossier_json(B), dossier_json(A)]))
        await asyncio.sleep(0.5)
        assert not racing.done(), "the call did not wait for the other transaction"
    answer = await racing
    assert statuses(answer) == ["accepted", "unchanged"]
    assert "ingest retried after a concurrent write" in captured_logs.getvalue()
    rows = await stored(api)
    assert (rows[A].version, rows[B].version) == (1, 1)


# --- personal data -----------------------------------------------------------------------------


async def test_personal_data_never_reaches_the_logs(api: Api, captured_logs: StringIO) -> None:
    key = await api.key(H26, ["ingest"])
    answer = await push(
        api,
        key,
        [
            dossier_json(A),
            dossier_json(B, NgayHenTra="20240101000000"),
            dossier_json(FOREIGN),
            dossier_json(C, SoDienThoai="12"),
        ],
    )
    await push_steps(api, key, [step(A), step("000.00.53.H26-240125-00077")])
    assert statuses(answer) == ["accepted", "rejected", "rejected", "rejected"]
    for value in PERSONAL.values():
        assert value not in json.dumps(answer, ensure_ascii=False)  # no error echoes a value
    text = captured_logs.getvalue()
    assert '"ingest"' in text and '"request"' in text, "nothing was captured: the check is blind"
    for value in (*PERSONAL.values(), "Nguyễn Văn An"):
        assert value not in text


# --- end to end: ingest → pusher → the mock portal ---------------------------------------------


async def test_ingested_records_are_pushed_to_the_portal_like_polled_ones(
    api: Api, migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    await seed_catalogue(api.sessions)
    key = await api.key(H26, ["ingest"])
    g05 = await api.key(G05, ["ingest"])
    minister = "000.00.02.G05-240125-00001"
    ingested = await push(
        api,
        key,
        [
            dossier_json(A),
            dossier_json(B, status="9"),
            dossier_json(C, NgayHenTra="20240101000000"),
        ],
    )
    assert statuses(ingested) == ["accepted", "accepted", "rejected"]
    assert statuses(await push(api, g05, [dossier_json(minister)])) == ["accepted"]
    steps = await push_steps(api, key, [step(B, hour=1), step(B, status="9", hour=2), step(A)])
    assert statuses(steps) == ["accepted"] * 3

    settings = e2e_settings(migrated_database.url, mock_portal.url, [])
    async with running(settings, api.sessions, mock_portal) as harness:
        await harness.push()
        await harness.reconcile()
        held = await harness.stored()
        assert set(held) == {A, B, minister}
        assert_portal_holds(mock_portal.control, held.values())
        assert_all_synced(held)
        # A change pushed later goes the same way: a new version, pushed as an update.
        assert statuses(await push(api, key, [dossier_json(A, status="9")])) == ["accepted"]
        await harness.push()
        await harness.reconcile()
        held = await harness.stored()
        assert held[A].version == 2
        assert_portal_holds(mock_portal.control, held.values())
        assert_all_synced(held)
    assert mock_portal.control.dossier(C) is None
    assert C not in {item.code for item in sent_items(mock_portal.control)}


async def test_a_serving_process_pushes_what_it_ingests_without_being_asked(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    """``serve`` as it runs: the API and the sync engine in one app; the ingest wakes the
    engine's pusher, and read-back confirms."""
    base = e2e_settings(migrated_database.url, mock_portal.url, [])
    settings = Settings.model_validate(
        base.model_dump(mode="python")
        | {"sync": SyncSettings(backoff_initial_s=0.2, backoff_max_s=0.8, reconcile_interval_s=0.3)}
    )
    app = create_app(settings, pipeline=True, stop_timeout_s=5, database=migrated_database.engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            api = Api(client, create_session_factory(migrated_database.engine), settings)
            key = await api.key(H26, ["ingest"])
            assert statuses(await push(api, key, [dossier_json(A)])) == ["accepted"]
            assert statuses(await push_steps(api, key, [step(A)])) == ["accepted"]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                rows = await stored(api)
                if rows[A].sync == "synced":
                    break
                await asyncio.sleep(0.1)
            assert rows[A].sync == "synced", rows[A]
            held = mock_portal.control.dossier(A)
            assert held is not None
            assert [s["ThoiDiemXuLy"] for s in held.pop("QuaTrinhXuLy")] == [
                step(A)["ThoiDiemXuLy"]
            ]
            assert held == dossier_json(A)
    async with api.sessions() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(ProgressRow).where(ProgressRow.acked_at.is_(None))
            )
            == 0
        )


# --- the published interface -----------------------------------------------------------------


def test_openapi_describes_the_batches_the_answers_and_the_errors() -> None:
    spec = create_app(Settings()).openapi()
    schemas = spec["components"]["schemas"]
    for path, batch, item in (
        (DOSSIERS, "DossierBatch", "Dossier"),
        (PROGRESS, "ProgressBatch", "ProgressRecord"),
    ):
        operation = spec["paths"][path]["post"]
        assert operation["description"].strip() and operation["tags"] == ["ingest"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{batch}"}
        [field] = schemas[batch]["properties"].values()
        assert field["maxItems"] == 500
        assert field["items"] == {"$ref": f"#/components/schemas/{item}"}
        assert schemas[batch]["examples"]
        responses = operation["responses"]
        assert set(responses) >= {"202", "401", "403", "413", "422", "429"}
        answer = responses["202"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": "#/components/schemas/IngestAnswer"}
        for status in ("401", "403", "413", "422"):
            error = responses[status]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}
    assert schemas["IngestAnswer"]["examples"]
    assert set(schemas["IngestItemResult"]["properties"]["status"]["enum"]) == {
        "accepted",
        "unchanged",
        "rejected",
    }

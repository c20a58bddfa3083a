"""``serve`` and ``worker`` as real processes against the mock portal and a simulator
(both in this process), on a database migrated with ``dossier-sync db upgrade``."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from app.db import create_engine, create_session_factory
from app.domain.codes import ErrorCode
from app.mockportal.testing import MockPortalHandle
from app.models import ProgressRow, Source, SyncState
from app.servers import free_port
from tests.service.conftest import Processes, run_cli
from tests.service.exposition import database_gauges
from tests.service.helpers import eventually, settings_values, write_config
from tests.simulators.helpers import Control
from tests.sync.polling import UNITS, simulator

SIMULATOR = "sim-igate"
STOP_WITHIN_S = 10.0


def expected_at_portal(control: Control) -> dict[str, str]:
    """MaHoSo → TrangThaiHoSo of every valid dossier of the simulator."""
    return {
        d["ma_ho_so"]: d["expected"]["TrangThaiHoSo"]
        for d in control.truth()["dossiers"]
        if d["expected"]["valid"]
    }


def personal_data(control: Control) -> set[str]:
    """Names, identity numbers, phones and e-mails of the simulated applicants."""
    values: set[str] = set()
    for dossier in control.truth()["dossiers"]:
        applicant = (dossier["record"].get("applicant") or {}).get("data") or {}
        for key in ("fullname", "identityNumber", "phoneNumber", "email"):
            if applicant.get(key):
                values.add(str(applicant[key]))
    return values


def at_portal(mock: MockPortalHandle) -> dict[str, str]:
    return {d["MaHoSo"]: d["TrangThaiHoSo"] for d in mock.control.dossiers()}


def terminate(process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> float:
    """Send ``sig`` and wait for the exit; returns how long it took."""
    started = time.monotonic()
    process.send_signal(sig)
    process.wait(timeout=STOP_WITHIN_S * 3)
    return time.monotonic() - started


async def get(url: str) -> httpx.Response | None:
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            return await client.get(url)
        except httpx.TransportError:
            return None


async def get_status(url: str) -> int | None:
    answer = await get(url)
    return None if answer is None else answer.status_code


async def ready(url: str) -> bool:
    return await get_status(url) == 200


async def get_text(url: str) -> str:
    answer = await get(url)
    assert answer is not None, url
    assert answer.status_code == 200, answer.text
    return answer.text


@asynccontextmanager
async def database(url: str) -> AsyncIterator[Any]:
    engine = create_engine(url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def sync_states(url: str) -> dict[str, int]:
    """sync_state rows per status."""
    async with database(url) as sessions, sessions() as session:
        rows = await session.execute(
            select(SyncState.status, func.count()).group_by(SyncState.status)
        )
        return {status: int(count) for status, count in rows.all()}


async def assert_leases_released(url: str) -> None:
    async with database(url) as sessions, sessions() as session:
        held = await session.scalar(
            select(func.count()).select_from(SyncState).where(SyncState.lease_owner.is_not(None))
        )
        sources = (await session.scalars(select(Source))).all()
    assert held == 0
    assert sources
    assert all(s.lease_owner is None for s in sources), [s.lease_owner for s in sources]


def config_for(
    tmp_path: Path,
    database_url: str,
    mock: MockPortalHandle,
    simulator_url: str,
    **options: Any,
) -> str:
    values = settings_values(
        database_url=database_url,
        portal_url=mock.url,
        sources=[(SIMULATOR, "igate", simulator_url)],
        **options,
    )
    path = write_config(tmp_path / "service.toml", values)
    upgraded = run_cli("db", "upgrade", "--config", str(path))
    assert upgraded.returncode == 0, upgraded.stderr
    return str(path)


async def test_serve_syncs_answers_and_stops_on_sigterm(
    tmp_path: Path, mock_portal: MockPortalHandle, processes: Processes
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with simulator("igate", dossiers=30) as (sim, control):
        config = config_for(tmp_path, url, mock_portal, sim.url, api_port=port)
        expected = expected_at_portal(control)
        assert len(expected) == 30
        process = processes.start("serve", "serve", "--config", config)
        await eventually(lambda: get_status(f"{base}/healthz"), "serve to answer")
        assert '"status":"ready"' in await get_text(f"{base}/readyz")
        await eventually(lambda: at_portal(mock_portal) == expected, "dossiers at the portal")

        async def all_synced() -> bool:
            gauges = database_gauges(await get_text(f"{base}/metrics"))
            synced = sum(
                v for (_, state), v in gauges["dossier_sync_dossiers"].items() if state == "synced"
            )
            return synced == len(expected)

        await eventually(all_synced, "/metrics to count every dossier synced", within=20)
        took = terminate(process)
        assert process.returncode == 0, processes.output()
        assert took < STOP_WITHIN_S
        secrets = personal_data(control)
    await assert_leases_released(url)
    output = processes.output()
    assert "engine stopped" in output
    assert "heap settled" in output  # its start-up heap is out of the collector's way
    leaked = [value for value in secrets if value in output]
    assert not leaked, "personal data in the logs"


async def test_worker_serves_metrics_on_its_port_and_stops_on_sigterm(
    tmp_path: Path, mock_portal: MockPortalHandle, processes: Processes
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with simulator("igate", dossiers=20) as (sim, control):
        config = config_for(tmp_path, url, mock_portal, sim.url)
        expected = expected_at_portal(control)
        process = processes.start(
            "worker", "worker", "--config", config, "--metrics-port", str(port)
        )
        await eventually(lambda: get_status(f"{base}/healthz"), "the metrics port")
        await eventually(lambda: at_portal(mock_portal) == expected, "dossiers at the portal")
        await eventually(lambda: ready(f"{base}/readyz"), "readiness")
        text = await get_text(f"{base}/metrics")
        assert 'dossier_sync_source_polls_total{outcome="ok",source="sim-igate"}' in text
        assert f'dossier_sync_circuit_open{{target="{mock_portal.url}"}} 0.0' in text
        assert await get_status(f"{base}/api/v1/dossiers/x") == 404  # no API in a worker
        took = terminate(process, signal.SIGINT)
        assert process.returncode == 0, processes.output()
        assert took < STOP_WITHIN_S
    await assert_leases_released(url)
    assert "heap settled" in processes.output()


async def test_commands_refuse_an_unmigrated_database(tmp_path: Path, processes: Processes) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    path = write_config(
        tmp_path / "service.toml",
        settings_values(database_url=url, portal_url="http://127.0.0.1:9", sources=[]),
    )
    for command in ("serve", "worker"):
        result = run_cli(command, "--config", str(path))
        assert result.returncode == 1, result.stderr
        assert "not migrated" in result.stderr
        assert "dossier-sync db upgrade" in result.stderr


async def test_a_killed_worker_loses_nothing_when_restarted(
    tmp_path: Path,
    mock_portal: MockPortalHandle,
    processes: Processes,
    fresh_database_url: str,
) -> None:
    url = fresh_database_url
    # Slow pushes in small batches, so that the kill lands while pushing.
    for service in ("DongBoHoSoMC", "CapNhatTienDoHoSoMC"):
        mock_portal.control.add_fault(
            selector={"service": service}, action={"type": "latency", "latency_ms": 250}
        )
    with simulator("igate", dossiers=45) as (sim, control):
        config = config_for(tmp_path, url, mock_portal, sim.url, max_batch=5, sync={"lease_s": 2.0})
        expected = expected_at_portal(control)
        first = processes.start("worker", "worker", "--config", config)

        async def mid_push() -> bool:
            states = await sync_states(url)
            stored = sum(states.values()) == len(expected)
            return stored and len(at_portal(mock_portal)) > 0 and states.get("pending", 0) > 0

        await eventually(mid_push, "the worker to be pushing")
        terminate(first, signal.SIGKILL)
        assert first.returncode == -signal.SIGKILL
        assert (await sync_states(url)).get("pending", 0) > 0

        mock_portal.control.clear_faults()
        second = processes.start("worker", "worker", "--config", config)
        await eventually(lambda: at_portal(mock_portal) == expected, "every dossier at the portal")

        async def all_synced() -> bool:
            return await sync_states(url) == {"synced": len(expected)}

        await eventually(all_synced, "read-back to confirm every dossier")
        took = terminate(second)
        assert second.returncode == 0, processes.output()
        assert took < STOP_WITHIN_S

    async with database(url) as sessions, sessions() as session:
        undelivered = await session.scalar(
            select(func.count()).select_from(ProgressRow).where(ProgressRow.acked_at.is_(None))
        )
    assert undelivered == 0
    refused = [
        item
        for entry in mock_portal.control.journal()["entries"]
        for item in entry["items"]
        if item["error_code"] == ErrorCode.TRANSITION_REFUSED
    ]
    assert refused == []
    for unit in UNITS:
        report = mock_portal.control.conformance(unit)
        criteria = {c["name"]: c for c in report["criteria"]}
        for name in ("no_regressions_pushed", "keeps_per_dossier_order"):
            assert criteria[name]["passed"], criteria[name]

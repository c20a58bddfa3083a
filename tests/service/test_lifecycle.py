"""The life of a ``serve`` or ``worker`` process, as an orchestrator sees it: start-up
fails fast and clearly on a bad configuration or an unreachable database, and SIGTERM in
the middle of a push lets the push finish and be recorded (or hands its rows back) —
nothing the portal acknowledged is forgotten, nothing is lost, and the next process
finishes the work without sending anything twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.domain.codes import ErrorCode
from app.mockportal.testing import MockPortalHandle
from app.models import DossierRow, ProgressRow, SyncState
from tests.service.conftest import Processes
from tests.service.helpers import eventually
from tests.service.test_commands import (
    STOP_WITHIN_S,
    assert_leases_released,
    at_portal,
    config_for,
    database,
    expected_at_portal,
    sync_states,
    terminate,
)
from tests.sync.polling import UNITS, simulator

FAIL_FAST_S = 15.0  # an import of the whole service and a clear message; never a hang


def _start_and_wait(args: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "app", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stderr, time.monotonic() - started


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_SYNC_")}


BAD_CONFIGURATIONS = {
    "unknown key": ("[portal]\ntimeot_s = 1\n", "portal.timeot_s"),
    "bad database URL": ('database_url = "mysql://db/x"\n', "database_url"),
    "unknown dialect": (
        '[[sources]]\nname = "s"\ndialect = "soap"\nbase_url = "http://127.0.0.1:9"\n'
        'agencies = ["000.00.00.H26"]\n',
        "sources[0].dialect",
    ),
    "bad number": ("[sync]\nlease_s = -5\n", "sync.lease_s"),
}


# Both commands read the configuration through one loader before anything else: every
# case on a worker, one on serve (each case is a process start, seconds on a slow machine).
@pytest.mark.parametrize(
    ("command", "case"),
    [("worker", case) for case in sorted(BAD_CONFIGURATIONS)] + [("serve", "unknown key")],
)
def test_a_bad_configuration_stops_the_start_at_once_naming_the_key(
    tmp_path: Path, command: str, case: str
) -> None:
    text, key = BAD_CONFIGURATIONS[case]
    config = tmp_path / "bad.toml"
    config.write_text(text, encoding="utf-8")
    code, stderr, took = _start_and_wait([command, "--config", str(config)], _clean_environment())
    assert code == 2, stderr
    assert "configuration error" in stderr and key in stderr, stderr
    assert took < FAIL_FAST_S


@pytest.mark.parametrize("command", ["worker"])
def test_a_bad_environment_override_and_a_missing_file_stop_the_start_too(
    tmp_path: Path, command: str
) -> None:
    env = _clean_environment() | {"DOSSIER_SYNC_PORTAL__TIMEOUT_S": "ten"}
    code, stderr, took = _start_and_wait([command], env)
    assert (code, took < FAIL_FAST_S) == (2, True), stderr
    assert "portal.timeout_s" in stderr
    missing = tmp_path / "nowhere.toml"
    code, stderr, _ = _start_and_wait([command, "--config", str(missing)], _clean_environment())
    assert code == 2 and "file not found" in stderr and str(missing) in stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unreachable_database_stops_the_start_with_a_reason(
    tmp_path: Path, command: str
) -> None:
    config = tmp_path / "service.toml"
    # Port 9 (discard) on loopback: nothing listens there, the connection is refused.
    config.write_text('database_url = "postgresql+asyncpg://u@127.0.0.1:9/x"\n', encoding="utf-8")
    code, stderr, took = _start_and_wait([command, "--config", str(config)], _clean_environment())
    assert code == 1, stderr
    assert "database is not reachable" in stderr
    assert took < FAIL_FAST_S


async def test_sigterm_during_a_push_finishes_it_and_loses_nothing(
    tmp_path: Path,
    mock_portal: MockPortalHandle,
    processes: Processes,
    fresh_database_url: str,
) -> None:
    url = fresh_database_url
    # Each answer of the portal takes a second: SIGTERM lands while a batch is in flight.
    for service in ("DongBoHoSoMC", "CapNhatTienDoHoSoMC"):
        mock_portal.control.add_fault(
            selector={"service": service}, action={"type": "latency", "latency_ms": 1000}
        )
    with simulator("igate", dossiers=30) as (sim, control):
        # Rounds of ten (two lanes of five), so that work is left when SIGTERM comes.
        config = config_for(
            tmp_path, url, mock_portal, sim.url, max_batch=5, sync={"push_concurrency": 2}
        )
        expected = expected_at_portal(control)
        first = processes.start("worker", "worker", "--config", config)

        def in_flight() -> bool:
            # The portal has begun a DongBoHoSoMC it has not answered yet.
            journal = mock_portal.control.journal(service="DongBoHoSoMC")["entries"]
            return bool(journal) and len(at_portal(mock_portal)) < len(expected)

        await eventually(in_flight, "a push in flight", within=60)
        took = terminate(first)
        assert first.returncode == 0, processes.output()
        assert took < STOP_WITHIN_S
        await assert_leases_released(url)

        # What the portal acknowledged before the process ended is recorded as such: no
        # dossier the portal holds in its latest version is still pending here.
        held = at_portal(mock_portal)
        async with database(url) as sessions, sessions() as session:
            rows = (
                await session.execute(
                    select(DossierRow.ma_ho_so, DossierRow.version, SyncState.acked_version)
                    .join(SyncState, SyncState.dossier_id == DossierRow.id)
                    .where(DossierRow.ma_ho_so.in_(list(held)))
                )
            ).all()
        assert len(rows) == len(held) > 0
        forgotten = [code for code, version, acked in rows if acked != version]
        assert forgotten == [], "acknowledged by the portal, still pending here"
        assert len(held) < len(expected)  # the stop came mid-way: work is left

        mock_portal.control.clear_faults()
        second = processes.start("worker", "worker", "--config", config)
        await eventually(lambda: at_portal(mock_portal) == expected, "every dossier at the portal")

        async def all_synced() -> bool:
            return await sync_states(url) == {"synced": len(expected)}

        await eventually(all_synced, "read-back to confirm every dossier", within=60)
        terminate(second)
        assert second.returncode == 0, processes.output()

    async with database(url) as sessions, sessions() as session:
        undelivered = (
            await session.scalars(select(ProgressRow.id).where(ProgressRow.acked_at.is_(None)))
        ).all()
    assert undelivered == []
    entries = mock_portal.control.journal()["entries"]
    refused = [
        item
        for entry in entries
        for item in entry["items"]
        if item["error_code"] == ErrorCode.TRANSITION_REFUSED
    ]
    assert refused == []
    for unit in UNITS:
        report = mock_portal.control.conformance(unit)
        failed = [c for c in report["criteria"] if not c["passed"]]
        assert failed == [], failed

"""`dossier-sync demo`: the whole system on one machine reaches 100%, and says so."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import httpx
from rich.console import Console

from app.demo import DEMO_UNITS, Demo, DemoOptions, print_report
from app.demodata import load_demo_catalogue
from app.domain.progress import parse_progress
from app.mockportal.testing import MockPortalControl
from app.sync.normalise.common import Catalogue, Context, StatusMap
from tests.sync.polling import expected_from_truth


def demo_catalogue() -> Catalogue:
    demo = load_demo_catalogue()
    return Catalogue(
        {p["MaTTHC"]: p for p in demo["procedures"]},
        {a["MaCoQuan"]: a["TenCoQuan"] for a in demo["agencies"]},
    )


def quiet_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=140), out


async def test_the_demo_syncs_every_dossier_and_the_portal_holds_them() -> None:
    console, out = quiet_console()
    options = DemoOptions(dossiers=40, timeout_s=60, change_s=2.0)
    async with Demo(options, console) as demo:
        result = await demo.run()
        assert result.success, result.snapshot.missing[:5]
        snapshot = result.snapshot

        # The figures add up, per unit and per agency, and every unit got to 100%.
        assert set(snapshot.units) == set(DEMO_UNITS.values())
        for tally in [*snapshot.units.values(), *snapshot.agencies.values()]:
            assert tally.synced + tally.quarantined + tally.dead == tally.dossiers
            assert tally.pending == 0
            assert tally.dead == 0
            assert tally.rate == 1.0
        assert sum(t.dossiers for t in snapshot.units.values()) >= 3 * 40
        assert sum(t.dossiers for t in snapshot.agencies.values()) == snapshot.total.dossiers
        assert snapshot.total.quarantined > 0  # the awkward cases are on
        assert set(result.unit_done_s) == set(snapshot.units)

        # Checked independently: each simulator's truth against the mock's control API.
        assert demo.mock is not None
        control = MockPortalControl(demo.mock.url, demo.admin_token)
        catalogue = demo_catalogue()
        quarantined = synced = 0
        try:
            for source, sim in demo.simulators.items():
                async with httpx.AsyncClient(base_url=sim.url, timeout=10) as http:
                    truth = (await http.get("/_sim/truth")).json()
                context = Context(
                    StatusMap(sim.dialect),
                    catalogue,
                    (DEMO_UNITS[sim.dialect],),
                    truth.get("agency_map") or {},
                )
                for entry in truth["dossiers"]:
                    expected = expected_from_truth(sim.dialect, entry, context)
                    if expected.dossier is None:
                        quarantined += 1
                        continue
                    held = control.dossier(entry["ma_ho_so"])
                    assert held is not None, f"{source}: {entry['ma_ho_so']} not at the portal"
                    steps = held.pop("QuaTrinhXuLy")
                    assert held == expected.dossier.to_portal(), entry["ma_ho_so"]
                    at_portal = {parse_progress(step).identity_hash() for step in steps}
                    assert {p.identity_hash() for p in expected.progress} <= at_portal
                    synced += 1
        finally:
            control.close()
        assert (synced, quarantined) == (snapshot.total.synced, snapshot.total.quarantined)

    print_report(result, console)
    text = out.getvalue()
    assert "100% synchronised" in text
    for unit in DEMO_UNITS.values():
        assert unit in text


async def test_a_unit_that_never_gets_there_fails_the_demo_and_is_named() -> None:
    """The portal acknowledges G05's dossiers but keeps none: read-back never confirms
    them, so the demo times out, reports what is missing, and the other units are fine."""
    console, out = quiet_console()
    options = DemoOptions(dossiers=10, timeout_s=6, change_s=1.0)
    async with Demo(options, console) as demo:
        assert demo.mock is not None
        control = MockPortalControl(demo.mock.url, demo.admin_token)
        try:
            control.add_fault(
                selector={"agency": DEMO_UNITS["dvclt"], "service": "DongBoHoSoMC"},
                action={"type": "ack_then_lose"},
            )
        finally:
            control.close()
        result = await demo.run()
    assert not result.success
    assert result.timed_out
    units = result.snapshot.units
    assert units[DEMO_UNITS["dvclt"]].pending > 0
    assert units[DEMO_UNITS["opencps"]].pending == 0
    assert {m.source for m in result.snapshot.missing} == {"demo-dvclt"}
    print_report(result, console)
    assert "not synchronised" in out.getvalue()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_SYNC_")}
    return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "app", *args],
        env=env | {"COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_exits_0_and_prints_the_report() -> None:
    result = run_cli("demo", "--dossiers", "30")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "unit / agency" in out and "total" in out
    assert "100% synchronised" in out
    for unit in DEMO_UNITS.values():
        assert unit in out
    assert "Traceback" not in result.stderr


def test_the_command_exits_1_when_it_runs_out_of_time() -> None:
    result = run_cli("demo", "--dossiers", "5", "--timeout", "1")
    assert result.returncode == 1
    assert "not synchronised" in result.stdout

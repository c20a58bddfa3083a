"""``/status`` in a real browser: ``dossier-sync serve`` as a process syncing a simulator
to the mock portal (one unit's pushes failing until they are dead letters), and Debian's
headless Chromium loading the page — its rendered DOM read back, and a screenshot.

Chromium is part of the test environment (``.ci/run`` installs it): a missing browser
fails this test, it never skips it."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
from pathlib import Path

import httpx

from app.domain.periods import Period
from app.mockportal.testing import MockPortalHandle
from app.servers import free_port
from app.simulators.world import CLOCK_START
from tests.api.status_html import StatusPage, read_status_page
from tests.service.conftest import Processes, run_cli
from tests.service.exposition import database_gauges
from tests.service.helpers import eventually, settings_values, write_config
from tests.sync.polling import UNITS, simulator

G05 = "000.00.00.G05"
GREEN, RED = "#2e7d32", "#c62828"
WINDOW = (1280, 2000)
# A blank 1280×2000 page compresses to a few kilobytes; text, tables and a chart do not.
MIN_SCREENSHOT_BYTES = 40_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed (Debian: apt-get install chromium)"
    return found


def browse(url: str, profile: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run on ``url`` with a profile of its own."""
    return subprocess.run(  # noqa: S603 - the system's browser, fixed arguments
        [
            chromium(),
            "--headless=new",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *options,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, "not a PNG"
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


async def test_the_status_page_renders_with_data_in_headless_chromium(
    tmp_path: Path,
    fresh_database_url: str,
    mock_portal: MockPortalHandle,
    processes: Processes,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # G05's pushes fail (503, through the client's three tries) and one attempt is all a
    # change gets: G05's dossiers become dead letters while H26 and H29 sync.
    mock_portal.control.add_fault(
        selector={"agency": G05, "service": "DongBoHoSoMC"},
        action={"type": "http_error", "status": 503},
        max_uses=3,
    )
    with simulator("igate", dossiers=40, bad_data_share=0.1, unmapped_share=0.15) as (sim, _):
        values = settings_values(
            database_url=fresh_database_url,
            portal_url=mock_portal.url,
            sources=[("sim-igate", "igate", sim.url)],
            api_port=port,
            sync={"max_attempts": 1},
        )
        config = str(write_config(tmp_path / "service.toml", values))
        upgraded = run_cli("db", "upgrade", "--config", config)
        assert upgraded.returncode == 0, upgraded.stderr
        processes.start("serve", "serve", "--config", config)

        async def settled() -> bool:
            text = await _text(f"{base}/metrics")
            if text is None:
                return False
            gauges = database_gauges(text)
            states: dict[str, float] = {}
            for (_, state), value in gauges["dossier_sync_dossiers"].items():
                states[state] = states.get(state, 0) + value
            return states.get("pending") == 0 and all(
                states.get(s, 0) > 0 for s in ("synced", "quarantined", "dead")
            )

        await eventually(settled, "every change synced, quarantined or dead", within=60)

        # The simulated world's month (its clock starts on 13 May 2024, history before).
        period = Period.containing(CLOCK_START)
        url = f"{base}/status?period={period}"
        dumped = await asyncio.to_thread(browse, url, tmp_path / "profile-dom", "--dump-dom")
        assert dumped.returncode == 0, dumped.stderr[-2000:]
        screenshot = tmp_path / "status-page.png"
        shot = await asyncio.to_thread(
            browse, url, tmp_path / "profile-shot", f"--screenshot={screenshot}"
        )
        assert shot.returncode == 0, shot.stderr[-2000:]

    page = read_status_page(dumped.stdout)
    _assert_rendered_with_data(page)

    assert screenshot.is_file(), shot.stderr[-2000:]
    assert png_size(screenshot) == WINDOW
    assert screenshot.stat().st_size > MIN_SCREENSHOT_BYTES


def _assert_rendered_with_data(page: StatusPage) -> None:
    assert "Tháng 05/2024" in page.title
    assert set(page.cards) == set(UNITS)
    progress = page.rows("progress")
    received = {unit: int(progress[unit][1].replace(".", "")) for unit in UNITS}
    assert sum(received.values()) > 0
    for unit in UNITS:
        # The card, the chart and the table tell the same rate.
        rate = progress[unit][6]
        assert rate.endswith("%") or rate == "—", rate
        assert rate in page.cards[unit]
        assert page.bars[unit].label == rate
    # G05 is all dead letters: a red bar; the others are mostly green.
    assert page.bars[G05].segments[-1][0] == RED
    assert progress[G05][5] == progress[G05][1]  # dead = received
    assert any(
        fill == GREEN and width > 0 for unit in UNITS for fill, width in page.bars[unit].segments
    )
    # Reasons, not records: quarantine by reason code, dead letters by error code.
    assert page.tables["quarantine"]
    assert {row[0] for row in page.tables["dead-letters"]} == {G05}
    assert page.rows("sources")["sim-igate"][0] == "igate"
    assert "Chỉ số 766" in page.text
    assert page.rows("indicators-766")[UNITS[0]][-1].endswith("/ 56")


async def _text(url: str) -> str | None:
    """The body at ``url``; None while nothing answers there."""
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            return (await client.get(url)).text
        except httpx.TransportError:
            return None

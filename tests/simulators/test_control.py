"""The `/_sim` control API, background changes and the `simulate` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.servers import free_port
from app.simulators import DIALECTS, Dialect
from tests.simulators.conftest import Clients, StartSimulator
from tests.simulators.helpers import DOSSIERS

HISTORY_FORM: dict[Dialect, tuple[str, ...]] = {
    "opencps": ("files", "actions"),
    "igate": ("history",),
    "dvclt": ("messages",),
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_truth_shape(start: StartSimulator, clients: Clients, dialect: Dialect) -> None:
    control = clients.control(start(dialect, dossiers=10))
    truth = control.truth()
    assert set(truth) == {"dialect", "now", "agency_map", "dossiers"}
    assert truth["dialect"] == dialect
    datetime.fromisoformat(truth["now"])
    assert (truth["agency_map"] is not None) == (dialect == "dvclt")
    assert len(truth["dossiers"]) == 10
    for dossier in truth["dossiers"]:
        assert set(dossier) == {"key", "ma_ho_so", "record", "expected", *HISTORY_FORM[dialect]}
        assert set(dossier["expected"]) == {"MaHoSo", "TrangThaiHoSo", "valid", "history_statuses"}
        assert isinstance(dossier["key"], int if dialect == "opencps" else str)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_reset_rebuilds_the_world(
    start: StartSimulator, clients: Clients, dialect: Dialect
) -> None:
    control = clients.control(start(dialect, dossiers=10, seed=1))
    reference = clients.control(start(dialect, dossiers=12, seed=3))
    control.mutate(5)
    answer = control.http.post("/_sim/reset", json={"seed": 3, "dossiers": 12})
    assert answer.json() == {"seed": 3, "dossiers": 12}
    assert control.truth() == reference.truth()
    assert control.http.post("/_sim/reset", json={}).json() == {"seed": 3, "dossiers": 12}
    assert control.http.post("/_sim/reset", json={"dossiers": -1}).status_code == 400


def test_settings_can_be_read_and_changed(start: StartSimulator, clients: Clients) -> None:
    control = clients.control(start("opencps", dossiers=5))
    settings = control.http.get("/_sim/settings").json()
    assert settings["ties"] is False and settings["unmapped_share"] == 0
    assert settings["clock"] == "manual" and settings["dossiers"] == 5
    changed = control.settings(ties=True, unmapped_share=0.5, moves_per_list_request=3)
    assert changed["ties"] is True and changed["unmapped_share"] == 0.5
    assert changed["moves_per_list_request"] == 3 and changed["bad_data_share"] == 0
    for bad in ({"unmapped_share": 2}, {"seed": 4}, {"moves_per_list_request": -1}):
        assert control.http.patch("/_sim/settings", json=bad).status_code == 400, bad
    assert control.http.get("/_sim/settings").json() == changed


@pytest.mark.parametrize("dialect", DIALECTS)
def test_latency_delays_the_dialects_answers(
    start: StartSimulator, clients: Clients, dialect: Dialect
) -> None:
    simulator = start(dialect, dossiers=3)
    control = clients.control(simulator)
    assert control.settings(latency_ms=400)["latency_ms"] == 400
    began = time.monotonic()
    if dialect == "opencps":
        answer = clients.opencps(simulator).http.get(DOSSIERS)
    elif dialect == "igate":
        answer = clients.igate(simulator).token()
    else:
        answer = clients.dvclt(simulator).token()
    assert answer.status_code == 200
    assert time.monotonic() - began >= 0.4
    assert control.http.patch("/_sim/settings", json={"latency_ms": -1}).status_code == 400
    assert control.settings(latency_ms=0)["latency_ms"] == 0


def test_stats_count_requests_mutations_and_the_queue(
    start: StartSimulator, clients: Clients
) -> None:
    simulator = start("dvclt", dossiers=10)
    api, control = clients.dvclt(simulator).login(), clients.control(simulator)
    api.pending(3)
    api.pending(3)
    control.mutate(4)
    stats = control.stats()
    assert stats["dossiers"] >= 10 and stats["mutations"] == 4
    assert stats["requests"]["GET /api/lienthongdvclt/hosolienthong/chua-nhan"] == 2
    assert stats["requests"]["POST /api/auth/token"] == 1
    assert stats["unacknowledged"] == sum(
        1 for d in control.truth()["dossiers"] for m in d["messages"] if not m["acknowledged"]
    )
    assert sum(stats["states"].values()) == stats["dossiers"]
    opencps = clients.control(start("opencps", dossiers=3))
    assert opencps.expire_tokens() == 0 and opencps.stats()["unacknowledged"] is None


def test_background_changes_at_the_configured_rate(start: StartSimulator, clients: Clients) -> None:
    control = clients.control(start("igate", dossiers=30, changes_per_second=40))
    time.sleep(0.2)
    first = control.stats()["mutations"]
    time.sleep(1.0)
    applied = control.stats()["mutations"] - first
    assert 20 <= applied <= 60
    control.settings(changes_per_second=0)
    time.sleep(0.1)
    stopped = control.stats()["mutations"]
    time.sleep(0.3)
    assert control.stats()["mutations"] == stopped
    control.settings(changes_per_second=400, ties=True)  # batches, some of them bulk
    time.sleep(0.5)
    assert 100 <= control.stats()["mutations"] - stopped <= 320


def _stats(url: str) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = httpx.get(f"{url}/_sim/stats", timeout=2).json()
    except httpx.TransportError:
        return None
    return result


def test_simulate_command_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_SYNC_")}
    process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [
            *(sys.executable, "-m", "app", "simulate", "igate", "--port", str(port)),
            *("--dossiers", "15", "--changes-per-second", "20", "--token-ttl", "60"),
        ],
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stats = None
        for _ in range(150):
            stats = _stats(url)
            if stats is not None:
                break
            time.sleep(0.1)
        assert stats is not None and stats["dialect"] == "igate"
        with httpx.Client(base_url=url) as http:
            token = http.post(
                "/auth/realms/digo/protocol/openid-connect/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "demo",
                    "client_secret": "demo",
                },
            ).json()
            assert token["expires_in"] == 60
            settings = http.get("/_sim/settings").json()
            assert settings["clock"] == "real" and settings["ties"] is True  # awkward by default
            time.sleep(0.5)
            truth = http.get("/_sim/truth").json()
            assert http.get("/_sim/stats").json()["mutations"] > 0  # changes in the background
            http.get(
                "/pa/dossier/search",
                params={"size": 500},
                headers={"Authorization": f"Bearer {token['access_token']}"},
            ).raise_for_status()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    # The logs carry requests, never the people in the dossiers.
    for dossier in truth["dossiers"]:
        data = dossier["record"]["applicant"]["data"]
        assert data["fullname"] not in stderr and data["identityNumber"] not in stderr


def test_simulate_command_serves_the_units_it_is_told() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_SYNC_")}
    command = [sys.executable, "-m", "app", "simulate", "dvclt", "--port", str(port)]
    process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [*command, "--dossiers", "12", "--changes-per-second", "0", "--unit", "000.00.00.G05"],
        env=clean,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(150):
            if _stats(url) is not None:
                break
            time.sleep(0.1)
        with httpx.Client(base_url=url) as http:
            assert http.get("/_sim/settings").json()["units"] == ["000.00.00.G05"]
            codes = [d["expected"]["MaHoSo"] for d in http.get("/_sim/truth").json()["dossiers"]]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert len(codes) == 12 and all(".G05-" in code for code in codes), codes

    refused = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [*command, "--unit", "000.00.53.H26"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "units" in refused.stderr and "000.00.53.H26" in refused.stderr

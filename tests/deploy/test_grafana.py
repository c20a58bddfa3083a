"""The Grafana dashboard (``deploy/grafana/dossier-sync.json``) and its provisioning.

The dashboard must not drift from the service: every panel has a query, every metric a
query names is one the service really exports — read from the ``/metrics`` endpoint of
the service's own app after a real round (simulator → store → push to the mock portal →
read-back), not from a list kept by hand — and every query, run by a real Prometheus
scraping that endpoint, is valid PromQL that finds series."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import func, select

from app.api.app import create_ops_app
from app.db import create_session_factory
from app.metrics import Metrics
from app.mockportal.testing import MockPortalHandle
from app.models import DossierRow
from app.runtime import Service
from app.servers import BackgroundServer, free_port
from app.sync.engine import Engine
from tests.conftest import IsolatedDatabase
from tests.service.exposition import samples
from tests.service.helpers import eventually, settings_from, settings_values
from tests.sync.polling import simulator

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dossier-sync.json"
PROVISIONING = GRAFANA / "provisioning"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
G05 = "000.00.00.G05"
METRIC = re.compile(r"\bdossier_sync_[a-zA-Z0-9_]+\b")
# What Grafana puts in place of its variables before a query reaches Prometheus.
VARIABLES = {"$unit": ".*", "$__rate_interval": "30s"}
SCRAPE_INTERVAL_S = 1
SCRAPES_NEEDED = 4
GRID_COLUMNS = 24


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows something (rows' nested panels included, rows left out)."""
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target."""
    return [
        (panel["title"], target["expr"]) for panel in panels(board) for target in panel["targets"]
    ]


def variable_queries(board: dict[str, Any]) -> list[str]:
    return [
        v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        for v in board["templating"]["list"]
        if v["type"] == "query"
    ]


def as_sent(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


# --- the file itself -----------------------------------------------------------------------


def test_the_dashboard_parses_and_every_panel_has_a_query() -> None:
    board = dashboard()
    assert board["uid"] == "dossier-sync"
    assert isinstance(board["schemaVersion"], int)
    shown = panels(board)
    assert len(shown) >= 15
    ids = [p["id"] for p in board["panels"]] + [
        p["id"] for row in board["panels"] if row["type"] == "row" for p in row.get("panels", [])
    ]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in shown:
        assert panel["title"], panel
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), f"{panel['title']}: empty query"
            assert METRIC.search(target["expr"]), f"{panel['title']}: no dossier-sync metric"
    # Grafana's only required variable is the datasource; `unit` filters.
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "unit"} <= names


def test_no_two_panels_overlap_on_the_grid() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_the_provisioning_loads_the_dashboard_from_prometheus() -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources.yml").read_text(encoding="utf-8"))
    assert sources["apiVersion"] == 1
    [prometheus] = sources["datasources"]
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"].startswith("http")
    assert prometheus["isDefault"] is True  # what the dashboard's variable picks
    # Grafana's $__rate_interval is four times this: it must be the scrape interval.
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert prometheus["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]

    boards = yaml.safe_load((PROVISIONING / "dashboards.yml").read_text(encoding="utf-8"))
    [provider] = boards["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]


# --- against the service's real exposition ---------------------------------------------------


async def test_every_query_names_exported_metrics_and_finds_series(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle, tmp_path: Path
) -> None:
    board = dashboard()
    async with _served_after_a_round(migrated_database, mock_portal) as target:
        async with httpx.AsyncClient(timeout=10) as client:
            exported = set(samples((await client.get(f"{target}/metrics")).text))
        used = {name: title for title, expr in queries(board) for name in METRIC.findall(expr)}
        used |= {
            name: "variable" for expr in variable_queries(board) for name in METRIC.findall(expr)
        }
        missing = {name: title for name, title in used.items() if name not in exported}
        assert not missing, f"not exported by the service (metric: panel): {missing}"

        async with _prometheus(tmp_path, target) as prometheus:
            empty: dict[str, str] = {}
            for title, expr in queries(board):
                answer = await prometheus.get("/api/v1/query", params={"query": as_sent(expr)})
                body = answer.json()
                assert body["status"] == "success", (title, expr, body)
                if not body["data"]["result"]:
                    empty[title] = expr
            assert not empty, f"queries that found no series: {empty}"
            for expr in variable_queries(board):
                found = re.fullmatch(r"label_values\((\w+), *(\w+)\)", expr)
                assert found is not None, expr
                metric, label = found.groups()
                answer = await prometheus.get(
                    f"/api/v1/label/{label}/values", params={"match[]": metric}
                )
                assert answer.json()["data"], expr


@asynccontextmanager
async def _served_after_a_round(
    database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> AsyncIterator[str]:
    """The service's ops app (``/metrics``, as a worker serves it) on a local port, its
    registry filled by one real round: a simulator with refusals and unmapped statuses,
    G05's pushes failing until they are dead letters, read-back confirming the rest, a
    few changes read and not pushed yet."""
    sessions = create_session_factory(database.engine)
    now = [datetime.now(UTC)]
    metrics = Metrics(clock=lambda: now[0])
    with simulator("igate", dossiers=40, bad_data_share=0.15, unmapped_share=0.15) as (
        sim,
        control,
    ):
        settings = settings_from(
            settings_values(
                database_url=database.url,
                portal_url=mock_portal.url,
                sources=[("sim-igate", "igate", sim.url)],
                sync={"max_attempts": 1},
            )
        )
        mock_portal.control.add_fault(
            selector={"agency": G05, "service": "DongBoHoSoMC"},
            action={"type": "http_error", "status": 503},
            max_uses=1,
        )
        metrics.prime(settings)
        engine = Engine(settings, sessions, observer=metrics.observer())
        engine.portal.attempts = 1
        metrics.circuits.watch(engine.portal)
        try:
            assert await engine.refresh_catalogue()
            await engine.run_round()
            control.mutate(5)
            await engine.pollers[0].poll_once()
        finally:
            await engine.aclose()
    async with sessions() as session:
        latest = await session.scalar(select(func.max(DossierRow.received_at)))
    assert latest is not None
    now[0] = latest  # the simulated world's month: "this month's" gauges have series
    await metrics.refresh(sessions)
    # The snapshot's clock stands still, so /metrics never finds it stale: it serves
    # exactly this round's reading, from the app's own endpoint.
    service = Service(settings, database.engine, sessions, metrics, refresh_interval_s=3600)
    with BackgroundServer(create_ops_app(service)) as server:
        yield server.url


@asynccontextmanager
async def _prometheus(directory: Path, target: str) -> AsyncIterator[httpx.AsyncClient]:
    """A real Prometheus scraping ``target`` every second, once it has a few scrapes."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is needed (Debian: apt-get install prometheus)"
    port = free_port()
    config = directory / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s"},
                "scrape_configs": [
                    {
                        "job_name": "dossier-sync-worker",
                        "static_configs": [{"targets": [target.removeprefix("http://")]}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    log = (directory / "prometheus.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def scraped() -> bool:
                try:
                    answer = await client.get(
                        "/api/v1/query", params={"query": "count_over_time(up[1m])"}
                    )
                except httpx.TransportError:
                    return False
                result = answer.json()["data"]["result"] if answer.status_code == 200 else []
                # Enough scrapes for a rate over the queries' 30 s window.
                return bool(result) and float(result[0]["value"][1]) >= SCRAPES_NEEDED

            await eventually(scraped, "Prometheus to scrape the service a few times", within=60)
            up = (await client.get("/api/v1/query", params={"query": "up"})).json()
            assert [r["value"][1] for r in up["data"]["result"]] == ["1"], up
            yield client
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)
        log.close()

"""deploy/prometheus/: the configuration and the alert rules pass promtool (its checks and
the unit tests in alerts_test.yml), and a real Prometheus (Debian's package) started on
that configuration scrapes a running ``serve`` and ``worker``, reads their metrics back
through its query API and fires an alert from the rules."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.mockportal.testing import MockPortalHandle
from app.servers import free_port
from tests.service.conftest import Processes
from tests.service.exposition import expected_gauges
from tests.service.helpers import eventually
from tests.service.test_commands import (
    config_for,
    database,
    expected_at_portal,
    ready,
    sync_states,
)
from tests.sync.polling import simulator

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
CHECKS = [
    ("check", "config", "prometheus.yml"),
    ("check", "rules", "alerts.yml"),
    ("test", "rules", "alerts_test.yml"),
]


def tool(name: str) -> str:
    """A Prometheus binary; missing is a failure, never a skip (``.ci/run`` installs
    Debian's ``prometheus`` package, which brings both)."""
    path = shutil.which(name)
    assert path, f"{name} is not installed (Debian package `prometheus`)"
    return path


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_names() -> list[str]:
    return [
        rule["alert"]
        for group in load(DEPLOY / "alerts.yml")["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


@pytest.mark.parametrize("command", CHECKS, ids=" ".join)
def test_promtool_accepts_the_deploy_files(command: tuple[str, ...]) -> None:
    result = subprocess.run(  # noqa: S603 - a fixed promtool command
        [tool("promtool"), *command],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    names = alert_names()
    assert sorted(names) == sorted(
        {
            "DossierSyncRatioBelowOne",
            "DossierSyncOldestPendingTooOld",
            "DossierSyncDeadLetters",
            "DossierSyncSourceNotPolled",
            "DossierSyncCircuitOpen",
            "DossierSyncPushErrorRate",
        }
    )
    firing: Counter[str] = Counter()
    quiet: Counter[str] = Counter()
    for case in load(DEPLOY / "alerts_test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet)[check["alertname"]] += 1
    assert set(firing) == set(quiet) == set(names), (firing, quiet)


# --- a real Prometheus ----------------------------------------------------------------


def prometheus_directory(directory: Path, api: list[str], workers: list[str]) -> Path:
    """deploy/prometheus/ with the test's targets and 1 s intervals (nothing else
    changed): the configuration Prometheus loads is the one operators deploy."""
    shutil.copytree(DEPLOY, directory)
    config = load(directory / "prometheus.yml")
    config["global"] |= {"scrape_interval": "1s", "scrape_timeout": "1s"}
    config["global"]["evaluation_interval"] = "1s"
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for name, targets in (("api", api), ("workers", workers)):
        (directory / "targets" / f"{name}.yml").write_text(
            yaml.safe_dump([{"targets": targets}]), encoding="utf-8"
        )
    return directory / "prometheus.yml"


@contextmanager
def running_prometheus(config: Path, storage: Path, log: Path) -> Iterator[str]:
    """``prometheus`` on a free port; yields its base URL, stops it whatever happens."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the Debian binary, fixed arguments
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def api(base: str, path: str, **params: str) -> Any:
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.get(f"{base}{path}", params=params)
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", body
    return body["data"]


async def query(base: str, promql: str) -> list[tuple[dict[str, str], float]]:
    """An instant query's samples: (labels, value)."""
    data = await api(base, "/api/v1/query", query=promql)
    return [(sample["metric"], float(sample["value"][1])) for sample in data["result"]]


async def by_job(base: str, promql: str, *names: str) -> dict[str, dict[tuple[str, ...], float]]:
    """A query's samples per scrape job, keyed by the values of ``names``."""
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for labels, value in await query(base, promql):
        out.setdefault(labels["job"], {})[tuple(labels[n] for n in names)] = value
    return out


async def test_a_real_prometheus_scrapes_serve_and_a_worker_and_alerts(
    tmp_path: Path, mock_portal: MockPortalHandle, processes: Processes, fresh_database_url: str
) -> None:
    url = fresh_database_url
    api_port, worker_port = free_port(), free_port()
    with simulator("igate", dossiers=30) as (sim, control):
        expected = expected_at_portal(control)
        # Every push of this one dossier fails; with one attempt allowed, its batch becomes
        # dead letters. Three failures (the client's tries) never open the breaker.
        doomed = sorted(expected)[0]
        mock_portal.control.add_fault(
            selector={"service": "DongBoHoSoMC", "ma_ho_so_prefix": doomed},
            action={"type": "http_error", "status": 503},
        )
        config = config_for(
            tmp_path, url, mock_portal, sim.url, api_port=api_port, sync={"max_attempts": 1}
        )
        processes.start("serve", "serve", "--config", config)
        processes.start("worker", "worker", "--config", config, "--metrics-port", str(worker_port))
        targets = {"dossier-sync-api": api_port, "dossier-sync-worker": worker_port}
        for port in targets.values():
            await eventually(partial(ready, f"http://127.0.0.1:{port}/readyz"), "ready")

        async def settled() -> dict[str, int] | None:
            states = await sync_states(url)
            done = set(states) == {"synced", "dead"} and sum(states.values()) == len(expected)
            return states if done else None

        states = await eventually(settled, "every dossier synced or dead", within=60)

        config_file = prometheus_directory(
            tmp_path / "prometheus", [f"127.0.0.1:{api_port}"], [f"127.0.0.1:{worker_port}"]
        )
        with running_prometheus(
            config_file, tmp_path / "tsdb", tmp_path / "prometheus.log"
        ) as base:
            await eventually(lambda: ready(f"{base}/-/ready"), "Prometheus to be ready")

            async def both_up() -> bool:
                up = await by_job(base, "up")
                return up == {job: {(): 1.0} for job in targets}

            await eventually(both_up, "both targets scraped and up")

            # Database gauges: each process reports what the tables say.
            async with database(url) as sessions:
                truth = await expected_gauges(sessions, datetime.now(UTC))

            async def gauges_read_back() -> bool:
                dossiers = await by_job(base, "dossier_sync_dossiers", "unit", "state")
                letters = await by_job(base, "dossier_sync_dead_letters", "unit", "error_code")
                return dossiers == dict.fromkeys(
                    targets, truth["dossier_sync_dossiers"]
                ) and letters == dict.fromkeys(targets, truth["dossier_sync_dead_letters"])

            await eventually(gauges_read_back, "the database gauges read back", within=30)
            synced = await query(base, 'sum by (job) (dossier_sync_dossiers{state="synced"})')
            assert {labels["job"]: value for labels, value in synced} == {
                job: float(states["synced"]) for job in targets
            }

            # Counters: per process, added up in PromQL, equal to what the portal saw.
            journal = mock_portal.control.journal(service="DongBoHoSoMC", limit=10_000)
            outcomes: Counter[str] = Counter(
                "ok" if e["http_status"] == 200 else f"http_{e['http_status']}"
                for e in journal["entries"]
            )
            assert outcomes["http_503"] == 3

            async def requests_add_up() -> bool:
                found = await query(
                    base,
                    'sum by (outcome) (dossier_sync_push_requests_total{service="DongBoHoSoMC"})',
                )
                summed = {labels["outcome"]: value for labels, value in found if value}
                return summed == {k: float(v) for k, v in outcomes.items()}

            await eventually(requests_add_up, "summed push counters to match the portal")

            # The rules: loaded, evaluated, and the dead letters alert once (not per process).
            async def rules_healthy() -> bool:
                groups = (await api(base, "/api/v1/rules"))["groups"]
                rules = {r["name"]: r["health"] for g in groups for r in g["rules"]}
                return rules == dict.fromkeys(alert_names(), "ok")

            await eventually(rules_healthy, "the alert rules to be evaluated")

            async def dead_letter_alert() -> list[dict[str, str]]:
                found = await query(
                    base, 'ALERTS{alertname="DossierSyncDeadLetters",alertstate="firing"}'
                )
                return [labels for labels, _ in found]

            firing = await eventually(dead_letter_alert, "the dead letters alert")
            assert {(a["unit"], a["error_code"]) for a in firing} == set(
                truth["dossier_sync_dead_letters"]
            )
            assert len(firing) == len(truth["dossier_sync_dead_letters"])
            assert all("instance" not in a for a in firing)

"""Metrics with several processes at once (docs/observability.md, "Several processes"):
two ``dossier-sync worker --metrics-port`` processes on one database report the same
database gauges, and counters of their own whose sum is what the portal received."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from app.mockportal.testing import MockPortalHandle
from app.servers import free_port
from tests.service.conftest import Processes
from tests.service.exposition import by, database_gauges, expected_gauges, samples
from tests.service.helpers import eventually
from tests.service.test_commands import (
    at_portal,
    config_for,
    database,
    expected_at_portal,
    get_text,
    ready,
    sync_states,
    terminate,
)
from tests.sync.polling import simulator

# Polls succeed every 0.2 s and each process reads the database at its own moments:
# these are compared with a bound, not for equality.
LAG = "dossier_sync_source_lag_seconds"
LAST_SUCCESS = "dossier_sync_source_last_success_timestamp_seconds"
TIME_DEPENDENT = (LAG, LAST_SUCCESS)
# Recomputed once a minute (the first time at start, on an empty database): the equality
# of two collectors' indicators is test_metrics.py's, in one process.
INDICATORS = ("dossier_sync_indicator_766", "dossier_sync_indicator_766_points")


def portal_truth(mock: MockPortalHandle) -> tuple[int, Counter[tuple[str, str]]]:
    """Every request the portal received, and its per-item answers by (service, code)."""
    lines, dropped = mock.control.journal_ndjson()
    assert dropped == 0
    items: Counter[tuple[str, str]] = Counter()
    for line in lines:
        entry = json.loads(line)
        for item in entry["items"]:
            if item["error_code"] is not None:
                items[(entry["service"], str(item["error_code"]))] += 1
    return len(lines), items


def counted(texts: list[str]) -> tuple[int, Counter[tuple[str, str]]]:
    """The processes' push counters added up, as ``sum without (instance)`` would."""
    requests = 0.0
    items: Counter[tuple[str, str]] = Counter()
    for text in texts:
        found = samples(text)
        requests += sum(found.get("dossier_sync_push_requests_total", {}).values())
        for (service, code), value in by(
            found.get("dossier_sync_push_items_total", {}), "service", "error_code"
        ).items():
            if code != "none" and value:
                items[(service, code)] += int(value)
    return int(requests), items


async def test_two_workers_share_database_gauges_and_keep_their_own_counters(
    tmp_path: Path, mock_portal: MockPortalHandle, processes: Processes, fresh_database_url: str
) -> None:
    url = fresh_database_url
    with simulator("igate", dossiers=40, bad_data_share=0.15) as (sim, control):
        config = config_for(tmp_path, url, mock_portal, sim.url, max_batch=5)
        expected = expected_at_portal(control)
        bases = []
        for _ in range(2):
            port = free_port()
            processes.start("worker", "worker", "--config", config, "--metrics-port", str(port))
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            await eventually(partial(ready, f"{base}/readyz"), f"{base} ready")
        await eventually(lambda: at_portal(mock_portal) == expected, "dossiers at the portal")

        async def all_synced() -> bool:
            return await sync_states(url) == {"synced": len(expected)}

        await eventually(all_synced, "read-back to confirm every dossier")

        async def scrape() -> list[str]:
            return [await get_text(f"{base}/metrics") for base in bases]

        # Database gauges: the same on both processes, and what the tables say. Each
        # process refreshes its snapshot on its own schedule, hence `eventually`.
        async def same_gauges() -> list[str] | None:
            texts = await scrape()
            async with database(url) as sessions:
                truth = await expected_gauges(sessions, datetime.now(UTC))
            gauges = [database_gauges(text) for text in texts]
            for found in [*gauges, truth]:
                for name in (*TIME_DEPENDENT, *INDICATORS):
                    found.pop(name)
            last[:] = [*gauges, truth]
            return texts if gauges[0] == gauges[1] == truth else None

        last: list[object] = []

        try:
            texts = await eventually(same_gauges, "equal database gauges", within=60)
        except AssertionError as error:
            raise AssertionError(f"first, second, the tables: {last}") from error
        gauges = database_gauges(texts[0])
        assert gauges["dossier_sync_quarantined"], "the simulator's bad records"
        synced = {u: v for (u, s), v in gauges["dossier_sync_dossiers"].items() if s == "synced"}
        assert sum(synced.values()) == len(expected)
        now = datetime.now(UTC).timestamp()
        for text in texts:
            found = database_gauges(text)
            assert set(found[LAG]) == set(found[LAST_SUCCESS]) == {("sim-igate",)}
            assert 0 <= found[LAG][("sim-igate",)] < 30
            assert now - 30 < found[LAST_SUCCESS][("sim-igate",)] <= now

        # Counters: each process counts what it did; added up they are what the portal
        # saw (counting the whole deployment in each process would double it).
        async def counters_add_up() -> bool:
            # Read-back goes on every second: compare in a moment without requests.
            before = portal_truth(mock_portal)
            texts = await scrape()
            return before == counted(texts) == portal_truth(mock_portal)

        await eventually(counters_add_up, "the processes' counters to add up", within=60)
        requests, items = portal_truth(mock_portal)
        assert requests > 0
        assert items[("DongBoHoSoMC", "0")] >= len(expected)

        for process in processes.started:
            terminate(process)
            assert process.returncode == 0, processes.output()

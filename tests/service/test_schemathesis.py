"""A schemathesis run against the live service: ``dossier-sync serve`` as a real process
on a migrated database of each backend, with a key of every scope, fuzzed from its own
``/openapi.json``. Every check must pass: no 5xx, no status or body outside the schema,
no schema-valid request refused.

One check is switched off for the two push-mode endpoints, on purpose: they take a
batch whose items are validated one by one, so an invalid item is answered 202 with
``rejected`` and its errors (service-interface.md), not by refusing the whole request as
``negative_data_rejection`` expects."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from app.mockportal.testing import MockPortalHandle
from app.servers import free_port
from tests.service.conftest import Processes, run_cli
from tests.service.helpers import eventually, settings_values, write_config
from tests.sync.polling import UNITS

SCHEMATHESIS_CONFIG = """\
[[operations]]
include-path-regex = "^/api/v1/(dossiers|progress)$"
include-method = "POST"
[operations.checks]
negative_data_rejection.enabled = false
"""


async def _ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(url)).status_code == 200
    except httpx.TransportError:
        return False


async def test_schemathesis_finds_nothing_against_the_live_service(
    tmp_path: Path,
    fresh_database_url: str,
    mock_portal: MockPortalHandle,
    processes: Processes,
) -> None:
    port = free_port()
    values = settings_values(
        database_url=fresh_database_url,
        portal_url=mock_portal.url,
        sources=[],
        api_port=port,
    )
    # Thousands of requests from one key: the rate limit would answer most with 429.
    values["api"] |= {"rate_limit_per_s": 100_000.0, "rate_limit_burst": 100_000}
    config = str(write_config(tmp_path / "service.toml", values))
    assert run_cli("db", "upgrade", "--config", config).returncode == 0
    made = run_cli(
        "keys", "create", "--config", config, "--unit", UNITS[0], "--scope", "ingest,read,admin"
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()

    processes.start("serve", "serve", "--config", config)
    base = f"http://127.0.0.1:{port}"
    await eventually(lambda: _ready(f"{base}/readyz"), "serve to be ready")

    (tmp_path / "schemathesis.toml").write_text(SCHEMATHESIS_CONFIG, encoding="utf-8")
    run = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--max-examples",
            # CI (a slow shared machine, a 20-minute budget) takes fewer examples, with
            # the seed fixed; locally every run takes more.
            "15" if os.environ.get("DOSSIER_SYNC_TEST_CI") else "40",
            "--seed",
            "20261127",
            "--no-color",
        ],
        cwd=tmp_path,  # where it finds schemathesis.toml
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    async with httpx.AsyncClient(timeout=5) as client:
        schema = (await client.get(f"{base}/openapi.json")).json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    assert operations >= 17, operations
    # Every operation was tried.
    assert f"Selected: {operations}/{operations}" in run.stdout, report
    assert " passed" in run.stdout, report

"""Fixtures of the chaos suite: its plan (seed, length, sizes), the PostgreSQL cluster it
restarts (always left running), a database of its own and the processes it starts.

``--chaos-long`` is registered here; pytest reads options only from the conftest files of
the paths it is given, so use it as ``pytest tests/chaos --chaos-long``. The environment
works from any invocation: ``DOSSIER_SYNC_TEST_CHAOS_S`` (seconds of chaos) and
``DOSSIER_SYNC_TEST_CHAOS_SEED``. A failed run leaves the portal's journal, the sources'
truths and the kills next to the processes' logs (the path is printed);
``DOSSIER_SYNC_TEST_CHAOS_KEEP=1`` does so for a passing run too, and keeps the database.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.chaos.helpers import FIGURES, KEEP_ENV, Cluster, Plan, wait_accepting
from tests.service.conftest import Processes

SECONDS_ENV = "DOSSIER_SYNC_TEST_CHAOS_S"
SEED_ENV = "DOSSIER_SYNC_TEST_CHAOS_SEED"
CI_SEED = 766  # CI replays one seed (as hypothesis is derandomized there)
SHORT_S = 36.0
LONG_S = 300.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos")
    group.addoption(
        "--chaos-long",
        action="store_true",
        default=False,
        help=f"run the chaos suite for {LONG_S:g} s of chaos instead of {SHORT_S:g} s",
    )
    group.addoption("--chaos-seed", type=int, default=None, help="seed of the chaos suite")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(FIGURES, [])
    if lines:
        terminalreporter.section("chaos figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def chaos_plan(request: pytest.FixtureRequest) -> Plan:
    config = request.config
    seed: int | None = config.getoption("chaos_seed", default=None)
    if seed is None and os.environ.get(SEED_ENV):
        seed = int(os.environ[SEED_ENV])
    if seed is None:
        ci = os.environ.get("DOSSIER_SYNC_TEST_CI") == "1"
        seed = CI_SEED if ci else random.SystemRandom().randrange(1, 1_000_000)
    if os.environ.get(SECONDS_ENV):
        seconds = float(os.environ[SECONDS_ENV])
    else:
        seconds = LONG_S if config.getoption("chaos_long", default=False) else SHORT_S
    return Plan.for_duration(seed, seconds)


@pytest.fixture
def cluster(database_url: str) -> Iterator[Cluster]:
    """The local PostgreSQL cluster serving the test database; running again afterwards,
    whatever the test did."""
    url = make_url(database_url)
    found = Cluster.serving(url.host, url.port or 5432)
    if found is None:
        pytest.fail(
            f"the chaos suite restarts PostgreSQL, but no local cluster (pg_lsclusters) "
            f"serves {url.host}:{url.port or 5432}"
        )
    try:
        yield found
    finally:
        found.ensure_running()


@pytest.fixture
async def chaos_database(database_url: str, cluster: Cluster) -> AsyncIterator[str]:
    """A new, empty database on the test server, dropped afterwards (over a connection
    opened then: the server was restarted in between)."""
    name = f"dossier_sync_chaos_{uuid.uuid4().hex[:10]}"
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        cluster.ensure_running()
        if os.environ.get(KEEP_ENV) == "1":
            print(f"chaos: database kept: {url}")  # noqa: T201
        else:
            await wait_accepting(dsn, within=60)
            admin = await asyncpg.connect(dsn)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.reap()

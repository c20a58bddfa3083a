"""What several bench scripts share: throwaway PostgreSQL databases, the service's
commands run as processes of their own, and waiting for them to answer HTTP. (Imported
by scripts run as ``python bench/X.py``, whose directory is then first on
``sys.path``.)"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.demodata import load_demo_catalogue
from app.repositories.catalogue import CatalogueAgency, CatalogueRepository
from app.servers import free_port

DEFAULT_DATABASE_URL = "postgresql://127.0.0.1:5432/postgres"


# The simulators' public demo credentials, as a source's `[sources.auth]` carries them.
SOURCE_AUTH: dict[str, dict[str, str]] = {
    "opencps": {"username": "demo", "password": "demo", "group_id": "1"},
    "igate": {"client_id": "demo", "client_secret": "demo"},
    "dvclt": {"username": "demo", "password": "demo"},
}


def add_database_url_argument(parser: argparse.ArgumentParser) -> None:
    """``--database-url``: the PostgreSQL server :func:`fresh_database` makes its
    throwaway databases on."""
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="a PostgreSQL server to create throwaway databases on",
    )


def machine() -> str:
    """The line each script ends with: what its figures were measured on."""
    return f"(python {sys.version.split()[0]}, {os.cpu_count()} CPUs)"


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A new database on the server, dropped afterwards: its asyncpg SQLAlchemy URL."""
    url = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def wait_for(url: str, child: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Until ``url`` answers; exits when ``child`` stops first or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if child.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{url}: not up")
        try:
            httpx.get(url, timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return


def service_env() -> dict[str, str]:
    """This process's environment without ``DOSSIER_SYNC_*``: a command started with it
    reads its configuration file only, not the settings of whoever runs the bench."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_SYNC_")}


@contextlib.contextmanager
def app_process(
    command: list[str], ready_url: str, environment: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m app COMMAND…`` in a process of its own (``environment`` added to
    :func:`service_env`), once ``ready_url`` answers; terminated (killed if it must)
    when the block ends."""
    child = subprocess.Popen(
        [sys.executable, "-m", "app", *command],
        env=service_env() | (environment or {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(ready_url, child)
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def start_service(
    stack: contextlib.ExitStack, config: Path, base: str, workers: int
) -> list[subprocess.Popen[bytes]]:
    """``serve`` (answering at ``base``) and ``workers`` worker processes on ``config``,
    each stopped when ``stack`` closes: the processes, ``serve`` first."""
    children = [
        stack.enter_context(app_process(["serve", "--config", str(config)], f"{base}/readyz"))
    ]
    for _ in range(workers):
        metrics = free_port()
        command = ["worker", "--config", str(config), "--metrics-port", str(metrics)]
        children.append(
            stack.enter_context(app_process(command, f"http://127.0.0.1:{metrics}/readyz"))
        )
    return children


def ingest_key(config: Path, unit: str) -> str:
    """A new ingest key of ``unit``, from ``dossier-sync keys create`` (printed once)."""
    command = [sys.executable, "-m", "app", "keys", "create", "--unit", unit]
    command += ["--scope", "ingest", "--config", str(config)]
    created = subprocess.run(command, env=service_env(), capture_output=True, text=True, check=True)
    return created.stdout.strip().splitlines()[-1]


async def store_demo_catalogue(session: AsyncSession, now: datetime) -> None:
    """The portal's demo catalogue in the database, as a catalogue refresh leaves it."""
    demo = load_demo_catalogue()
    catalogue = CatalogueRepository(session)
    await catalogue.replace_procedures(demo["procedures"], now)
    await catalogue.replace_agencies(
        [CatalogueAgency(a["MaCoQuan"], a["TenCoQuan"], a["Cap"]) for a in demo["agencies"]],
        now,
    )

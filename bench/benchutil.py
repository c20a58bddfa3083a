"""What several bench scripts share: throwaway PostgreSQL databases and waiting for a
process they started to answer HTTP. (Imported by scripts run as ``python bench/X.py``,
whose directory is then first on ``sys.path``.)"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "postgresql://127.0.0.1:5432/postgres"


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

"""Fixtures of the service tests: fresh databases for subprocesses, and the processes
themselves (always reaped, whatever the test did)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest


@pytest.fixture
async def fresh_database_url(backend: str, database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A URL to a database of its own that nobody has migrated (a new SQLite file, or a
    new PostgreSQL database on the test server), for a service run as a subprocess."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'service.db'}"
        return
    name = f"dossier_sync_svc_{uuid.uuid4().hex[:10]}"
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = database_url.rpartition("/")
        yield f"{base}/{name}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _environment() -> dict[str, str]:
    """The test run's environment without any DOSSIER_SYNC_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_SYNC_")}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "app", *args],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Processes:
    """``dossier-sync`` commands started by a test, each logging to a file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.directory / f"{name}-{len(self.logs)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
                [sys.executable, "-m", "app", *args],
                env=_environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.started.append(process)
        self.logs.append(log)
        return process

    def output(self) -> str:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace") for log in self.logs)

    def reap(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.reap()

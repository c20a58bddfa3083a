"""deploy/compose.yaml: the full stack is consistent with itself and with the service's
configuration reference — no Docker here, so every cross-reference a `docker compose up`
would trip over is checked by reading the files, and the service's own configuration
loader validates what the API and workers would read."""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.config import load_settings
from app.simulators.settings import SimulatorSettings
from app.simulators.world import World

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SERVICE_ROLES = {"migrate", "api", "worker-1", "worker-2"}  # the dossier-sync service
SIMULATORS = {"sim-opencps": "opencps", "sim-igate": "igate", "sim-dvclt": "dvclt"}
EXPECTED = {
    "postgres",
    *SERVICE_ROLES,
    "mock-portal",
    *SIMULATORS,
    "prometheus",
    "grafana",
}
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - inside a container, the published port's way in
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _interpolate(value: Any) -> Any:
    """Compose's ``${VAR:-default}`` with nothing set: the defaults (as a fresh clone)."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    interpolated: dict[str, Any] = _interpolate(loaded)
    return interpolated


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _option(command: list[str], name: str) -> str:
    assert name in command, (name, command)
    return command[command.index(name) + 1]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Path in the container → what is mounted there (a path or a named volume)."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


def test_the_stack_has_every_service_and_each_role_runs_the_projects_image(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    assert set(services) == EXPECTED
    ours = SERVICE_ROLES | set(SIMULATORS) | {"mock-portal"}
    for name in ours:
        assert services[name]["image"] == "dossier-sync:local", name
    for name in SERVICE_ROLES:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file(), name


def test_migrations_run_once_explicitly_before_the_api_and_workers(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    assert _command(services["migrate"]) == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker-1", "worker-2"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, name
        assert "upgrade" not in _command(services[name]), name
    assert _command(services["api"]) == ["serve"]
    for name in ("worker-1", "worker-2"):
        assert _command(services[name])[0] == "worker"


def test_the_services_configuration_loads_as_the_api_and_workers_read_it(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """compose/config.toml with each role's environment through the service's own loader
    (unknown keys, bad values and unserved sources are refused there), and every host and
    port in it is a service of the stack listening there."""
    services = _services(compose)
    for name in ("api", "worker-1", "worker-2", "migrate"):
        environment = services[name]["environment"]
        mounts = _mounts(services[name])
        config_path = environment["DOSSIER_SYNC_CONFIG"]
        local = COMPOSE.parent / mounts[config_path]
        for variable in [v for v in os.environ if v.startswith("DOSSIER_SYNC_")]:
            monkeypatch.delenv(variable)
        for variable, value in environment.items():
            if variable.startswith("DOSSIER_SYNC_"):
                monkeypatch.setenv(variable, str(value))
        monkeypatch.setenv("DOSSIER_SYNC_CONFIG", str(local))
        settings = load_settings()

        database = urlsplit(settings.database_url)
        postgres = services["postgres"]["environment"]
        assert (database.hostname, database.port) == ("postgres", 5432)
        assert database.path == f"/{postgres['POSTGRES_DB']}"
        assert database.username == postgres["POSTGRES_USER"]
        assert database.password == postgres["POSTGRES_PASSWORD"]

        portal_host, portal_port = _host_port(str(settings.portal.base_url))
        assert portal_host == "mock-portal"
        assert _option(_command(services["mock-portal"]), "--port") == str(portal_port)

        served = {source.name: source for source in settings.sources}
        assert len(served) == len(SIMULATORS)
        for source in served.values():
            host, port = _host_port(str(source.base_url))
            assert SIMULATORS[host] == source.dialect, source.name
            command = _command(services[host])
            assert command[:2] == ["simulate", source.dialect]
            assert _option(command, "--port") == str(port)
            unit = _option(command, "--unit")
            assert source.agencies == [unit], source.name
            assert unit in {account.unit for account in settings.portal.accounts}
            if source.dialect == "dvclt":
                # The map must name the agencies the simulator numbers, as it numbers them.
                world = World("dvclt", SimulatorSettings(units=(unit,), dossiers=1))
                assert {int(k): v for k, v in source.agency_map.items()} == world.agency_map
        assert settings.api.host == ALL_INTERFACES


def test_ports_published_health_checked_and_scraped_are_the_ones_listened_on(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    config = tomllib.loads((DEPLOY / "compose" / "config.toml").read_text(encoding="utf-8"))
    api_port = config["api"]["port"]
    assert f"{api_port}:{api_port}" in services["api"]["ports"]
    assert services["api"]["environment"]["HEALTHCHECK_URL"] == (
        f"http://127.0.0.1:{api_port}/healthz"
    )
    scraped_workers = yaml.safe_load((DEPLOY / "compose" / "targets-workers.yml").read_text())
    scraped_api = yaml.safe_load((DEPLOY / "compose" / "targets-api.yml").read_text())
    assert scraped_api == [{"targets": [f"api:{api_port}"]}]
    workers = sorted(n for n in services if n.startswith("worker-"))
    expected_targets = []
    for name in workers:
        port = _option(_command(services[name]), "--metrics-port")
        assert _option(_command(services[name]), "--metrics-host") == ALL_INTERFACES
        assert services[name]["environment"]["HEALTHCHECK_URL"] == (
            f"http://127.0.0.1:{port}/healthz"
        )
        expected_targets.append(f"{name}:{port}")
    assert scraped_workers == [{"targets": expected_targets}]
    for name in ("mock-portal", *SIMULATORS):
        port = _option(_command(services[name]), "--port")
        assert _option(_command(services[name]), "--host") == ALL_INTERFACES
        assert urlsplit(services[name]["environment"]["HEALTHCHECK_URL"]).port == int(port)


def test_every_mounted_file_exists_and_every_named_volume_is_declared(
    compose: dict[str, Any],
) -> None:
    declared = set(compose["volumes"])
    used: set[str] = set()
    for name, service in _services(compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), (name, source)
            else:
                used.add(source)
    assert used == declared


def test_prometheus_and_grafana_get_the_files_their_configurations_name(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    prometheus_mounts = _mounts(services["prometheus"])
    config_in_container = _option(
        [a for arg in _command(services["prometheus"]) for a in arg.split("=", 1)],
        "--config.file",
    )
    config = yaml.safe_load((COMPOSE.parent / prometheus_mounts[config_in_container]).read_text())
    base = Path(config_in_container).parent
    for rules in config["rule_files"]:
        assert str(base / rules) in prometheus_mounts, rules
    for job in config["scrape_configs"]:
        for discovery in job["file_sd_configs"]:
            for targets in discovery["files"]:
                assert str(base / targets) in prometheus_mounts, targets

    grafana_mounts = _mounts(services["grafana"])
    dashboards = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards.yml").read_text()
    )
    path = dashboards["providers"][0]["options"]["path"]
    assert (COMPOSE.parent / grafana_mounts[path] / "dossier-sync.json").is_file()
    provisioned = {Path(p).parent.name for p in grafana_mounts if "/provisioning/" in p}
    assert provisioned == {"datasources", "dashboards"}
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources.yml").read_text()
    )
    host, port = _host_port(datasources["datasources"][0]["url"])
    assert host == "prometheus" and f"{port}:{port}" in services["prometheus"]["ports"]

"""The ``dossier-sync`` command line (service-interface.md, "Package and commands")."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from app.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from app.repositories.dead_letters import DeadLetterFilter

app = typer.Typer(
    name="dossier-sync",
    help="Synchronise TTHC dossiers to the National Public Service Portal (DVCQG).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="Database migrations (Alembic) on the configured database.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
dead_letters_app = typer.Typer(
    help="Pushes given up on (attempts spent or refused for good): list and redrive.",
    no_args_is_help=True,
)
app.add_typer(dead_letters_app, name="dead-letters")
keys_app = typer.Typer(help="API keys of the HTTP API.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML configuration file (default: $DOSSIER_SYNC_CONFIG, else built-in defaults).",
        exists=False,
        dir_okay=False,
    ),
]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]", markup=True, highlight=False)
        raise typer.Exit(2) from None


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOption = None,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = _settings(config)
    from app import migrate  # noqa: PLC0415 - Alembic is slow to import; only db needs it

    migrate.upgrade(settings.database_url, revision)
    err.print(f"database {_redacted(settings.database_url)} upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base or -1.")],
    config: ConfigOption = None,
) -> None:
    """Revert migrations down to REVISION."""
    settings = _settings(config)
    from app import migrate  # noqa: PLC0415

    migrate.downgrade(settings.database_url, revision)
    err.print(f"database {_redacted(settings.database_url)} downgraded to {revision}")


@app.command("demo")
def demo(
    *,
    dossiers: Annotated[
        int, typer.Option(min=1, max=5000, help="Dossiers per source simulator.")
    ] = 150,
    timeout: Annotated[
        float, typer.Option(min=1, help="Give up (exit 1) after this many seconds.")
    ] = 120.0,
) -> None:
    """Run the whole system on this machine, no setup, until every dossier is synced.

    Starts the mock portal and one simulator per dialect, uses SQLite in a temporary
    directory, shows progress per unit and ends with a per-unit and per-agency report.
    Exits 0 only at 100%."""
    from app.demo import main as run_demo  # noqa: PLC0415 - keeps --help fast

    raise typer.Exit(run_demo(dossiers, timeout))


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration and print it with secrets hidden."""
    settings = _settings(config)
    Console().print_json(settings.model_dump_json(exclude={"database_url"}))


@app.command("mock-portal")
def mock_portal(
    *,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8900,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    admin_token: Annotated[
        str | None,
        typer.Option(help="Enables the /_mock control API, called with this Bearer token."),
    ] = None,
    seed: Annotated[
        Path | None,
        typer.Option(
            help="JSON seed file (procedures, agencies, accounts) replacing the demo data.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option(help="SQLite file that keeps dossiers across restarts (default: memory)."),
    ] = None,
    session_ttl: Annotated[float, typer.Option(help="Session lifetime, seconds.")] = 1800,
    rate: Annotated[float, typer.Option(help="Requests per second per dstcode.")] = 50,
    burst: Annotated[int, typer.Option(help="Token-bucket burst per dstcode.")] = 100,
    journal_size: Annotated[int, typer.Option(help="Journal ring-buffer entries.")] = 10_000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Run the mock National Public Service Portal (portal-contract.md)."""
    from app.logs import configure_logging  # noqa: PLC0415 - keeps --help fast
    from app.mockportal.app import MockPortalSettings  # noqa: PLC0415
    from app.mockportal.control import load_seed_file  # noqa: PLC0415
    from app.mockportal.server import serve  # noqa: PLC0415

    configure_logging(log_level.upper(), "json")
    try:
        catalogue = load_seed_file(seed) if seed is not None else None
    except ValueError as exc:
        err.print(f"seed file {seed}: {exc}")
        raise typer.Exit(2) from None
    settings = MockPortalSettings(
        admin_token=admin_token,
        session_ttl_s=session_ttl,
        rate_per_s=rate,
        burst=burst,
        journal_capacity=journal_size,
        store_path=store,
        catalogue=catalogue,
    )
    serve(settings, host, port, log_level)


class SimulatorDialect(StrEnum):
    """The source dialects of source-dialects.md (kept here so that --help stays fast)."""

    OPENCPS = "opencps"
    IGATE = "igate"
    DVCLT = "dvclt"


@app.command("simulate")
def simulate(
    dialect: Annotated[SimulatorDialect, typer.Argument(help="Source dialect to simulate.")],
    *,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8901,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed of the simulated world.")] = 0,
    dossiers: Annotated[int, typer.Option(min=0, help="Dossiers in the initial world.")] = 100,
    changes_per_second: Annotated[
        float, typer.Option(min=0, help="Life-cycle changes applied per second (0: none).")
    ] = 1.0,
    clean: Annotated[
        bool,
        typer.Option(
            help="Turn every awkward case off (ties, moving rows, unmapped statuses, bad "
            "data, duplicate and out-of-order messages)."
        ),
    ] = False,
    token_ttl: Annotated[
        float | None,
        typer.Option(min=0.001, help="Token lifetime, seconds (default: the dialect's)."),
    ] = None,
    unit: Annotated[
        list[str] | None,
        typer.Option(
            help="A top-level unit whose agencies own the dossiers (repeat for several; "
            "default: 000.00.00.H26, 000.00.00.H29 and 000.00.00.G05). Simulators run side "
            "by side need units of their own, or they hand out the same MaHoSo."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Run a source-system simulator (source-dialects.md) with demo/demo credentials and
    its /_sim control API, on the wall clock."""
    from pydantic import ValidationError  # noqa: PLC0415 - keeps --help fast

    from app.logs import configure_logging  # noqa: PLC0415
    from app.simulators.server import serve  # noqa: PLC0415
    from app.simulators.settings import SimulatorSettings  # noqa: PLC0415

    configure_logging(log_level.upper(), "json")
    values: dict[str, object] = {
        "seed": seed,
        "dossiers": dossiers,
        "clock": "real",
        "changes_per_second": changes_per_second,
        "token_ttl_s": token_ttl,
    }
    if unit:
        values["units"] = tuple(unit)
    try:
        settings = (
            SimulatorSettings.model_validate(values)
            if clean
            else SimulatorSettings.awkward(**values)
        )
    except ValidationError as exc:
        problems = "; ".join(f"{error['loc'][-1]}: {error['msg']}" for error in exc.errors())
        err.print(f"cannot start: {problems}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    serve(dialect.value, settings, host, port, log_level)


def _require_migrated(settings: Settings) -> None:
    """Refuse to start on a database that is unreachable or not at the migrations' head."""
    import asyncio  # noqa: PLC0415 - keeps --help fast

    from app.runtime import check_database  # noqa: PLC0415

    problem = asyncio.run(check_database(settings.database_url))
    if problem is not None:
        err.print(f"cannot start: {problem}", markup=False, highlight=False)
        raise typer.Exit(1)


@app.command("serve")
def serve(config: ConfigOption = None) -> None:
    """Run the HTTP API, the pollers and the pushers in one process on api.host and
    api.port, until SIGTERM/SIGINT (then finish the round in flight and exit 0)."""
    import uvicorn  # noqa: PLC0415 - keeps --help fast

    from app.api.app import create_app  # noqa: PLC0415
    from app.logs import configure_logging  # noqa: PLC0415
    from app.servers import GracefulServer, listening_socket  # noqa: PLC0415

    settings = _settings(config)
    configure_logging(settings.logging.level, settings.logging.format)
    _require_migrated(settings)
    try:
        sock = listening_socket(settings.api.host, settings.api.port)
    except OSError as exc:
        err.print(
            f"cannot listen on {settings.api.host}:{settings.api.port}: {exc}",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(2) from None
    server = GracefulServer(
        uvicorn.Config(
            create_app(settings, pipeline=True, settle=True),
            log_config=None,
            log_level=settings.logging.level.lower(),
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:  # the lifespan failed to start; uvicorn logged why
        raise typer.Exit(1)


@app.command("worker")
def worker(
    config: ConfigOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve /metrics, /healthz and /readyz on this port (default: no HTTP).",
        ),
    ] = None,
    metrics_host: Annotated[
        str | None,
        typer.Option(help="Interface for --metrics-port (default: api.host)."),
    ] = None,
) -> None:
    """Run the pollers, pushers and read-back (no API) until SIGTERM/SIGINT; run several
    against one PostgreSQL to scale out."""
    import asyncio  # noqa: PLC0415 - keeps --help fast

    from app.logs import configure_logging  # noqa: PLC0415
    from app.runtime import run_worker, run_worker_with_metrics  # noqa: PLC0415

    settings = _settings(config)
    configure_logging(settings.logging.level, settings.logging.format)
    _require_migrated(settings)
    if metrics_port is None:
        status = asyncio.run(run_worker(settings))
    else:
        host = metrics_host or settings.api.host
        status = asyncio.run(run_worker_with_metrics(settings, host, metrics_port))
    raise typer.Exit(status)


def _when(value: datetime | None) -> datetime | None:
    """Times without a zone are Vietnamese local time, as operators read them."""
    if value is None or value.tzinfo is not None:
        return value
    from app.domain.dates import VN_TZ  # noqa: PLC0415 - keeps --help fast

    return value.replace(tzinfo=VN_TZ)


UnitOption = Annotated[str | None, typer.Option(help="Only this top-level unit (dstcode).")]
AgencyOption = Annotated[str | None, typer.Option(help="Only this agency.")]
ErrorCodeOption = Annotated[int | None, typer.Option(help="Only this portal error code (e.g. -5).")]
TimeFormats = ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]
SinceOption = Annotated[
    datetime | None,
    typer.Option(formats=TimeFormats, help="Given up on at or after (local time if no zone)."),
]
UntilOption = Annotated[
    datetime | None,
    typer.Option(formats=TimeFormats, help="Given up on before (local time if no zone)."),
]


def _dead_letter_filter(
    unit: str | None,
    agency: str | None,
    error_code: int | None,
    since: datetime | None,
    until: datetime | None,
) -> DeadLetterFilter:
    from app.repositories.dead_letters import DeadLetterFilter  # noqa: PLC0415

    return DeadLetterFilter(unit, agency, error_code, _when(since), _when(until))


@dead_letters_app.command("list")
def dead_letters_list(
    *,
    config: ConfigOption = None,
    unit: UnitOption = None,
    agency: AgencyOption = None,
    error_code: ErrorCodeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
) -> None:
    """List open dead letters, newest first, with their reasons."""
    import asyncio  # noqa: PLC0415 - keeps --help fast

    from rich.table import Table  # noqa: PLC0415

    from app.operations import list_dead_letters  # noqa: PLC0415

    settings = _settings(config)
    _require_migrated(settings)
    where = _dead_letter_filter(unit, agency, error_code, since, until)
    letters = asyncio.run(list_dead_letters(settings, where, limit))
    table = Table()
    for column in ("given up (UTC)", "MaHoSo", "unit", "service", "code", "attempts"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", overflow="fold", min_width=20)
    for letter in letters:
        table.add_row(
            letter.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            letter.ma_ho_so,
            letter.unit,
            letter.service,
            "" if letter.error_code is None else str(letter.error_code),
            str(letter.attempts),
            letter.reason,
        )
    out = Console(width=160) if not sys.stdout.isatty() else Console()
    out.print(table)
    out.print(f"{len(letters)} open dead letter(s)")


@dead_letters_app.command("redrive")
def dead_letters_redrive(
    *,
    config: ConfigOption = None,
    unit: UnitOption = None,
    agency: AgencyOption = None,
    error_code: ErrorCodeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Redrive every open dead letter (no filter).")
    ] = False,
) -> None:
    """Queue the matching dossiers again with a fresh attempt budget; running workers
    push them at their next round."""
    import asyncio  # noqa: PLC0415 - keeps --help fast

    from app.operations import redrive_dead_letters  # noqa: PLC0415

    filters = (unit, agency, error_code, since, until)
    if not all_ and all(f is None for f in filters):
        err.print("give a filter (--unit, --agency, --error-code, --since, --until) or --all")
        raise typer.Exit(2)
    settings = _settings(config)
    _require_migrated(settings)
    count = asyncio.run(redrive_dead_letters(settings, _dead_letter_filter(*filters)))
    Console().print(f"{count} dossier(s) queued again")


@keys_app.command("create")
def keys_create(
    *,
    unit: Annotated[str, typer.Option(help="The top-level unit the key belongs to.")],
    scope: Annotated[str, typer.Option(help="Comma-separated scopes among ingest, read, admin.")],
    agency: Annotated[
        str | None, typer.Option(help="Only this agency of the unit (default: all of them).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label, e.g. the calling system.")] = None,
    config: ConfigOption = None,
) -> None:
    """Create an API key and print it once; only its hash is stored."""
    import asyncio  # noqa: PLC0415 - keeps --help fast

    from app.auth import Scope  # noqa: PLC0415
    from app.domain.agency import is_agency_code, is_top_level_unit, unit_of  # noqa: PLC0415
    from app.operations import create_api_key  # noqa: PLC0415

    if not is_top_level_unit(unit):
        err.print(f"--unit: {unit!r} is not a top-level unit code (000.00.00.Gxx/Hxx)")
        raise typer.Exit(2)
    if agency is not None and not (is_agency_code(agency) and unit_of(agency) == unit):
        err.print(f"--agency: {agency!r} is not an agency code of unit {unit}")
        raise typer.Exit(2)
    names = [s.strip() for s in scope.split(",") if s.strip()]
    unknown = [s for s in names if s not in {m.value for m in Scope}]
    if not names or unknown:
        err.print(f"--scope: unknown {unknown or names!r}; choose among ingest, read, admin")
        raise typer.Exit(2)
    settings = _settings(config)
    _require_migrated(settings)
    created = asyncio.run(
        create_api_key(
            settings, unit=unit, agency=agency, scopes=[Scope(s) for s in names], name=name
        )
    )
    err.print(
        f"key {created.prefix}… for {agency or unit}, scopes {', '.join(sorted(set(names)))}; "
        "it is shown only now:"
    )
    print(created.key)  # noqa: T201 - the one output, for a pipe or a secret store


def _utc(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@keys_app.command("list")
def keys_list(
    *,
    unit: Annotated[str | None, typer.Option(help="Only the keys of this top-level unit.")] = None,
    config: ConfigOption = None,
) -> None:
    """List API keys, revoked ones included.

    Shows each key's id, prefix, name, unit and agency, scopes, when it was created, last
    used (to the minute) and revoked; never the key itself, nor its hash."""
    import asyncio  # noqa: PLC0415 - keeps --help fast

    from rich.table import Table  # noqa: PLC0415

    from app.domain.agency import is_top_level_unit  # noqa: PLC0415
    from app.operations import list_api_keys  # noqa: PLC0415

    if unit is not None and not is_top_level_unit(unit):
        err.print(f"--unit: {unit!r} is not a top-level unit code (000.00.00.Gxx/Hxx)")
        raise typer.Exit(2)
    settings = _settings(config)
    _require_migrated(settings)
    keys = asyncio.run(list_api_keys(settings, unit))
    table = Table()
    for column in ("id", "prefix", "name", "unit", "agency", "scopes"):
        table.add_column(column, overflow="fold")
    for column in ("created (UTC)", "last used (UTC)", "revoked (UTC)"):
        table.add_column(column, no_wrap=True)
    for key in keys:
        table.add_row(
            str(key.key_id),
            f"{key.prefix}…",
            key.name or "",
            key.unit,
            key.agency or "",
            ",".join(key.scopes),
            _utc(key.created_at),
            _utc(key.last_used_at),
            _utc(key.revoked_at),
        )
    out = Console(width=160) if not sys.stdout.isatty() else Console()
    out.print(table)
    active = sum(1 for key in keys if key.revoked_at is None)
    out.print(f"{len(keys)} key(s), {active} active")


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[
        str,
        typer.Argument(
            metavar="KEY_ID_OR_NAME",
            help="The key's id, name or prefix, as `keys list` shows them.",
        ),
    ],
    *,
    config: ConfigOption = None,
) -> None:
    """Revoke an API key.

    From the next request on, every process refuses it (401) like an unknown key.
    Revoking a revoked key changes nothing."""
    import asyncio  # noqa: PLC0415 - keeps --help fast

    from app.auth import AmbiguousKeyError, KeyNotFoundError  # noqa: PLC0415
    from app.operations import revoke_api_key  # noqa: PLC0415

    settings = _settings(config)
    _require_migrated(settings)
    try:
        revocation = asyncio.run(revoke_api_key(settings, key))
    except KeyNotFoundError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from None
    except AmbiguousKeyError as exc:
        ids = ", ".join(str(c.key_id) for c in exc.candidates)
        err.print(f"{exc}; nothing revoked: name one by id ({ids})", markup=False, highlight=False)
        raise typer.Exit(1) from None
    found = revocation.key
    what = f"key {found.key_id} ({found.prefix}…{f' {found.name}' if found.name else ''})"
    reach = found.agency or found.unit
    out = Console(soft_wrap=True)
    if revocation.now:
        out.print(f"{what} of {reach} revoked", markup=False, highlight=False)
    else:
        out.print(
            f"{what} of {reach} was already revoked at {_utc(found.revoked_at)} UTC",
            markup=False,
            highlight=False,
        )


def main() -> None:
    app()

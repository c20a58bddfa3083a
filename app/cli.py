"""The ``dossier-sync`` command line (service-interface.md, "Package and commands")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from app import migrate
from app.config import ConfigError, Settings, load_settings

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
    migrate.upgrade(settings.database_url, revision)
    err.print(f"database {_redacted(settings.database_url)} upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base or -1.")],
    config: ConfigOption = None,
) -> None:
    """Revert migrations down to REVISION."""
    settings = _settings(config)
    migrate.downgrade(settings.database_url, revision)
    err.print(f"database {_redacted(settings.database_url)} downgraded to {revision}")


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration and print it with secrets hidden."""
    settings = _settings(config)
    Console().print_json(settings.model_dump_json(exclude={"database_url"}))


def main() -> None:
    app()

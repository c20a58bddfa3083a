"""Configuration: one TOML file, every scalar overridable from the environment.

Precedence, highest first: ``DOSSIER_SYNC_<SECTION>__<KEY>`` / ``DOSSIER_SYNC_<KEY>``
environment variables, the TOML file given with ``--config`` (or ``DOSSIER_SYNC_CONFIG``),
then the defaults, which run the service on SQLite with no file at all.

A bad key or value stops start-up with a message naming it (:class:`ConfigError`); the
service never starts half-configured.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args, get_origin

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.domain.agency import is_agency_code, is_top_level_unit, unit_of
from app.domain.codes import MAX_BATCH_ITEMS
from app.domain.status import DossierStatus

ENV_PREFIX = "DOSSIER_SYNC_"
CONFIG_PATH_ENV = "DOSSIER_SYNC_CONFIG"
# Environment names under the prefix that are not settings: the config path itself, and
# the test suite's own variables.
_RESERVED_ENV = frozenset({CONFIG_PATH_ENV})
_RESERVED_ENV_PREFIXES = ("DOSSIER_SYNC_TEST_",)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./dossier-sync.db"

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class ConfigError(Exception):
    """The configuration is unusable; the message names every offending key."""


def _database_url(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in _DRIVERS:
        raise ValueError(
            "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
            "(plain sqlite:// and postgresql:// are accepted and get the async driver)"
        )
    return f"{_DRIVERS[scheme]}://{rest}"


def _unit_code(value: str) -> str:
    if not is_top_level_unit(value):
        raise ValueError("must be a top-level unit code such as 000.00.00.H26 or 000.00.00.G05")
    return value


def _agency_code(value: str) -> str:
    if not is_agency_code(value):
        raise ValueError("must be an agency code such as 000.00.53.H26")
    return value


def _status_code(value: str) -> str:
    if value not in {s.value for s in DossierStatus}:
        raise ValueError('must be a TrangThaiHoSo code "1".."10"')
    return value


DatabaseUrl = Annotated[str, AfterValidator(_database_url)]
UnitCode = Annotated[str, AfterValidator(_unit_code)]
AgencyCode = Annotated[str, AfterValidator(_agency_code)]
StatusCode = Annotated[str, AfterValidator(_status_code)]

_SECTION = ConfigDict(extra="forbid", frozen=True)


class ApiSettings(BaseModel):
    model_config = _SECTION

    host: str = Field(
        default="127.0.0.1",
        description="Interface `serve` listens on; also `worker --metrics-port`'s, unless "
        "`--metrics-host` names another.",
    )
    port: int = Field(default=8000, ge=1, le=65535, description="Port `serve` listens on.")
    rate_limit_per_s: float = Field(
        default=50.0,
        gt=0,
        description="Requests a second each API key may make, counted in each API process "
        "on its own (a token bucket's refill); beyond it the answer is 429 with "
        "`Retry-After`.",
    )
    rate_limit_burst: int = Field(
        default=100,
        ge=1,
        description="Requests a key may make at once before the rate applies (the bucket's size).",
    )


class PortalAccount(BaseModel):
    """An account at the portal; one per top-level unit the deployment syncs for."""

    model_config = _SECTION

    unit: UnitCode = Field(
        description="The top-level unit this account pushes for, sent as `dstcode` and `madonvi`."
    )
    username: str = Field(min_length=1, description="The unit's login at the portal.")
    password: SecretStr = Field(
        description="Its password; usually from the environment "
        "(`DOSSIER_SYNC_PORTAL__ACCOUNTS__<n>__PASSWORD`)."
    )


class PortalSettings(BaseModel):
    model_config = _SECTION

    base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8900"),
        description="Base URL of the portal's integration API (the default is where "
        "`dossier-sync mock-portal` listens).",
    )
    timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of each HTTP request to the portal, seconds."
    )
    max_batch: int = Field(
        default=MAX_BATCH_ITEMS,
        ge=1,
        le=MAX_BATCH_ITEMS,
        description="Most items in one `DongBoHoSoMC` or `CapNhatTienDoHoSoMC` call (the "
        f"contract allows {MAX_BATCH_ITEMS}).",
    )
    rate_limit_per_s: float = Field(
        default=50.0,
        gt=0,
        description="Requests a second this process sends to the portal for each unit at "
        "most, counting every call and retry (the portal's token bucket is 50 a second per "
        "`dstcode`, contract §7; beyond it the portal answers 429 and the unit waits out "
        "its `Retry-After`). Each process paces itself: with N processes pushing for one "
        "unit, set the portal's rate ÷ N.",
    )
    rate_limit_burst: int = Field(
        default=20,
        ge=1,
        description="Requests for one unit this process may send at once before "
        "`rate_limit_per_s` applies (the portal's bucket holds 100; a smaller burst leaves "
        "it room for the time requests spend on their way).",
    )
    accounts: list[PortalAccount] = Field(
        default_factory=list,
        description="The portal accounts, one per top-level unit the deployment syncs for "
        "(never two for one unit). Every agency a source serves needs its unit's account.",
    )
    catalogue_refresh_s: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds between fetches of the portal's procedures and agencies "
        "(`LayDanhSachTTHC`, `LayDanhMucCoQuan`), besides the one at start. The fetch rides "
        "on the hourly housekeeping, so a value above 3600 acts as 3600.",
    )

    @model_validator(mode="after")
    def _one_account_per_unit(self) -> Self:
        seen: set[str] = set()
        for account in self.accounts:
            if account.unit in seen:
                raise ValueError(f"accounts: unit {account.unit} has more than one account")
            seen.add(account.unit)
        return self


Dialect = Literal["opencps", "igate", "dvclt"]

# Credentials each dialect needs (source-dialects.md); anything else in [sources.auth] is a typo.
AUTH_KEYS: Mapping[str, frozenset[str]] = {
    "opencps": frozenset({"username", "password", "group_id"}),
    "igate": frozenset({"client_id", "client_secret"}),
    "dvclt": frozenset({"username", "password"}),
}


class SourceSettings(BaseModel):
    model_config = _SECTION

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="The source's name, unique among the sources: its row in the database "
        "(cursor, poll lease, health, pause switch), its `source` label in the metrics, its "
        "`{name}` in the admin API. A renamed source is a new one and reads from the start.",
    )
    dialect: Dialect = Field(
        description="The source system's API (`source-dialects.md`): OpenCPS, VNPT iGate or "
        "the inter-agency DVCLT queue."
    )
    base_url: AnyHttpUrl = Field(description="Base URL of the source system's API.")
    agencies: list[AgencyCode] = Field(
        min_length=1,
        description="Top-level units (all their agencies) or agencies whose dossiers this "
        "source holds; a dossier of any other agency is quarantined (`agency_not_served`). "
        "Each unit needs a `[[portal.accounts]]` entry.",
    )
    poll_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="Seconds from the start of one poll to the start of the next (a poll "
        "that takes longer is followed at once); after failures the wait doubles, up to 5 "
        "minutes.",
    )
    page_size: int = Field(
        default=200, ge=1, le=500, description="Records asked for in each page of a poll."
    )
    concurrency: int = Field(
        default=8, ge=1, le=64, description="Most HTTP requests in flight to this source at once."
    )
    auth: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="The credentials of the dialect, exactly these keys: "
        + "; ".join(f"{d}: {', '.join(sorted(k))}" for d, k in AUTH_KEYS.items())
        + ".",
    )
    status_map: dict[str, StatusCode] = Field(
        default_factory=dict,
        description="Overrides of the dialect's status mapping: source status → "
        "`TrangThaiHoSo` code. Records whose status maps to nothing are quarantined "
        "(`unmapped_status`); a changed map re-evaluates them at the next poll.",
    )
    agency_map: dict[str, AgencyCode] = Field(
        default_factory=dict,
        description="`dvclt` only: the queue names agencies by integer `maDonVi`; this maps "
        "each (as a string key) to its agency code.",
    )

    @model_validator(mode="after")
    def _auth_fits_dialect(self) -> Self:
        expected = AUTH_KEYS[self.dialect]
        unknown = sorted(set(self.auth) - expected)
        if unknown:
            raise ValueError(
                f"auth.{unknown[0]}: not a credential of dialect {self.dialect!r} "
                f"(expected {', '.join(sorted(expected))})"
            )
        missing = sorted(expected - set(self.auth))
        if missing:
            raise ValueError(f"auth.{missing[0]}: required for dialect {self.dialect!r}")
        if self.agency_map and self.dialect != "dvclt":
            raise ValueError("agency_map: only the dvclt dialect uses it")
        return self

    def secret(self, key: str) -> str:
        return self.auth[key].get_secret_value()


class SyncSettings(BaseModel):
    """Pusher and reconciliation tuning."""

    model_config = _SECTION

    push_concurrency: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Batches one process pushes at once (each up to `portal.max_batch` "
        "dossiers of one unit, then their progress records; several may be of the same "
        "unit): a push round claims up to `portal.max_batch` × this many dossiers. Across "
        "a network the calls mostly wait for the portal, so more at once push faster; "
        "`portal.rate_limit_per_s` keeps a unit's calls under the portal's rate limit.",
    )
    lease_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds claimed outbox rows stay a process's without renewal (renewed "
        "while their push is in flight): a killed worker's rows are pushed by others after "
        "this.",
    )
    poll_lease_s: float | None = Field(
        default=None,
        gt=0,
        description="The same for a source's poll lease (renewed at every poll and while one "
        "runs): a killed worker's sources are polled by others after this. Unset: five poll "
        "intervals of the source, at least 30 s. Must be longer than every source's "
        "`poll_interval_s`.",
    )
    idle_push_wait_s: float = Field(
        default=0.5,
        gt=0,
        description="With nothing due, a pusher looks again this often. On PostgreSQL a "
        "NOTIFY from whichever process stored a change wakes it at once, so a longer wait "
        "only delays retries and a killed worker's rows, which no notification announces.",
    )
    max_attempts: int = Field(
        default=12,
        ge=1,
        description="Push attempts of a dossier before it is given up as a dead letter; "
        "pushes an open circuit breaker held back do not count.",
    )
    backoff_initial_s: float = Field(
        default=0.5,
        gt=0,
        description="Wait after a dossier's first failed push; it doubles with each attempt "
        "(jittered), and is never shorter than the portal's `Retry-After`.",
    )
    backoff_max_s: float = Field(
        default=300.0, gt=0, description="Longest wait between two push attempts of a dossier."
    )
    reconcile_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds between read-back rounds (`TraCuuHoSo`), which turn acknowledged "
        "dossiers into synced ones.",
    )
    reconcile_batch: int = Field(
        default=1000,
        ge=1,
        description="Acknowledged dossiers read back per round, oldest first (a slice of "
        "synced ones is read back besides, to notice changes made at the portal).",
    )
    push_log_retention_days: int = Field(
        default=30,
        ge=1,
        description="Days the push log (`push_attempts`) is kept; older rows are purged hourly.",
    )


class LoggingSettings(BaseModel):
    model_config = _SECTION

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="The least severe level logged."
    )
    format: Literal["json", "console"] = Field(
        default="json",
        description="`json`: one object a line, for a log collector; `console`: lines for "
        "people at a terminal.",
    )


class Settings(BaseSettings):
    """The whole configuration (service-interface.md, "Configuration")."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database_url: DatabaseUrl = Field(
        default=DEFAULT_DATABASE_URL,
        description="The database: `sqlite+aiosqlite:///PATH` (one process) or "
        "`postgresql+asyncpg://USER:PASSWORD@HOST:PORT/NAME` (any number of workers); "
        "`sqlite://` and `postgresql://` are given their async drivers. "
        "`dossier-sync db upgrade` migrates it; nothing else does.",
    )
    api: ApiSettings = Field(
        default=ApiSettings(), description="The HTTP API that `dossier-sync serve` answers."
    )
    portal: PortalSettings = Field(
        default=PortalSettings(),
        description="The National Public Service Portal (DVCQG) the service pushes to and "
        "reads back from.",
    )
    sources: list[SourceSettings] = Field(
        default_factory=list,
        description="The source systems to poll, one `[[sources]]` table each. Each is "
        "polled by one process at a time, whichever holds its lease.",
    )
    sync: SyncSettings = Field(
        default=SyncSettings(), description="Pushing to the portal, retries, leases, read-back."
    )
    logging: LoggingSettings = Field(
        default=LoggingSettings(),
        description="Logs: structured, on standard error, with personal data masked.",
    )

    @model_validator(mode="after")
    def _sources_are_served(self) -> Self:
        names: set[str] = set()
        units = {account.unit for account in self.portal.accounts}
        for index, source in enumerate(self.sources):
            if source.name in names:
                raise ValueError(f"sources[{index}].name: {source.name!r} is used twice")
            names.add(source.name)
            for position, agency in enumerate(source.agencies):
                if unit_of(agency) not in units:
                    raise ValueError(
                        f"sources[{index}].agencies[{position}]: {agency} belongs to unit "
                        f"{unit_of(agency)}, which has no [[portal.accounts]] entry"
                    )
        return self

    @model_validator(mode="after")
    def _poll_lease_outlasts_intervals(self) -> Self:
        lease = self.sync.poll_lease_s
        for index, source in enumerate(self.sources):
            if lease is not None and lease <= source.poll_interval_s:
                # Each poll renews the lease: were it shorter than the interval, it would
                # lapse between polls and the source wander from worker to worker.
                raise ValueError(
                    f"sync.poll_lease_s: {lease:g} s does not outlast "
                    f"sources[{index}].poll_interval_s ({source.poll_interval_s:g} s)"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges file and environment itself and passes the result as init
        # arguments: pydantic-settings' env source cannot address list items
        # (DOSSIER_SYNC_PORTAL__ACCOUNTS__0__PASSWORD), and secrets usually live there.
        return (init_settings,)


def load_settings(config_file: Path | None = None) -> Settings:
    """Read the configuration or raise :class:`ConfigError` naming every bad key."""
    if config_file is None and os.environ.get(CONFIG_PATH_ENV):
        config_file = Path(os.environ[CONFIG_PATH_ENV])
    values = _read_toml(config_file) if config_file is not None else {}
    for name, path, raw in _env_overrides(os.environ):
        _apply_override(values, name, path, raw)
    try:
        return Settings(**values)
    except ValidationError as exc:
        origin = f" ({config_file} and environment)" if config_file else ""
        lines = [f"configuration error{origin}:"]
        lines += [f"  {_describe(err)}" for err in exc.errors(include_url=False)]
        raise ConfigError("\n".join(lines)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration error: file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration error in {path}: not valid TOML: {exc}") from None


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, list[str], str]]:
    """``DOSSIER_SYNC_PORTAL__ACCOUNTS__0__PASSWORD=x`` → ("…", ["portal", "accounts", "0",
    "password"], "x"), sorted so that list items are filled in index order."""
    top_level = set(Settings.model_fields)
    found = []
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _RESERVED_ENV:
            continue
        if name.startswith(_RESERVED_ENV_PREFIXES):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if path[0] not in top_level:
            raise ConfigError(
                f"configuration error: environment variable {name}: unknown setting "
                f"{path[0]!r} (known: {', '.join(sorted(top_level))})"
            )
        found.append((name, path, value))
    return sorted(found, key=lambda item: [int(p) if p.isdigit() else -1 for p in item[1]])


def _apply_override(tree: dict[str, Any], name: str, path: list[str], raw: str) -> None:
    value: Any = raw
    if raw[:1] in "[{":
        # Lists and tables are given as JSON, as pydantic-settings does.
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(f"configuration error: {name}: not valid JSON") from None
    node: Any = tree
    for position, segment in enumerate(path):
        last = position == len(path) - 1
        if isinstance(node, list):
            if not segment.isdigit() or int(segment) > len(node):
                raise ConfigError(
                    f"configuration error: {name}: {segment!r} is not an index of the "
                    f"{len(node)} item(s) configured at {_loc(tuple(path[:position]))}"
                )
            index = int(segment)
            if index == len(node):
                node.append(value if last else {})
            elif last:
                node[index] = value
            node = node[index]
        elif isinstance(node, dict):
            if last:
                node[segment] = value
            else:
                # A digit after a list is an index; after a table (``status_map``,
                # ``agency_map``) it is a key: DVCLT's "1001", a source status "11".
                is_list = path[position + 1].isdigit() and not _is_table(path[: position + 1])
                node = node.setdefault(segment, [] if is_list else {})
        else:
            raise ConfigError(
                f"configuration error: {name}: {_loc(tuple(path[:position]))} "
                "is a value, not a section"
            )


def _is_table(path: list[str]) -> bool:
    """Whether the setting at ``path`` (lower-case names, list indexes as digits) is a
    table of free keys, by the settings models' annotations."""
    model: type[BaseModel] | None = Settings
    annotation: Any = None
    for segment in path:
        if segment.isdigit():
            continue  # an item of the list named before: ``model`` is already its type
        if model is None or segment not in model.model_fields:
            return False
        annotation = model.model_fields[segment].annotation
        inner = get_args(annotation)[0] if get_origin(annotation) is list else annotation
        model = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None
    return get_origin(annotation) is dict


def _describe(err: Mapping[str, Any]) -> str:
    loc = _loc(tuple(err["loc"]))
    message = str(err["msg"]).removeprefix("Value error, ")
    # Validators that check several fields name the offending one at the start of their
    # message ("auth.client_id: required …"); join it to the location.
    head, sep, rest = message.partition(": ")
    if err["type"] == "value_error" and sep and _RELATIVE_PATH.fullmatch(head):
        if loc == "(root)":
            return f"{head}: {rest}"
        return f"{loc}{head if head.startswith('[') else '.' + head}: {rest}"
    return f"{loc}: {message}"


_RELATIVE_PATH = re.compile(r"[A-Za-z_][\w]*(?:\[\d+\]|\.[A-Za-z_][\w]*)*")


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out = f"{out}.{item}" if out else item
    return out or "(root)"

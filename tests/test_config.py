"""Configuration: defaults, TOML, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import DEFAULT_DATABASE_URL, ConfigError, Settings, load_settings

pytestmark = pytest.mark.usefixtures("clean_environment")

FULL = """
database_url = "postgresql://sync@127.0.0.1:5432/dossier_sync"

[api]
host = "0.0.0.0"
port = 8080

[portal]
base_url = "http://127.0.0.1:8900"
timeout_s = 5
max_batch = 50

[[portal.accounts]]
unit = "000.00.00.H26"
username = "h26"
password = "from-file"

[[portal.accounts]]
unit = "000.00.00.G05"
username = "g05"
password = "g05-secret"

[[sources]]
name = "h26-igate"
dialect = "igate"
base_url = "http://127.0.0.1:9101"
agencies = ["000.00.00.H26"]
poll_interval_s = 2.0
page_size = 200
[sources.auth]
client_id = "demo"
client_secret = "demo"
[sources.status_map]
"11" = "4"

[[sources]]
name = "g05-dvclt"
dialect = "dvclt"
base_url = "http://127.0.0.1:9103"
agencies = ["000.00.12.G05"]
[sources.auth]
username = "demo"
password = "demo"
[sources.agency_map]
"12" = "000.00.12.G05"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dossier-sync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    return str(caught.value)


def test_defaults_need_no_file_and_use_sqlite() -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.sources == [] and settings.portal.accounts == []
    assert (settings.api.host, settings.api.port) == ("127.0.0.1", 8000)
    assert settings.portal.max_batch == 100


def test_a_full_file_loads(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL))
    assert settings.database_url == "postgresql+asyncpg://sync@127.0.0.1:5432/dossier_sync"
    assert settings.api.port == 8080
    assert [a.unit for a in settings.portal.accounts] == ["000.00.00.H26", "000.00.00.G05"]
    igate, dvclt = settings.sources
    assert igate.status_map == {"11": "4"} and igate.secret("client_secret") == "demo"
    assert dvclt.agency_map == {"12": "000.00.12.G05"}


def test_secrets_are_not_printed(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL))
    dumped = settings.model_dump_json() + repr(settings)
    assert "from-file" not in dumped and "g05-secret" not in dumped


def test_environment_overrides_file_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOSSIER_SYNC_DATABASE_URL", "sqlite:////tmp/other.db")
    monkeypatch.setenv("DOSSIER_SYNC_PORTAL__TIMEOUT_S", "2.5")
    monkeypatch.setenv("DOSSIER_SYNC_API__PORT", "9000")
    monkeypatch.setenv("DOSSIER_SYNC_PORTAL__ACCOUNTS__0__PASSWORD", "from-env")
    monkeypatch.setenv("DOSSIER_SYNC_SOURCES__1__AUTH__PASSWORD", "dvclt-env")
    settings = load_settings(write(tmp_path, FULL))
    assert settings.database_url == "sqlite+aiosqlite:////tmp/other.db"
    assert settings.portal.timeout_s == 2.5
    assert settings.api.port == 9000
    assert settings.portal.accounts[0].password.get_secret_value() == "from-env"
    assert settings.portal.accounts[0].username == "h26"  # the rest of the item stays
    assert settings.sources[1].secret("password") == "dvclt-env"


def test_environment_sets_one_key_of_a_table_whose_keys_are_digits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status of the source or a DVCLT unit number is a table key, not a list index:
    one can be added from the environment even where the file has no such table."""
    without_tables = FULL.replace('[sources.status_map]\n"11" = "4"\n', "")
    monkeypatch.setenv("DOSSIER_SYNC_SOURCES__0__STATUS_MAP__11", "4")
    monkeypatch.setenv("DOSSIER_SYNC_SOURCES__0__STATUS_MAP__12", "5")
    monkeypatch.setenv("DOSSIER_SYNC_SOURCES__1__AGENCY_MAP__1001", "000.00.12.G05")
    settings = load_settings(write(tmp_path, without_tables))
    assert "status_map" not in without_tables
    assert settings.sources[0].status_map == {"11": "4", "12": "5"}
    assert settings.sources[1].agency_map == {"12": "000.00.12.G05", "1001": "000.00.12.G05"}


def test_environment_alone_can_configure_lists_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DOSSIER_SYNC_PORTAL__ACCOUNTS",
        '[{"unit": "000.00.00.H29", "username": "h29", "password": "x"}]',
    )
    assert load_settings().portal.accounts[0].unit == "000.00.00.H29"


def test_config_path_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOSSIER_SYNC_CONFIG", str(write(tmp_path, FULL)))
    assert load_settings().api.port == 8080


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('databse_url = "x"', "databse_url"),
        ("[api]\nprot = 1", "api.prot"),
        ("[api]\nport = 70000", "api.port"),
        ('database_url = "mysql://x"', "database_url"),
        ('[portal]\nbase_url = "not a url"', "portal.base_url"),
        ("[portal]\nmax_batch = 101", "portal.max_batch"),
        (
            '[[portal.accounts]]\nunit = "000.00.53.H26"\nusername = "u"\npassword = "p"',
            "portal.accounts[0].unit",
        ),
        (
            '[[sources]]\nname = "s"\ndialect = "vnpt"\nbase_url = "http://x"\n'
            'agencies = ["000.00.00.H26"]',
            "sources[0].dialect",
        ),
        (
            '[[sources]]\nname = "s"\ndialect = "igate"\nbase_url = "http://x"\n'
            'agencies = ["H26"]\n[sources.auth]\nclient_id = "a"\nclient_secret = "b"',
            "sources[0].agencies[0]",
        ),
        (
            '[[sources]]\nname = "s"\ndialect = "igate"\nbase_url = "http://x"\n'
            'agencies = ["000.00.00.H26"]\n[sources.auth]\nclient_id = "a"\nclient_secrt = "b"',
            "sources[0].auth.client_secrt",
        ),
        (
            '[[sources]]\nname = "s"\ndialect = "igate"\nbase_url = "http://x"\n'
            'agencies = ["000.00.00.H26"]\n[sources.auth]\nclient_id = "a"',
            "sources[0].auth.client_secret",
        ),
        (
            '[[sources]]\nname = "s"\ndialect = "igate"\nbase_url = "http://x"\n'
            'agencies = ["000.00.00.H26"]\n[sources.auth]\nclient_id = "a"\nclient_secret = "b"\n'
            '[sources.status_map]\n"11" = "11"',
            "sources[0].status_map.11",
        ),
        ("[sync]\nmax_attempts = 0", "sync.max_attempts"),
        ('[logging]\nlevel = "LOUD"', "logging.level"),
    ],
)
def test_a_bad_key_or_value_is_named(tmp_path: Path, toml: str, named: str) -> None:
    message = error_of(tmp_path, toml)
    assert f"  {named}:" in message


def test_a_source_whose_agencies_have_no_account_is_refused(tmp_path: Path) -> None:
    text = FULL.replace('agencies = ["000.00.00.H26"]', 'agencies = ["000.00.53.H29"]')
    message = error_of(tmp_path, text)
    assert "sources[0].agencies[0]: 000.00.53.H29 belongs to unit 000.00.00.H29" in message


def test_two_sources_with_one_name_are_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, FULL.replace('name = "g05-dvclt"', 'name = "h26-igate"'))
    assert "sources[1].name: 'h26-igate' is used twice" in message


def test_unknown_environment_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOSSIER_SYNC_DATABSE_URL", "sqlite:///x")
    with pytest.raises(ConfigError, match="DOSSIER_SYNC_DATABSE_URL: unknown setting"):
        load_settings()


def test_environment_index_beyond_the_list_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOSSIER_SYNC_PORTAL__ACCOUNTS__3__PASSWORD", "x")
    with pytest.raises(ConfigError, match="DOSSIER_SYNC_PORTAL__ACCOUNTS__3__PASSWORD"):
        load_settings()


def test_missing_and_malformed_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "absent.toml")
    assert "not valid TOML" in error_of(tmp_path, "[api\nport = 1")


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.database_url = "sqlite:///x"  # type: ignore[misc]

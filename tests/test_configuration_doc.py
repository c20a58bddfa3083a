"""docs/configuration.md is generated from the settings models (app/configdoc.py): it is
current, it names every setting with its environment variable, and every setting has a
description to show there."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import get_args, get_origin

import pytest
from pydantic import BaseModel

from app.config import ENV_PREFIX, Settings
from app.configdoc import REGENERATE, main, render

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"


def settings_fields(
    model: type[BaseModel] = Settings, path: tuple[str, ...] = (), env: str = ENV_PREFIX
) -> Iterator[tuple[str, str, bool]]:
    """(dotted path, environment variable, is a section) of every field of the settings,
    found independently of the generator."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        item = get_args(annotation)[0] if get_origin(annotation) is list else None
        dotted = ".".join((*path, name))
        variable = f"{env}{name.upper()}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield dotted, variable, True
            yield from settings_fields(annotation, (*path, name), f"{variable}__")
        elif isinstance(item, type) and issubclass(item, BaseModel):
            yield dotted, variable, True
            yield from settings_fields(item, (*path, name), f"{variable}__<n>__")
        else:
            yield dotted, variable, False


def test_the_document_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        f"docs/configuration.md is stale: regenerate it with `{REGENERATE}`"
    )


def test_every_setting_appears_with_its_environment_variable() -> None:
    text = DOC.read_text(encoding="utf-8")
    leaves = [(p, v) for p, v, section in settings_fields() if not section]
    assert len(leaves) > 30
    for path, variable in leaves:
        key = path.rsplit(".", 1)[-1]
        assert f"| `{key}` |" in text, path
        assert f"`{variable}`" in text, path
    for path, _, section in settings_fields():
        if section:
            assert re.search(rf"^## `\[\[?{re.escape(path)}\]\]?`$", text, re.MULTILINE), path


def test_list_items_are_addressed_by_index() -> None:
    text = render()
    assert "`DOSSIER_SYNC_PORTAL__ACCOUNTS__<n>__PASSWORD`" in text
    assert "`DOSSIER_SYNC_SOURCES__<n>__AUTH__<KEY>`" in text
    assert "## `[[sources]]`" in text
    assert "## `[portal]`" in text


def test_every_setting_has_a_description() -> None:
    def fields(model: type[BaseModel]) -> Iterator[tuple[str, str | None]]:
        for name, field in model.model_fields.items():
            yield f"{model.__name__}.{name}", field.description
            for candidate in (field.annotation, *get_args(field.annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    yield from fields(candidate)

    missing = [name for name, description in fields(Settings) if not (description or "").strip()]
    assert not missing, f"add description= to these fields in app/config.py: {missing}"


def test_check_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(render().replace("`[sync]`", "`[synced]`"), encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert main(["--check", str(tmp_path / "absent.md")]) == 1
    stale.write_text(render(), encoding="utf-8")
    assert main(["--check", str(stale)]) == 0


def test_the_module_prints_the_document() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.configdoc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == render()

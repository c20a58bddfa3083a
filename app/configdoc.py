"""docs/configuration.md, generated from the settings models of :mod:`app.config`.

The models are the one source of truth: their fields, types, defaults, bounds and
``description=`` texts become one table per TOML section, each key with the environment
variable that overrides it. ``python -m app.configdoc`` prints the document;
``python -m app.configdoc --check docs/configuration.md`` exits 1 when the file is stale
(``tests/test_configuration_doc.py`` checks the same).

Pure: it reads the model classes, never a configuration, a file or the environment.
"""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import AfterValidator, AnyHttpUrl, BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from app.config import ENV_PREFIX, Settings

DOC_PATH = Path("docs/configuration.md")
REGENERATE = "python -m app.configdoc > docs/configuration.md"

# The string types of app.config are plain ``str`` checked by an AfterValidator; its
# function's name is what tells a unit code from any other string.
_VALIDATED = {
    "_database_url": "database URL",
    "_unit_code": "unit code",
    "_agency_code": "agency code",
    "_status_code": "status code",
}
_SCALARS: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    AnyHttpUrl: "URL",
    SecretStr: "secret",
}


@dataclass(frozen=True, slots=True)
class Key:
    """One setting: a row of its section's table."""

    name: str
    env: str
    type: str
    default: str
    description: str


@dataclass(frozen=True, slots=True)
class Section:
    """One TOML table (``[portal]``) or array of tables (``[[sources]]``)."""

    path: tuple[str, ...]  # () for the top level
    repeated: bool
    env_prefix: str  # DOSSIER_SYNC_SOURCES__<n>__
    description: str
    keys: tuple[Key, ...]

    @property
    def title(self) -> str:
        if not self.path:
            return "Top level"
        dotted = ".".join(self.path)
        return f"`[[{dotted}]]`" if self.repeated else f"`[{dotted}]`"


def sections(model: type[BaseModel] = Settings) -> list[Section]:
    """Every section of ``model``, depth first in field order (a section's own keys,
    then its sub-sections)."""
    return list(_walk(model, (), repeated=False, env_prefix=ENV_PREFIX, description=""))


def _walk(
    model: type[BaseModel],
    path: tuple[str, ...],
    *,
    repeated: bool,
    env_prefix: str,
    description: str,
) -> Iterator[Section]:
    keys: list[Key] = []
    nested: list[tuple[str, type[BaseModel], bool, FieldInfo]] = []
    for name, field in model.model_fields.items():
        section = _section_model(field.annotation)
        if section is not None:
            nested.append((name, section[0], section[1], field))
            continue
        keys.append(
            Key(
                name=name,
                env=_env(env_prefix, name, field.annotation),
                type=_type(field.annotation, field.metadata),
                default=_default(field),
                description=field.description or "",
            )
        )
    yield Section(path, repeated, env_prefix, description, tuple(keys))
    for name, sub, is_list, field in nested:
        prefix = f"{env_prefix}{name.upper()}__" + ("<n>__" if is_list else "")
        yield from _walk(
            sub,
            (*path, name),
            repeated=is_list,
            env_prefix=prefix,
            description=field.description or "",
        )


def _section_model(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """(model, is a list of it) when the field is a table or an array of tables."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item, True
    return None


def _env(prefix: str, name: str, annotation: Any) -> str:
    variable = f"`{prefix}{name.upper()}`"
    origin = get_origin(_without_none(annotation))
    if origin is list:
        return f"{variable} (a JSON list), or items `…__{name.upper()}__<i>`"
    if origin is dict:
        return f"`{prefix}{name.upper()}__<KEY>`, or the table as JSON at {variable}"
    return variable


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _type(annotation: Any, metadata: Sequence[Any]) -> str:
    optional = _without_none(annotation) is not annotation
    label = _label(_without_none(annotation), metadata)
    bounds = _bounds(metadata, is_list=get_origin(annotation) is list)
    text = ", ".join([label, *bounds])
    return f"{text}, or unset" if optional else text


def _label(annotation: Any, metadata: Sequence[Any]) -> str:
    for item in metadata:
        if isinstance(item, AfterValidator):
            name = getattr(item.func, "__name__", "")
            if name in _VALIDATED:
                return _VALIDATED[name]
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return _label(inner, extra)
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in get_args(annotation))
    if origin is list:
        (item,) = get_args(annotation)
        return f"list of {_plural(_label(item, ()))}"
    if origin is dict:
        _key, value = get_args(annotation)
        return f"table of {_plural(_label(value, ()))}"
    return _SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plural(label: str) -> str:
    return label if label.startswith(("one of", "list", "table")) else label + "s"


def _bounds(metadata: Sequence[Any], *, is_list: bool) -> list[str]:
    found: list[str] = []
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            found.append(f"≥ {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            found.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Le):
            found.append(f"≤ {item.le}")
        elif isinstance(item, annotated_types.Lt):
            found.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.MinLen):
            unit = "item" if is_list else "character"
            found.append(f"at least {item.min_length} {unit}{'s' * (item.min_length != 1)}")
        elif isinstance(item, annotated_types.MaxLen):
            unit = "items" if is_list else "characters"
            found.append(f"at most {item.max_length} {unit}")
        elif getattr(item, "pattern", None):
            found.append(f"matching `{item.pattern}`")
    return found


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"`{value!r}`"
    if isinstance(value, list | dict) and not value:
        return f"`{value!r}`"
    return f'`"{value}"`'


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


INTRO = f"""\
# Configuration reference

<!-- Generated from the settings models in app/config.py: do not edit by hand.
     Regenerate with `{REGENERATE}`;
     tests/test_configuration_doc.py fails while this file is stale. -->

The service reads one TOML file (`--config FILE`, else the file named by
`DOSSIER_SYNC_CONFIG`), then the environment, which wins. With neither, the defaults
below run `serve` on SQLite in the working directory. An unknown key (in the file or
the environment) or a bad value stops start-up with a message naming the key; the
service never starts half-configured. `dossier-sync check-config [--config FILE]`
validates a configuration and prints it with secrets hidden. The shape of the file, with
an example, is in `service-interface.md`; how to run the service with it is in
[operations.md](operations.md).

Environment variables:

- `DOSSIER_SYNC_<KEY>` sets a top-level key, `DOSSIER_SYNC_<SECTION>__<KEY>` a key of a
  section (two underscores between levels).
- Items of a list are addressed by index, from 0 (`<n>` below):
  `DOSSIER_SYNC_PORTAL__ACCOUNTS__0__PASSWORD`,
  `DOSSIER_SYNC_SOURCES__1__AUTH__CLIENT_SECRET`. This is where secrets usually go. An
  index one past the items of the file adds an item.
- A list or a table may be given whole as JSON:
  `DOSSIER_SYNC_SOURCES__0__AGENCIES='["000.00.00.H26"]'`.
- A key of a table is addressed by name, digits included:
  `DOSSIER_SYNC_SOURCES__0__STATUS_MAP__11=4` maps the source's status 11,
  `DOSSIER_SYNC_SOURCES__2__AGENCY_MAP__1001=000.00.03.G05` a DVCLT `maDonVi`, whether or
  not the file has that table.
- `DOSSIER_SYNC_CONFIG` names the file; `DOSSIER_SYNC_TEST_*` belong to the test suite.
  Any other `DOSSIER_SYNC_*` name that is not a setting stops start-up.

Types: a *secret* is never printed (`check-config` shows `**********`); a *unit code* is
a top-level unit such as `000.00.00.H26`, an *agency code* one of its agencies such as
`000.00.53.H26`, a *status code* a `TrangThaiHoSo` value `"1"` to `"10"`.
"""


def render() -> str:
    """The whole of docs/configuration.md."""
    parts = [INTRO]
    for section in sections():
        parts.append(f"\n## {section.title}\n")
        if section.description:
            parts.append(f"\n{section.description}\n")
        if not section.keys:
            continue
        parts.append("\n| key | type | default | environment variable | description |\n")
        parts.append("|---|---|---|---|---|\n")
        for key in section.keys:
            cells = (f"`{key.name}`", key.type, key.default, key.env, key.description)
            parts.append("| " + " | ".join(_cell(c) for c in cells) + " |\n")
    return "".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.configdoc",
        description="Print docs/configuration.md, generated from app/config.py.",
    )
    parser.add_argument(
        "--check",
        metavar="PATH",
        type=Path,
        help="Compare PATH with the generated document instead; exit 1 when it differs.",
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check is None:
        sys.stdout.write(text)
        return 0
    try:
        current = args.check.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    if current == text:
        return 0
    sys.stderr.write(f"{args.check} is stale or missing; regenerate it: {REGENERATE}\n")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())

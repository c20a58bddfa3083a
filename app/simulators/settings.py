"""What a simulator is started with, and which of it may change while it runs."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.domain.agency import is_top_level_unit

Dialect = Literal["opencps", "igate", "dvclt"]
DIALECTS: tuple[Dialect, ...] = ("opencps", "igate", "dvclt")

DEFAULT_UNITS: tuple[str, ...] = ("000.00.00.H26", "000.00.00.H29", "000.00.00.G05")

Share = float

# The awkward cases and the rates: the only settings `PATCH /_sim/settings` may change.
# Seed, size, units and clock shape the world itself; they change through a reset.
RUNTIME_FIELDS: frozenset[str] = frozenset(
    {
        "ties",
        "moves_per_list_request",
        "unmapped_share",
        "bad_data_share",
        "duplicates_share",
        "out_of_order_share",
        "token_ttl_s",
        "changes_per_second",
        "latency_ms",
    }
)


class SimulatorSettings(BaseModel):
    """A simulator's configuration. The defaults are *clean*: every awkward case is off,
    so a test opts into exactly the trouble it wants; :meth:`awkward` gives the command
    line's defaults (every case on at a small share)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    dossiers: int = Field(100, ge=0, le=200_000, description="Dossiers in the initial world.")
    units: tuple[str, ...] = Field(
        DEFAULT_UNITS, min_length=1, description="Top-level units whose agencies own dossiers."
    )
    clock: Literal["manual", "real"] = Field(
        "manual",
        description="manual: starts at 2024-05-13 08:00:00 (Asia/Ho_Chi_Minh) and moves only "
        "when the world changes (0-3 s per change); real: the wall clock.",
    )
    changes_per_second: float = Field(0.0, ge=0, le=100_000)
    latency_ms: float = Field(
        0.0,
        ge=0,
        le=60_000,
        description="Delay before answering each request of the dialect (not `/_sim`): a "
        "source across a network rather than on loopback.",
    )

    # --- awkward cases -------------------------------------------------------------------
    ties: bool = Field(
        False,
        description="Bulk actions: many dossiers share one modification time (initial data "
        "and background changes), and single changes may land on the previous one's time.",
    )
    moves_per_list_request: int = Field(
        0, ge=0, le=1000, description="Dossiers changed before answering each list request."
    )
    unmapped_share: Share = Field(
        0.0,
        ge=0,
        le=1,
        description="opencps, igate: share of dossiers parked for a while in a status "
        "outside the default mapping (collecting/pausing, 11).",
    )
    bad_data_share: Share = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of records (dvclt: messages) carrying an unparsable date or an "
        "invalid phone or e-mail; a later change may fix it.",
    )
    duplicates_share: Share = Field(
        0.0, ge=0, le=1, description="dvclt: share of messages delivered twice (two ids)."
    )
    out_of_order_share: Share = Field(
        0.0,
        ge=0,
        le=1,
        description="dvclt: share of messages queued ahead of their dossier's previous one.",
    )
    token_ttl_s: float | None = Field(
        None, gt=0, description="Token lifetime; default 300 s (igate), 900 s (dvclt)."
    )

    # --- credentials (source-dialects.md: demo/demo, groupId 1) ---------------------------
    username: str = "demo"
    password: str = "demo"  # noqa: S105 - the spec's public demo credential
    group_id: str = "1"

    catalogue: dict[str, Any] | None = Field(
        None, description="Procedures and agencies; None: the built-in demo catalogue."
    )

    @field_validator("units")
    @classmethod
    def _top_level_units(cls, units: tuple[str, ...]) -> tuple[str, ...]:
        bad = [u for u in units if not is_top_level_unit(u)]
        if bad:
            raise ValueError(f"not top-level unit codes (000.00.00.Gxx/Hxx): {bad}")
        return units

    @classmethod
    def awkward(cls, **overrides: Any) -> Self:
        """The command line's defaults: every awkward case on, at a small share."""
        values: dict[str, Any] = {
            "ties": True,
            "moves_per_list_request": 1,
            "unmapped_share": 0.02,
            "bad_data_share": 0.02,
            "duplicates_share": 0.05,
            "out_of_order_share": 0.05,
        }
        return cls.model_validate(values | overrides)

    def runtime(self) -> dict[str, Any]:
        """The settings `GET /_sim/settings` shows (the runtime ones first)."""
        return self.model_dump(include=set(RUNTIME_FIELDS) | {"seed", "dossiers", "clock", "units"})

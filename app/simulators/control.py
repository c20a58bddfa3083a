"""``/_sim/...``: the simulator's own control API (no authentication; it is a test tool
and the real systems have nothing like it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.simulators.core import route_name, simulator_of
from app.simulators.world import Key


def _count(request: Request) -> None:
    simulator_of(request).count(route_name(request))


router = APIRouter(prefix="/_sim", tags=["simulator control"], dependencies=[Depends(_count)])


class MutateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(1, ge=0, le=100_000, description="Changes to apply.")
    bulk: int = Field(
        1, ge=1, le=100_000, description="Changes per timestamp (a bulk action; ≤ 500 each)."
    )


class MutateAnswer(BaseModel):
    changed: list[Key]


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int | None = None
    dossiers: int | None = Field(None, ge=0, le=200_000)


class SettingsPatch(BaseModel):
    """The settings that may change while the simulator runs; omitted ones stay."""

    model_config = ConfigDict(extra="forbid")

    ties: bool | None = None
    moves_per_list_request: int | None = Field(None, ge=0, le=1000)
    unmapped_share: float | None = Field(None, ge=0, le=1)
    bad_data_share: float | None = Field(None, ge=0, le=1)
    duplicates_share: float | None = Field(None, ge=0, le=1)
    out_of_order_share: float | None = Field(None, ge=0, le=1)
    token_ttl_s: float | None = Field(None, gt=0, description="null: the dialect's default.")
    changes_per_second: float | None = Field(None, ge=0, le=100_000)
    latency_ms: float | None = Field(None, ge=0, le=60_000)


@router.get("/truth")
async def truth(request: Request) -> dict[str, Any]:
    """Everything the simulator holds, as the dialect serves it, plus what a correct
    connector should make of each dossier.

    `{"dialect", "now", "agency_map" (dvclt: maDonVi → agency code, else null),
    "dossiers": [{"key", "ma_ho_so", "record", <history>, "expected": {"MaHoSo",
    "TrangThaiHoSo", "valid", "history_statuses"}}]}` where `key` is the source's own id
    (OpenCPS dossierId, iGate id, DVCLT maHoSo), `record` the dossier exactly as the
    list/search/detail endpoint returns it now, and `<history>` the dialect's own form:
    `files` and `actions` (opencps), `history` (igate), `messages` (dvclt: every message
    ever sent, acknowledged or not, in time order). `expected.TrangThaiHoSo` is the portal
    status under the spec's default mapping (null while the status is unmapped),
    `valid` is false while the record carries deliberately broken data.
    """
    return simulator_of(request).truth()


@router.post("/mutate")
async def mutate(body: MutateRequest, request: Request) -> MutateAnswer:
    """Apply `count` life-cycle steps to random unfinished dossiers (about one in five
    brings a new dossier instead), `bulk` of them per timestamp. Answers the keys
    changed."""
    return MutateAnswer(changed=simulator_of(request).mutate(body.count, body.bulk))


@router.post("/reset")
async def reset(body: ResetRequest, request: Request) -> dict[str, Any]:
    """Rebuild the world from a seed (default: the current one) with `dossiers` dossiers
    (default: the current number). Awkward-case settings and tokens are kept."""
    world = simulator_of(request).world
    with world.lock:
        world.reset(body.seed, body.dossiers)
        return {"seed": world.settings.seed, "dossiers": len(world.dossiers)}


@router.get("/settings")
async def get_settings(request: Request) -> dict[str, Any]:
    """The current settings: the awkward cases, the change rate and the token lifetime
    (changeable with PATCH), and the world's seed, size, units and clock."""
    return simulator_of(request).settings.runtime()


@router.patch("/settings")
async def patch_settings(body: SettingsPatch, request: Request) -> dict[str, Any]:
    """Change awkward cases, the background change rate, the token lifetime or the
    answers' latency at run time. Only the fields sent change; `token_ttl_s: null`
    restores the default."""
    changes = body.model_dump(include=body.model_fields_set)
    changes = {k: v for k, v in changes.items() if v is not None or k == "token_ttl_s"}
    try:
        return simulator_of(request).update_settings(changes).runtime()
    except ValidationError as exc:  # pragma: no cover - SettingsPatch already checks
        raise HTTPException(400, str(exc)) from None


@router.post("/expire-tokens")
async def expire_tokens(request: Request) -> dict[str, int]:
    """Invalidate every token issued so far: the next call with one gets 401."""
    return {"expired": simulator_of(request).tokens.expire_all()}


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    """Dossiers (by abstract state, and how many sit in an unmapped status), mutations
    applied, requests served per endpoint, and unacknowledged messages (dvclt)."""
    return simulator_of(request).stats()

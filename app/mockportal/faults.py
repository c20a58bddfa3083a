"""Fault injection (contract §9): selector + action + schedule.

Rules are evaluated in the order they were added; the first whose selector matches the
request and whose schedule fires decides the fault. A rule's schedule advances on each
request its selector matched that no earlier rule took (so ``first_n: 2`` means the first
two such requests).
Randomness is per rule and seeded, so a fault scenario replays identically.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ActionType = Literal[
    "latency",
    "http_error",
    "rate_limit",
    "expire_session",
    "hang",
    "drop",
    "commit_then_drop",
    "ack_then_lose",
    "reject",
]

# The item-level codes a ``reject`` rule may answer: the permanent refusals of contract §6
# that concern one item (``-9`` and ``-1`` concern the whole request).
RejectCode = Literal[-5, -6, -10]
# The calls whose items a ``reject`` rule refuses (the only ones a reject rule selects).
REJECTABLE_SERVICES = frozenset({"DongBoHoSoMC", "CapNhatTienDoHoSoMC"})

_STRICT = ConfigDict(extra="forbid")


class FaultSelector(BaseModel):
    """Which requests a rule applies to; every given condition must hold."""

    model_config = _STRICT

    agency: str | None = Field(
        default=None,
        description="A unit or agency code: matches the calling unit (dstcode/madonvi) or "
        "the agency owning any dossier in the request.",
        examples=["000.00.00.H26"],
    )
    service: str | None = Field(
        default=None,
        description="auth, DongBoHoSoMC, CapNhatTienDoHoSoMC, TraCuuHoSo, LayThuTuc, …",
        examples=["DongBoHoSoMC"],
    )
    ma_ho_so_prefix: str | None = Field(
        default=None,
        description="Matches a request carrying any MaHoSo that starts with it.",
        examples=["000.00.53.H26-2401"],
    )


class FaultAction(BaseModel):
    """What happens to a selected request."""

    model_config = _STRICT

    type: ActionType = Field(
        description="latency: wait, then answer normally; http_error: answer 502/503/504 "
        "(nothing stored); rate_limit: 429 with Retry-After; expire_session: end the "
        "caller's session, then answer (so -2); hang: never answer, until the client gives "
        "up; drop: close the connection before answering; commit_then_drop: store, then "
        "close without answering; ack_then_lose: answer success, store nothing; reject: "
        "refuse the request's items that the selector's ma_ho_so_prefix matches (every item "
        "without a prefix) with error_code, process the others (DongBoHoSoMC and "
        "CapNhatTienDoHoSoMC calls only)."
    )
    latency_ms: float | None = Field(default=None, ge=0, description="latency: fixed delay")
    latency_max_ms: float | None = Field(
        default=None, ge=0, description="latency: if set, a random delay in [latency_ms, this]"
    )
    status: Literal[502, 503, 504] | None = Field(
        default=None, description="http_error: the status (default 503)"
    )
    retry_after_s: float | None = Field(
        default=None, ge=0, description="rate_limit: Retry-After in seconds (default 1)"
    )
    error_code: RejectCode | None = Field(
        default=None,
        description="reject: the permanent item error answered, -5, -6 or -10 (default -5)",
    )

    @model_validator(mode="after")
    def _latency_given(self) -> Self:
        if self.type == "latency" and self.latency_ms is None:
            raise ValueError("latency_ms is required for a latency action")
        if self.latency_max_ms is not None and (self.latency_ms or 0) > self.latency_max_ms:
            raise ValueError("latency_max_ms must be ≥ latency_ms")
        if self.error_code is not None and self.type != "reject":
            raise ValueError("error_code is only for a reject action")
        return self


SEQUENCE_STEPS = {
    "ok": None,
    "502": FaultAction(type="http_error", status=502),
    "503": FaultAction(type="http_error", status=503),
    "504": FaultAction(type="http_error", status=504),
    "429": FaultAction(type="rate_limit"),
    "expire_session": FaultAction(type="expire_session"),
    "hang": FaultAction(type="hang"),
    "drop": FaultAction(type="drop"),
    "commit_then_drop": FaultAction(type="commit_then_drop"),
    "ack_then_lose": FaultAction(type="ack_then_lose"),
}


def parse_step(step: str) -> FaultAction | None:
    """A sequence step: ``ok``, ``502``/``503``/``504``, ``429``, ``429:5`` (Retry-After 5),
    ``latency:250``, ``drop``, ``hang``, ``expire_session``, ``commit_then_drop``,
    ``ack_then_lose``."""
    name, _, argument = step.partition(":")
    if name == "latency" and argument:
        return FaultAction(type="latency", latency_ms=float(argument))
    if name == "429" and argument:
        return FaultAction(type="rate_limit", retry_after_s=float(argument))
    if argument or name not in SEQUENCE_STEPS:
        raise ValueError(
            f"unknown sequence step {step!r} (known: {', '.join(SEQUENCE_STEPS)}, "
            "latency:MS, 429:SECONDS)"
        )
    return SEQUENCE_STEPS[name]


class FaultSchedule(BaseModel):
    """When a selected request gets the fault."""

    model_config = _STRICT

    kind: Literal["always", "probability", "first_n", "every_nth", "sequence", "window"] = Field(
        description="always; probability (seeded); first_n: the first n selected requests; "
        "every_nth: the n-th, 2n-th, …; sequence: one step per selected request, then ok; "
        "window: while start ≤ now < end"
    )
    probability: float | None = Field(default=None, ge=0, le=1)
    seed: int = Field(default=0, description="probability and random latency: RNG seed")
    n: int | None = Field(default=None, ge=1)
    steps: list[str] | None = Field(default=None, examples=[["503", "503", "ok"]])
    start: datetime | None = None
    end: datetime | None = None

    @field_validator("steps")
    @classmethod
    def _known_steps(cls, steps: list[str] | None) -> list[str] | None:
        for step in steps or []:
            parse_step(step)
        return steps

    @model_validator(mode="after")
    def _parameters_given(self) -> Self:
        needed = {
            "probability": ("probability",),
            "first_n": ("n",),
            "every_nth": ("n",),
            "sequence": ("steps",),
            "window": ("start", "end"),
        }.get(self.kind, ())
        for name in needed:
            if getattr(self, name) is None:
                raise ValueError(f"{name} is required for schedule kind {self.kind!r}")
        if self.kind == "window":
            if self.start is None or self.end is None:
                raise ValueError("window needs start and end")
            if self.start.tzinfo is None or self.end.tzinfo is None:
                raise ValueError("window start and end need a time zone")
            if self.start >= self.end:
                raise ValueError("window start must be before end")
        return self


class FaultRuleIn(BaseModel):
    """A rule as posted to ``/_mock/faults``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "selector": {"agency": "000.00.00.H26", "service": "DongBoHoSoMC"},
                    "action": {"type": "http_error", "status": 503},
                    "schedule": {"kind": "probability", "probability": 0.2, "seed": 7},
                },
                {
                    "selector": {"service": "DongBoHoSoMC"},
                    "schedule": {"kind": "sequence", "steps": ["503", "503", "ok"]},
                },
                {
                    "selector": {"ma_ho_so_prefix": "000.00.53.H26-"},
                    "action": {"type": "ack_then_lose"},
                    "schedule": {"kind": "first_n", "n": 1},
                    "max_uses": 1,
                },
            ]
        },
    )

    selector: FaultSelector = Field(default_factory=FaultSelector)
    action: FaultAction | None = Field(
        default=None, description="Required except for sequence schedules, whose steps name it."
    )
    schedule: FaultSchedule = Field(default_factory=lambda: FaultSchedule(kind="always"))
    max_uses: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="The rule expires after firing this many times."
    )

    @model_validator(mode="after")
    def _action_given(self) -> Self:
        if self.schedule.kind != "sequence" and self.action is None:
            raise ValueError("action is required unless the schedule is a sequence")
        return self


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What fault selectors look at."""

    service: str  # "auth" for /dvcqg/auth
    unit: str | None  # dstcode (or madonvi)
    codes: Sequence[str]  # MaHoSo carried by the request
    agencies: Sequence[str]  # agencies owning those codes


@dataclass(frozen=True, slots=True)
class Fault:
    """A decided fault: which rule, and what to do."""

    rule_id: int
    action: FaultAction
    latency_s: float = 0.0
    ma_ho_so_prefix: str | None = None  # the rule's selector (reject: which items)

    def rejects(self, ma_ho_so: str | None) -> bool:
        """Whether a ``reject`` fault refuses this item."""
        if self.action.type != "reject":
            return False
        prefix = self.ma_ho_so_prefix
        return prefix is None or (ma_ho_so is not None and ma_ho_so.startswith(prefix))

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"rule": self.rule_id, "action": self.action.type}
        if self.action.type == "latency":  # the delay applied (random ones differ per request)
            described["latency_ms"] = round(self.latency_s * 1000, 3)
        return described


@dataclass(slots=True)
class FaultRule:
    id: int
    spec: FaultRuleIn
    selected: int = 0  # requests the selector matched
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random)

    @property
    def expired(self) -> bool:
        return self.spec.max_uses is not None and self.fired >= self.spec.max_uses

    def selects(self, facts: RequestFacts) -> bool:
        selector = self.spec.selector
        if selector.service is not None and selector.service != facts.service:
            return False
        action = self.spec.action
        if (
            action is not None
            and action.type == "reject"
            and facts.service not in (REJECTABLE_SERVICES)
        ):
            return False
        if selector.agency is not None and selector.agency not in (
            facts.unit,
            *facts.agencies,
        ):
            return False
        return selector.ma_ho_so_prefix is None or any(
            code.startswith(selector.ma_ho_so_prefix) for code in facts.codes
        )

    def decide(self, now: datetime) -> FaultAction | None:
        """Advance the schedule by one selected request; the action if it fires."""
        self.selected += 1
        schedule = self.spec.schedule
        action = self.spec.action
        match schedule.kind:
            case "always":
                fires = True
            case "probability":
                fires = self.rng.random() < (schedule.probability or 0.0)
            case "first_n":
                fires = self.selected <= (schedule.n or 0)
            case "every_nth":
                fires = self.selected % (schedule.n or 1) == 0
            case "window":
                start, end = schedule.start, schedule.end
                fires = start is not None and end is not None and start <= now < end
            case "sequence":
                steps = schedule.steps or []
                step = steps[self.selected - 1] if self.selected <= len(steps) else "ok"
                action = parse_step(step)
                fires = action is not None
        return action if fires else None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.spec.model_dump(mode="json", exclude_none=True),
            "selected": self.selected,
            "fired": self.fired,
            "expired": self.expired,
        }


class FaultEngine:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._next_id = 1

    def add(self, spec: FaultRuleIn) -> FaultRule:
        rule = FaultRule(self._next_id, spec, rng=random.Random(spec.schedule.seed))  # noqa: S311
        self._next_id += 1
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        before = len(self.rules)
        self.rules = [rule for rule in self.rules if rule.id != rule_id]
        return len(self.rules) < before

    def clear(self) -> None:
        self.rules.clear()

    def decide(self, facts: RequestFacts, now: datetime) -> Fault | None:
        for rule in self.rules:
            if rule.expired or not rule.selects(facts):
                continue
            action = rule.decide(now)
            if action is None:
                continue
            rule.fired += 1
            prefix = rule.spec.selector.ma_ho_so_prefix
            return Fault(rule.id, action, _latency(action, rule.rng), prefix)
        return None


def _latency(action: FaultAction, rng: random.Random) -> float:
    if action.type != "latency" or action.latency_ms is None:
        return 0.0
    if action.latency_max_ms is None:
        return action.latency_ms / 1000
    return rng.uniform(action.latency_ms, action.latency_max_ms) / 1000

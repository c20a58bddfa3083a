"""The chaos rig: the plan of a run, the processes (mock portal, simulators, workers), the
PostgreSQL cluster, the fault mix, the oracle of what the end state must be, and the
figures of the run."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.demodata import load_demo_catalogue
from app.domain.status import FINAL_STATUSES, DossierStatus
from app.mockportal.testing import MockPortalControl
from app.models import DeadLetter, PushAttempt, Source, SyncState, SyncStatus
from app.servers import free_port
from app.sync.normalise.common import Catalogue, Context, StatusMap
from tests.e2e.helpers import G05, H26, H29, PROGRESS, SYNC, UNITS, Stored
from tests.service.conftest import Processes
from tests.service.helpers import settings_values, write_config
from tests.simulators.helpers import Control
from tests.sync.polling import expected_from_truth

FIGURES = pytest.StashKey[list[str]]()
# 1: keep the database and dump the servers' state even when the run passes.
KEEP_ENV = "DOSSIER_SYNC_TEST_CHAOS_KEEP"
ADMIN_TOKEN = "chaos-admin"  # a local mock's control token
# One simulated system per unit (as in the field): each hands out its own MaHoSo.
DIALECT_UNITS = {"opencps": H26, "igate": H29, "dvclt": G05}
# The permanent refusals injected, one dossier per simulator (contract §6: never retried).
INJECTED_CODES = (-5, -10, -5)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run does; every random choice comes from ``seed``."""

    seed: int
    chaos_s: float  # portal faults, kills and changes flowing
    dossiers: int  # per simulator, at the start
    changes_per_second: float  # per simulator
    workers: int = 3
    kill_every_s: tuple[float, float] = (3.0, 6.0)
    # No kill (so no worker starting up) this long before PostgreSQL's restart.
    quiet_before_restart_s: float = 5.0
    converge_within_s: float = 150.0

    @classmethod
    def for_duration(cls, seed: int, chaos_s: float) -> Plan:
        if chaos_s <= 60:
            return cls(seed, chaos_s, dossiers=40, changes_per_second=1.5)
        return cls(seed, chaos_s, dossiers=150, changes_per_second=2.0, converge_within_s=300)

    @property
    def restart_at_s(self) -> float:
        """When PostgreSQL restarts: in the middle of the chaos."""
        return self.chaos_s / 2


# --- PostgreSQL -----------------------------------------------------------------------------

LOCAL_HOSTS = frozenset({None, "", "127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True)
class Cluster:
    """A PostgreSQL cluster of this machine, driven with ``pg_ctlcluster``."""

    version: str
    name: str
    port: int

    @classmethod
    def serving(cls, host: str | None, port: int) -> Cluster | None:
        if host not in LOCAL_HOSTS and not (host or "").startswith("/"):
            return None
        try:
            listed = subprocess.run(
                ["pg_lsclusters", "--no-header"],  # noqa: S607 - the system's tool
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        for line in listed.splitlines():
            version, name, listening, *_ = [*line.split(), "", "", ""]
            if listening == str(port):
                return cls(version, name, port)
        return None

    def _ctl(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - the system's tool, fixed arguments
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def online(self) -> bool:
        return self._ctl("status").returncode == 0

    def restart(self) -> None:
        done = self._ctl("restart")
        assert done.returncode == 0, f"pg_ctlcluster restart failed: {done.stderr or done.stdout}"

    def ensure_running(self) -> None:
        if not self.online():
            self._ctl("start")


async def wait_accepting(dsn: str, within: float) -> float:
    """Seconds until the server accepts a connection."""
    started = time.monotonic()
    while True:
        try:
            connection = await asyncpg.connect(dsn, timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            if time.monotonic() - started > within:
                raise AssertionError(f"PostgreSQL not back after {within:g} s: {error}") from None
            await asyncio.sleep(0.1)
            continue
        await connection.close()
        return time.monotonic() - started


# --- servers as processes -----------------------------------------------------------------


def _answers(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


async def wait_answering(urls: Iterable[tuple[str, dict[str, str] | None]], within: float) -> None:
    pending = list(urls)
    deadline = time.monotonic() + within
    while pending:
        pending = [(u, h) for u, h in pending if not _answers(u, h)]
        if pending and time.monotonic() > deadline:
            raise AssertionError(f"not answering after {within:g} s: {[u for u, _ in pending]}")
        if pending:
            await asyncio.sleep(0.1)


@dataclass
class Servers:
    """The mock portal and one simulator per dialect, each a ``dossier-sync`` process."""

    portal_url: str
    portal: MockPortalControl
    simulators: dict[str, tuple[str, Control]]  # dialect → (url, control)

    def close(self) -> None:
        self.portal.close()
        for _, control in self.simulators.values():
            control.close()

    def truths(self) -> list[tuple[str, dict[str, Any]]]:
        return [(dialect, control.truth()) for dialect, (_, control) in self.simulators.items()]

    def stop_changes(self) -> None:
        """No more background changes, nor the ones a list request makes (an awkward
        case: rows moving under a paging client)."""
        for _, control in self.simulators.values():
            control.settings(changes_per_second=0, moves_per_list_request=0)


async def start_servers(processes: Processes, plan: Plan) -> Servers:
    port = free_port()
    processes.start(
        "mock-portal",
        *("mock-portal", "--port", str(port), "--admin-token", ADMIN_TOKEN),
        *("--journal-size", "5000000", "--log-level", "warning"),
    )
    portal_url = f"http://127.0.0.1:{port}"
    urls: list[tuple[str, dict[str, str] | None]] = [
        (f"{portal_url}/_mock/settings", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    ]
    simulators: dict[str, str] = {}
    for index, (dialect, unit) in enumerate(DIALECT_UNITS.items()):
        port = free_port()
        processes.start(
            f"sim-{dialect}",
            *("simulate", dialect, "--port", str(port), "--unit", unit),
            *("--seed", str(plan.seed * 10 + index), "--dossiers", str(plan.dossiers)),
            *("--changes-per-second", str(plan.changes_per_second), "--log-level", "warning"),
        )
        simulators[dialect] = f"http://127.0.0.1:{port}"
        urls.append((f"{simulators[dialect]}/_sim/stats", None))
    await wait_answering(urls, within=60)
    return Servers(
        portal_url,
        MockPortalControl(portal_url, ADMIN_TOKEN, timeout=60),
        {dialect: (url, Control(url)) for dialect, url in simulators.items()},
    )


def worker_config(
    path: Path, database_url: str, servers: Servers, truths: Sequence[tuple[str, dict[str, Any]]]
) -> Path:
    """The workers' configuration: short timeouts, back-offs and leases, an attempt
    budget that transient faults cannot spend."""
    values = settings_values(
        database_url=database_url,
        portal_url=servers.portal_url,
        sources=[(f"sim-{d}", d, url) for d, (url, _) in servers.simulators.items()],
        max_batch=20,
        sync={
            # A killed worker's claims and sources go to the others after these (both are
            # renewed while a push or a poll runs).
            "lease_s": 5.0,
            "poll_lease_s": 3.0,
            "max_attempts": 50,
            "backoff_initial_s": 0.2,
            "backoff_max_s": 2.0,
            "reconcile_interval_s": 1.0,
        },
    )
    values["portal"]["timeout_s"] = 1.5
    agency_maps = {dialect: truth.get("agency_map") or {} for dialect, truth in truths}
    for source in values["sources"]:
        source["agencies"] = [DIALECT_UNITS[source["dialect"]]]
        source["poll_interval_s"] = 0.5
        if agency_maps[source["dialect"]]:
            source["agency_map"] = {str(k): v for k, v in agency_maps[source["dialect"]].items()}
    return write_config(path, values)


# --- workers --------------------------------------------------------------------------------


@dataclass
class Workers:
    """``dossier-sync worker`` processes: a random one killed (and restarted) on demand,
    any other exit noticed (and restarted) as unexpected."""

    processes: Processes
    config: str
    count: int
    rng: random.Random
    slots: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: int = 0
    starts: int = 0
    unexpected: list[str] = field(default_factory=list)
    refused_to_start: int = 0  # started just before PostgreSQL went away
    events: list[str] = field(default_factory=list)  # what happened when, for a post-mortem

    def _start(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        process = self.processes.start("worker", "worker", "--config", self.config)
        self.note(f"started worker {process.pid} ({self.log_of(process).name})")
        return process

    def note(self, event: str) -> None:
        self.events.append(f"{now_utc().isoformat()} {event}")

    def start(self) -> None:
        self.slots = [self._start() for _ in range(self.count)]

    def log_of(self, process: subprocess.Popen[bytes]) -> Path:
        return self.processes.logs[self.processes.started.index(process)]

    def kill_one(self) -> None:
        index = self.rng.randrange(len(self.slots))
        process = self.slots[index]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            self.kills += 1
            self.note(f"killed worker {process.pid}")
        self.slots[index] = self._start()

    def check(self, *, database_was_away: bool = False) -> None:
        """Restart a worker that exited by itself, and remember it. A worker refusing to
        start because the database was away (``database_was_away``: the first look after
        PostgreSQL's restart) did what it should; any other exit is unexpected."""
        for index, process in enumerate(self.slots):
            code = process.poll()
            if code is None:
                continue
            tail = self.log_of(process).read_text(errors="replace").splitlines()[-15:]
            refused = code == 1 and any("cannot start: " in line for line in tail)
            if database_was_away and refused:
                self.refused_to_start += 1
            else:
                self.unexpected.append(f"worker {process.pid} exited {code}:\n" + "\n".join(tail))
            self.note(f"worker {process.pid} exited {code}")
            self.slots[index] = self._start()

    def stop(self, within: float) -> list[tuple[int, int | None, float]]:
        """SIGTERM every worker; (pid, exit status, seconds to exit) of each."""
        started = time.monotonic()
        for process in self.slots:
            process.send_signal(signal.SIGTERM)
        out: list[tuple[int, int | None, float]] = []
        for process in self.slots:
            try:
                process.wait(timeout=max(0.1, within - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                out.append((process.pid, None, time.monotonic() - started))
            else:
                out.append((process.pid, process.returncode, time.monotonic() - started))
        return out


# --- the fault mix --------------------------------------------------------------------------


@dataclass
class FaultMix:
    kinds: dict[int, str]  # rule id → kind
    rejected: dict[str, int]  # MaHoSo → the permanent error injected for it
    reject_rules: list[int]

    def fired(self, entries: Iterable[dict[str, Any]]) -> Counter[str]:
        """Faults injected by kind, from the portal's journal."""
        return Counter(
            self.kinds.get(entry["fault"]["rule"], "other")
            for entry in entries
            if entry["fault"] is not None
        )


def choose_rejected(
    truths: Sequence[tuple[str, dict[str, Any]]], rng: random.Random
) -> dict[str, int]:
    """One valid dossier per simulator, finished if possible (so no change revives it),
    and the permanent error the portal will answer for it."""
    chosen: dict[str, int] = {}
    for (_, truth), code in zip(truths, INJECTED_CODES, strict=True):
        valid = [
            d
            for d in truth["dossiers"]
            if d["expected"]["valid"] and d["expected"]["TrangThaiHoSo"] is not None
        ]
        final = [
            d for d in valid if DossierStatus(d["expected"]["TrangThaiHoSo"]) in FINAL_STATUSES
        ]
        pick = rng.choice(sorted(final or valid, key=lambda d: str(d["ma_ho_so"])))
        chosen[pick["expected"]["MaHoSo"]] = code
    return chosen


def install_faults(
    control: MockPortalControl,
    rng: random.Random,
    rejected: dict[str, int],
    start: datetime,
    chaos_s: float,
) -> FaultMix:
    """The mix, in evaluation order (the first rule that fires decides): the permanent
    refusals, bursts of 429 with Retry-After, then about 5 % hangs (timeouts), 20 % 5xx,
    3 % expired sessions, 3 % commit-then-drop and 3 % ack-then-lose per push service."""
    kinds: dict[int, str] = {}

    def add(kind: str, **rule: Any) -> int:
        rule_id: int = control.add_fault(**rule)["id"]
        kinds[rule_id] = kind
        return rule_id

    def chance(probability: float) -> dict[str, Any]:
        return {"kind": "probability", "probability": probability, "seed": rng.randrange(2**31)}

    reject_rules = [
        add(
            "permanent refusal",
            selector={"ma_ho_so_prefix": code},
            action={"type": "reject", "error_code": error},
        )
        for code, error in rejected.items()
    ]
    at = rng.uniform(2.0, 6.0)
    while at < chaos_s - 2:
        length = rng.uniform(1.5, 3.0)
        begin = start + timedelta(seconds=at)
        add(
            "429 burst",
            action={"type": "rate_limit", "retry_after_s": 1},
            schedule={
                "kind": "window",
                "start": begin.isoformat(),
                "end": (begin + timedelta(seconds=length)).isoformat(),
            },
        )
        at += length + rng.uniform(6.0, 12.0)
    add("timeout", action={"type": "hang"}, schedule=chance(0.05))
    # 20 % in all: 10 % 503, then 5 % each of 502 and 504 (of the requests left).
    add("5xx", action={"type": "http_error", "status": 503}, schedule=chance(0.10))
    add("5xx", action={"type": "http_error", "status": 502}, schedule=chance(0.05 / 0.90))
    add("5xx", action={"type": "http_error", "status": 504}, schedule=chance(0.05 / 0.85))
    add("session expiry", action={"type": "expire_session"}, schedule=chance(0.03))
    for service in (SYNC, PROGRESS):
        selector = {"service": service}
        add(
            "commit-then-drop",
            selector=selector,
            action={"type": "commit_then_drop"},
            schedule=chance(0.03),
        )
        add(
            "ack-then-lose",
            selector=selector,
            action={"type": "ack_then_lose"},
            schedule=chance(0.03),
        )
    return FaultMix(kinds, rejected, reject_rules)


def remove_transient_faults(control: MockPortalControl, mix: FaultMix) -> None:
    for rule_id in mix.kinds:
        if rule_id not in mix.reject_rules:
            control.remove_fault(rule_id)


# --- the oracle -------------------------------------------------------------------------------


def demo_catalogue() -> Catalogue:
    """The portal's demo catalogue, as the workers fetched it."""
    demo = load_demo_catalogue()
    return Catalogue(
        {p["MaTTHC"]: p for p in demo["procedures"]},
        {a["MaCoQuan"]: a["TenCoQuan"] for a in demo["agencies"]},
    )


@dataclass(frozen=True, slots=True)
class Expected:
    state: dict[str, Any]
    steps: frozenset[str]  # progress identity hashes


def expected_states(
    truths: Sequence[tuple[str, dict[str, Any]]], catalogue: Catalogue
) -> tuple[dict[str, Expected], int]:
    """What each dossier valid at its source must be in the store and at the portal, and
    how many dossiers the sources hold that are not valid now (quarantined by design)."""
    out: dict[str, Expected] = {}
    invalid = 0
    for dialect, truth in truths:
        context = Context(StatusMap(dialect), catalogue, UNITS, truth.get("agency_map") or {})
        for entry in truth["dossiers"]:
            normalised = expected_from_truth(dialect, entry, context)
            if normalised.dossier is None:
                invalid += 1
                continue
            out[normalised.dossier.MaHoSo] = Expected(
                normalised.dossier.to_portal(),
                frozenset(p.identity_hash() for p in normalised.progress),
            )
    return out, invalid


def lagging(
    stored: dict[str, Stored], expected: dict[str, Expected], rejected: Iterable[str]
) -> dict[str, str]:
    """What is not yet at its end state (empty: converged): every valid dossier stored in
    its latest state and synced (the rejected ones dead), nothing pending anywhere."""
    from app.domain.progress import parse_progress  # noqa: PLC0415 - keeps imports light

    dead = set(rejected)
    out: dict[str, str] = {}
    for code, want in expected.items():
        s = stored.get(code)
        if s is None:
            out[code] = "not stored"
        elif s.state != want.state:
            out[code] = "not the latest state"
        elif {parse_progress(p).identity_hash() for p in s.progress} != want.steps:
            out[code] = "steps differ"
    for code, s in stored.items():
        if code in out:
            continue
        if code in dead:
            if s.sync != SyncStatus.DEAD.value or s.pending:
                out[code] = f"{s.sync}, expected dead"
        elif (
            s.sync != SyncStatus.SYNCED.value
            or s.pending
            or s.confirmed_version != s.version
            or not all(s.progress_acked)
        ):
            out[code] = f"{s.sync} (attempts {s.attempts}, {s.last_error})"
    return out


# --- reading the database ------------------------------------------------------------------------


async def successes(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, datetime | None]:
    """Successful push items recorded so far, and the latest successful poll."""
    async with sessions() as session:
        pushed = await session.scalar(
            select(func.count()).select_from(PushAttempt).where(PushAttempt.outcome == "ok")
        )
        polled = await session.scalar(select(func.max(Source.last_success_at)))
    return int(pushed or 0), polled


async def open_dead_letters(sessions: async_sessionmaker[AsyncSession]) -> list[DeadLetter]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(DeadLetter).where(DeadLetter.redriven_at.is_(None)).order_by(DeadLetter.id)
            )
        )


async def lease_owners(sessions: async_sessionmaker[AsyncSession]) -> set[str]:
    async with sessions() as session:
        rows = set(
            await session.scalars(
                select(SyncState.lease_owner).where(SyncState.lease_owner.is_not(None))
            )
        )
        sources = set(
            await session.scalars(select(Source.lease_owner).where(Source.lease_owner.is_not(None)))
        )
    return {owner for owner in rows | sources if owner is not None}


# --- what the portal holds and was sent -------------------------------------------------------


def portal_codes(control: MockPortalControl) -> set[str]:
    answer = control.http.get("/_mock/dossiers", params={"limit": 10_000})
    answer.raise_for_status()
    return {d["MaHoSo"] for d in answer.json()["dossiers"]}


def journal_entries(control: MockPortalControl) -> list[dict[str, Any]]:
    lines, dropped = control.journal_ndjson()
    assert dropped == 0, "the journal dropped entries: the checks would be blind"
    return [json.loads(line) for line in lines if line.strip()]


def dump(directory: Path, servers: Servers, events: Sequence[str]) -> None:
    """What a failed run leaves for a post-mortem next to the processes' logs: the
    portal's journal, faults and dossiers, the sources' truths, and ``events`` (kills,
    restarts)."""
    (directory / "events.txt").write_text("\n".join(events), encoding="utf-8")
    portal = servers.portal
    try:
        lines, _ = portal.journal_ndjson()
        (directory / "journal.ndjson").write_text("\n".join(lines), encoding="utf-8")
        held = portal.http.get("/_mock/dossiers", params={"limit": 10_000}).json()
        extra = {"faults": portal.faults(), "dossiers": held}
        (directory / "portal.json").write_text(json.dumps(extra, ensure_ascii=False))
        for dialect, truth in servers.truths():
            (directory / f"truth-{dialect}.json").write_text(json.dumps(truth, ensure_ascii=False))
        stats = {d: control.stats() for d, (_, control) in servers.simulators.items()}
        (directory / "simulators.json").write_text(json.dumps(stats))
    except (httpx.HTTPError, OSError) as error:
        print(f"chaos: could not dump the servers' state: {error}")  # noqa: T201


def now_utc() -> datetime:
    return datetime.now(UTC)

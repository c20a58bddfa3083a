"""``dossier-sync demo``: the whole system on one machine with no setup.

It starts the mock portal and one source simulator per dialect (awkward cases on at small
shares, changing for a few seconds at the start and then quiet), migrates an SQLite
database in a temporary directory, and runs the sync :class:`~app.sync.engine.Engine`
(pollers, pushers, read-back) against them until every dossier of the simulators is
accounted for, showing progress per unit while it runs and a per-unit and per-agency
table at the end.

"Accounted for" is checked against the simulators' own truth with an oracle of its own:
every dossier is normalised from its *current* source record exactly as the service
normalises it, and then either

- the record cannot become a valid portal record (unmapped status, broken data): it must
  be in quarantine, or
- it is valid: the mock portal must hold exactly that state and its ``sync_state`` row
  must be ``synced`` (read-back confirmed it).

Success is 100% of the valid dossiers; anything else after ``timeout_s`` is a failure,
with what is missing printed. The service itself never imports this module: it is the
one place, besides the tests, that knows the mock portal and the simulators.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import migrate
from app.config import Settings
from app.db import create_engine, create_session_factory
from app.domain.agency import agency_of_dossier, is_dossier_code, unit_of
from app.logs import configure_logging
from app.mockportal.app import MockPortalSettings
from app.mockportal.server import BackgroundMockPortal
from app.models import DossierRow, QuarantineEntry, Source, SyncState, SyncStatus
from app.repositories.catalogue import CatalogueRepository
from app.runtime import settle_heap
from app.simulators import BackgroundSimulator, SimulatorSettings
from app.simulators.settings import DEFAULT_UNITS, DIALECTS, Dialect
from app.sync.engine import Engine
from app.sync.normalise import dvclt, igate, opencps
from app.sync.normalise.common import Context, Normalised
from app.sync.poll import load_context

# One simulated system per unit, as in the field (a province runs one TTHC system): two
# simulators serving the same agencies would hand out the same MaHoSo for different
# dossiers, which no real deployment has.
DEMO_UNITS: Mapping[Dialect, str] = dict(zip(DIALECTS, DEFAULT_UNITS, strict=True))
DEMO_PASSWORD = "demo"  # noqa: S105 - the demo catalogue's public password
SOURCE_AUTH: Mapping[Dialect, Mapping[str, str]] = {
    "opencps": {"username": "demo", "password": "demo", "group_id": "1"},
    "igate": {"client_id": "demo", "client_secret": "demo"},
    "dvclt": {"username": "demo", "password": "demo"},
}
MISSING_SHOWN = 20  # dossiers listed on failure


@dataclass(frozen=True, slots=True)
class DemoOptions:
    dossiers: int = 150  # per simulator
    timeout_s: float = 120.0
    seed: int = 0
    change_s: float = 3.0  # the sources keep changing this long after the start
    changes_per_second: float = 20.0  # per simulator, while they change
    check_interval_s: float = 0.5
    poll_interval_s: float = 0.5


# --- the oracle ----------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """Where the dossiers of a unit or agency stand."""

    dossiers: int = 0
    synced: int = 0
    quarantined: int = 0
    dead: int = 0
    pending: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def expected(self) -> int:
        """The dossiers that must reach the portal (the rest are quarantined by design)."""
        return self.dossiers - self.quarantined

    @property
    def rate(self) -> float:
        return self.synced / self.expected if self.expected else 1.0

    def add(self, verdict: str, reason: str | None) -> None:
        self.dossiers += 1
        if verdict == "synced":
            self.synced += 1
        elif verdict == "quarantined":
            self.quarantined += 1
            self.reasons[reason or "?"] += 1
        elif verdict == "dead":
            self.dead += 1
        else:
            self.pending += 1


@dataclass(frozen=True, slots=True)
class Missing:
    """A dossier that is not where it should be yet (codes only: no personal data)."""

    ma_ho_so: str
    source: str
    why: str


@dataclass(slots=True)
class Snapshot:
    units: dict[str, Tally] = field(default_factory=dict)
    agencies: dict[str, Tally] = field(default_factory=dict)
    missing: list[Missing] = field(default_factory=list)

    @property
    def total(self) -> Tally:
        total = Tally()
        for tally in self.units.values():
            total.dossiers += tally.dossiers
            total.synced += tally.synced
            total.quarantined += tally.quarantined
            total.dead += tally.dead
            total.pending += tally.pending
            total.reasons.update(tally.reasons)
        return total

    @property
    def complete(self) -> bool:
        return bool(self.units) and not self.missing


def expected_record(dialect: str, entry: Mapping[str, Any], context: Context) -> Normalised:
    """A simulator truth entry's current record, normalised as the service normalises it."""
    if dialect == "opencps":
        raw = {"dossier": entry["record"], "files": entry["files"], "actions": entry["actions"]}
        return opencps.normalise(raw, context)
    if dialect == "igate":
        return igate.normalise({"dossier": entry["record"], "history": entry["history"]}, context)
    messages = [{"item": m["summary"], "detail": m["detail"]} for m in entry["messages"]]
    return dvclt.normalise(entry["ma_ho_so"], messages, context)


@dataclass(frozen=True, slots=True)
class _Stored:
    """What the database says about a dossier."""

    status: str  # sync_state status
    error: str | None


async def _database_view(
    session: AsyncSession,
) -> tuple[dict[tuple[str, str], str], dict[str, _Stored]]:
    """Open quarantine entries ((source, record key) → reason code) and the sync state
    of every stored dossier (MaHoSo → status)."""
    quarantine = {
        (source, key): reason
        for source, key, reason in (
            await session.execute(
                select(Source.name, QuarantineEntry.record_key, QuarantineEntry.reason_code)
                .join(Source, Source.id == QuarantineEntry.source_id)
                .where(QuarantineEntry.resolved_at.is_(None))
            )
        ).all()
    }
    states = {
        code: _Stored(status, error)
        for code, status, error in (
            await session.execute(
                select(DossierRow.ma_ho_so, SyncState.status, SyncState.last_error).join(
                    SyncState, SyncState.dossier_id == DossierRow.id
                )
            )
        ).all()
    }
    return quarantine, states


@dataclass(frozen=True, slots=True)
class Expected:
    """What must become of one simulator dossier: its current record as the portal must
    hold it, or (``form`` None) the quarantine entry it must sit in."""

    ma_ho_so: str
    source: str
    form: dict[str, Any] | None
    quarantine_key: str = ""
    reason_code: str = ""

    @property
    def agency(self) -> str:
        return agency_of_dossier(self.ma_ho_so) if is_dossier_code(self.ma_ho_so) else "?"


def expectations(
    source: str, dialect: str, truth: Mapping[str, Any], context: Context
) -> list[Expected]:
    """Every dossier of a simulator's truth, normalised as the service normalises it."""
    out: list[Expected] = []
    for entry in truth["dossiers"]:
        code = str(entry["ma_ho_so"])
        normalised = expected_record(dialect, entry, context)
        if normalised.dossier is not None:
            out.append(Expected(code, source, normalised.dossier.to_portal()))
        else:
            rejection = normalised.rejections[0]
            out.append(Expected(code, source, None, rejection.key, rejection.reason_code))
    return out


def judge(
    expected: Expected,
    *,
    quarantine: Mapping[tuple[str, str], str],
    stored: _Stored | None,
    at_portal: Mapping[str, Any] | None,
) -> tuple[str, str | None]:
    """``(verdict, reason)``: verdict is synced, quarantined, dead or pending."""
    if expected.form is None:
        reason = quarantine.get((expected.source, expected.quarantine_key))
        if reason is not None:
            return "quarantined", reason
        return "pending", f"should be quarantined ({expected.reason_code}) but is not (yet)"
    if stored is not None and stored.status == SyncStatus.DEAD.value:
        return "dead", stored.error or "dead letter"
    if stored is None:
        problem: str | None = "not stored yet"
    elif at_portal is None:
        problem = "not at the portal yet"
    elif at_portal != expected.form:
        problem = "the portal holds an older state"
    elif stored.status != SyncStatus.SYNCED.value:
        problem = f"at the portal, sync state {stored.status} (read-back to come)"
    else:
        problem = None
    return ("pending", problem) if problem else ("synced", None)


def tally(
    expected: Sequence[Expected],
    quarantine: Mapping[tuple[str, str], str],
    states: Mapping[str, _Stored],
    portal: Mapping[str, Mapping[str, Any]],
) -> Snapshot:
    """Every simulator dossier judged against the database and the portal."""
    snapshot = Snapshot()
    for unit in DEMO_UNITS.values():
        snapshot.units[unit] = Tally()
    for item in expected:
        code = item.ma_ho_so
        verdict, reason = judge(
            item, quarantine=quarantine, stored=states.get(code), at_portal=portal.get(code)
        )
        agency = item.agency
        unit = unit_of(agency) if agency != "?" else "?"
        snapshot.units.setdefault(unit, Tally()).add(verdict, reason)
        snapshot.agencies.setdefault(agency, Tally()).add(verdict, reason)
        if verdict in ("pending", "dead"):
            snapshot.missing.append(Missing(code, item.source, reason or verdict))
    return snapshot


# --- running it ---------------------------------------------------------------------


@dataclass(slots=True)
class DemoResult:
    success: bool
    elapsed_s: float
    snapshot: Snapshot
    agency_names: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # unit → the source serving it
    unit_done_s: dict[str, float] = field(default_factory=dict)  # unit → when it got there
    timed_out: bool = False
    error: str | None = None


class Demo:
    """The running demo: ``async with Demo(options) as demo: result = await demo.run()``.

    While open, ``mock`` and ``simulators`` are the running servers (tests look at them
    after a run); leaving the block stops everything and removes the temporary directory.
    """

    def __init__(self, options: DemoOptions | None = None, console: Console | None = None):
        self.options = options or DemoOptions()
        self.console = console or Console()
        self.admin_token = secrets.token_urlsafe(16)
        self.mock: BackgroundMockPortal | None = None
        self.simulators: dict[str, BackgroundSimulator] = {}  # by source name
        self.settings: Settings | None = None
        self.directory: Path | None = None
        self._stack = AsyncExitStack()
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._expected: dict[str, tuple[tuple[int, int, int], list[Expected]]] = {}

    async def __aenter__(self) -> Demo:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        options = self.options
        self.directory = Path(tempfile.mkdtemp(prefix="dossier-sync-demo-"))
        self._stack.callback(shutil.rmtree, self.directory, ignore_errors=True)
        servers = ExitStack()  # stopped (threads joined) before the directory goes
        self._stack.push_async_callback(asyncio.to_thread, servers.close)
        self.mock = servers.enter_context(
            BackgroundMockPortal(MockPortalSettings(admin_token=self.admin_token))
        )
        changing = options.change_s > 0
        for index, dialect in enumerate(DIALECTS):
            settings = SimulatorSettings.awkward(
                seed=options.seed + index,
                dossiers=options.dossiers,
                units=(DEMO_UNITS[dialect],),
                clock="real",
                changes_per_second=options.changes_per_second if changing else 0.0,
                moves_per_list_request=1 if changing else 0,
            )
            self.simulators[f"demo-{dialect}"] = servers.enter_context(
                BackgroundSimulator(dialect, settings)
            )
        url = f"sqlite+aiosqlite:///{self.directory / 'demo.db'}"
        self.settings = demo_settings(
            url, self.mock.url, self.simulators, poll_interval_s=options.poll_interval_s
        )
        database = create_engine(url)
        self._stack.push_async_callback(database.dispose)
        await migrate.run_on(database, "upgrade", "head")
        self._sessions = create_session_factory(database)

    def _quiet_sources(self) -> None:
        """The change phase is over: the sources stop changing, so 100% is reachable."""
        for simulator in self.simulators.values():
            simulator.simulator.update_settings(
                {"changes_per_second": 0.0, "moves_per_list_request": 0}
            )

    def _mutations(self) -> tuple[int, ...]:
        return tuple(sim.world.mutations for sim in self.simulators.values())

    async def snapshot(self) -> Snapshot:
        """Judge every simulator dossier now."""
        sessions, settings = self._ready()
        assert self.mock is not None  # noqa: S101 - started with the settings
        sources = {s.name: s for s in settings.sources}
        async with sessions() as session:
            expected: list[Expected] = []
            for name, sim in self.simulators.items():
                context = await load_context(session, sources[name])
                expected += self._expectations(name, sim, context)
            quarantine, states = await _database_view(session)
        return tally(expected, quarantine, states, _portal_forms(self.mock))

    def _expectations(
        self, name: str, sim: BackgroundSimulator, context: Context
    ) -> list[Expected]:
        """A simulator's dossiers normalised, again only when it changed since (or the
        catalogue arrived): normalising is the costly part of a look."""
        key = (
            sim.world.mutations,  # read before the truth: a change in between recomputes
            len(context.catalogue.procedures),
            len(context.catalogue.agencies),
        )
        cached = self._expected.get(name)
        if cached is None or cached[0] != key:
            truth = sim.simulator.truth()
            cached = self._expected[name] = (key, expectations(name, sim.dialect, truth, context))
        return cached[1]

    def _ready(self) -> tuple[async_sessionmaker[AsyncSession], Settings]:
        if self._sessions is None or self.settings is None:
            raise RuntimeError("the demo is not started: use `async with Demo(...)`")
        return self._sessions, self.settings

    async def agency_names(self) -> dict[str, str]:
        sessions, _ = self._ready()
        async with sessions() as session:
            return {a.code: a.name for a in await CatalogueRepository(session).agencies()}

    async def run(self) -> DemoResult:
        """Sync until every dossier is accounted for, or until ``timeout_s``."""
        sessions, settings = self._ready()
        started = time.monotonic()
        engine = Engine(settings, sessions, owner="demo")
        stop = asyncio.Event()
        running = asyncio.create_task(engine.run(stop), name="demo-engine")
        result = DemoResult(
            success=False,
            elapsed_s=0.0,
            snapshot=Snapshot(),
            sources={DEMO_UNITS[sim.dialect]: name for name, sim in self.simulators.items()},
        )
        try:
            await self._watch(running, started, result)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(running), timeout=30)
            if not running.done():
                running.cancel()
                with contextlib.suppress(BaseException):
                    await running
            await engine.aclose()
        result.elapsed_s = time.monotonic() - started
        result.agency_names = await self.agency_names()
        result.success = result.error is None and result.snapshot.complete
        result.timed_out = not result.success and result.error is None
        return result

    async def _watch(self, running: asyncio.Task[None], started: float, result: DemoResult) -> None:
        """Judge the dossiers every ``check_interval_s`` and show it, until done."""
        options = self.options
        changing = options.change_s > 0
        mutations: tuple[int, ...] | None = None
        with _Display(self.console, result.sources) as display:
            while True:
                elapsed = time.monotonic() - started
                if changing and elapsed >= options.change_s:
                    self._quiet_sources()
                    changing = False
                # Done only with the sources at rest since the previous look (a change
                # already under way when they were told to stop may still land).
                before, mutations = mutations, self._mutations()
                snapshot = result.snapshot = await self.snapshot()
                settled = not changing and before == mutations == self._mutations()
                for unit, tally in snapshot.units.items():
                    if settled and tally.pending == 0 and tally.dead == 0:
                        result.unit_done_s.setdefault(unit, elapsed)
                    else:
                        result.unit_done_s.pop(unit, None)
                display.update(snapshot, elapsed, options.change_s - elapsed)
                if settled and snapshot.complete:
                    return
                if running.done():
                    result.error = _crash(running)
                    return
                if elapsed >= options.timeout_s:
                    return
                await asyncio.sleep(options.check_interval_s)


def _crash(task: asyncio.Task[None]) -> str:
    exception = task.exception() if not task.cancelled() else None
    return f"the sync engine stopped: {exception!r}" if exception else "the sync engine stopped"


def _portal_forms(mock: BackgroundMockPortal) -> dict[str, dict[str, Any]]:
    """The mock portal's stored dossiers (without ``QuaTrinhXuLy``), read in-process: the
    copy of its dict is one step under the GIL, safe against the server's thread."""
    stored = list(mock.portal.core.dossiers.values())
    return {d.ma_ho_so: d.data for d in stored}


def demo_settings(
    database_url: str,
    portal_url: str,
    simulators: Mapping[str, BackgroundSimulator],
    *,
    poll_interval_s: float = 0.5,
) -> Settings:
    """The service's configuration for the demo, built in code (no file, no environment):
    the mock portal with the demo accounts, one source per simulator."""
    sources: list[dict[str, Any]] = []
    for name, simulator in simulators.items():
        source: dict[str, Any] = {
            "name": name,
            "dialect": simulator.dialect,
            "base_url": simulator.url,
            "agencies": [DEMO_UNITS[simulator.dialect]],
            "poll_interval_s": poll_interval_s,
            "page_size": 100,
            "auth": dict(SOURCE_AUTH[simulator.dialect]),
        }
        if simulator.dialect == "dvclt":
            # DVCLT names agencies by number; the deployment's map comes with the source.
            source["agency_map"] = {str(k): v for k, v in simulator.world.agency_map.items()}
        sources.append(source)
    return Settings.model_validate(
        {
            "database_url": database_url,
            "portal": {
                "base_url": portal_url,
                "timeout_s": 10,
                "accounts": [
                    {"unit": unit, "username": unit, "password": DEMO_PASSWORD}
                    for unit in DEMO_UNITS.values()
                ],
            },
            "sources": sources,
            "sync": {
                "backoff_initial_s": 0.2,
                "backoff_max_s": 2.0,
                "reconcile_interval_s": 0.5,
            },
            "logging": {"level": "WARNING", "format": "console"},
        }
    )


# --- display ------------------------------------------------------------------------


class _Display:
    """Progress bars per unit (synced of the dossiers that must reach the portal) under a
    status line: live on a terminal; elsewhere rich prints the last state once."""

    def __init__(self, console: Console, sources: Mapping[str, str]) -> None:
        self.sources = sources
        self.status = Text()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("[dim]{task.fields[extra]}"),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.live = Live(
            Group(self.status, self.progress),
            console=console,
            refresh_per_second=8,
            redirect_stderr=True,
        )

    def __enter__(self) -> _Display:
        self.live.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.live.stop()
        if not self.live.console.is_terminal:
            self.live.console.line()  # rich leaves the last state without a line end

    def update(self, snapshot: Snapshot, elapsed: float, changing_for: float) -> None:
        phase = (
            f"sources changing for {changing_for:.0f} s more"
            if changing_for > 0
            else "sources quiet"
        )
        total = snapshot.total
        self.status.plain = (
            f"{elapsed:5.1f} s, {phase}: {total.synced}/{total.expected} synced, "
            f"{total.quarantined} quarantined, {total.dead} dead"
        )
        for unit, tally in snapshot.units.items():
            if unit not in self.tasks:
                label = f"{unit} {_dialect(self.sources.get(unit, ''))}"
                self.tasks[unit] = self.progress.add_task(f"{label:<21}", total=None, extra="")
            self.progress.update(
                self.tasks[unit],
                total=max(tally.expected, 1),
                completed=tally.synced,
                extra=f"{tally.quarantined} quarantined",
            )


def _dialect(source: str) -> str:
    return source.removeprefix("demo-")


def _reasons(reasons: Counter[str], top: int = 3) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in reasons.most_common(top))


NAMES_FROM = 120  # console width from which the table names the agencies
REASONS_FROM = 100  # … and shows the quarantine reasons in a column (else below it)


def report_table(result: DemoResult, width: int = 80) -> Table:
    """Per unit, with its agencies under it: dossiers, synced, quarantined (and the top
    reasons, on a wide enough console), dead, sync rate, when the unit reached 100%."""
    snapshot = result.snapshot
    total = snapshot.total
    names, reasons = width >= NAMES_FROM, width >= REASONS_FROM
    pending = total.pending > 0
    table = Table(
        title=f"dossier-sync demo: {result.elapsed_s:.1f} s",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_footer=True,
        pad_edge=False,
    )
    table.add_column("unit / agency", footer="total", no_wrap=True)
    if names:
        table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=40)
    table.add_column("dossiers", justify="right", footer=str(total.dossiers))
    table.add_column("synced", justify="right", footer=str(total.synced))
    if pending:
        table.add_column("pending", justify="right", footer=str(total.pending))
    table.add_column("quarantined", justify="right", footer=str(total.quarantined))
    table.add_column("dead", justify="right", footer=str(total.dead))
    table.add_column("rate", justify="right", footer=f"{total.rate:.0%}")
    table.add_column("time", justify="right", footer=f"{result.elapsed_s:.1f}s")
    if reasons:
        table.add_column("top quarantine reasons", footer=_reasons(total.reasons))

    def row(label: str, name: str, tally: Tally, done: str, **style: Any) -> None:
        cells = [label, *([name] if names else []), str(tally.dossiers), str(tally.synced)]
        cells += [str(tally.pending)] if pending else []
        cells += [str(tally.quarantined), str(tally.dead), f"{tally.rate:.0%}", done]
        cells += [_reasons(tally.reasons)] if reasons else []
        table.add_row(*cells, **style)

    for unit, unit_tally in snapshot.units.items():
        done = result.unit_done_s.get(unit)
        row(
            _unit_label(result, unit),
            result.agency_names.get(unit, ""),
            unit_tally,
            f"{done:.1f}s" if done is not None else "",
            style="bold",
        )
        agencies = sorted(a for a in snapshot.agencies if a != "?" and unit_of(a) == unit)
        for position, agency in enumerate(agencies):
            row(
                f"  {agency}",
                result.agency_names.get(agency, ""),
                snapshot.agencies[agency],
                "",
                end_section=position == len(agencies) - 1,
            )
    return table


def _unit_label(result: DemoResult, unit: str) -> str:
    return f"{unit} {_dialect(result.sources.get(unit, ''))}".rstrip()


def print_report(result: DemoResult, console: Console) -> None:
    console.print(report_table(result, console.width))
    total = result.snapshot.total
    if console.width < REASONS_FROM and total.quarantined:
        console.print("top quarantine reasons:")
        for unit, tally in result.snapshot.units.items():
            if tally.reasons:
                console.print(f"  {_unit_label(result, unit)}: {_reasons(tally.reasons)}")
    if result.success:
        console.print(
            f"[green]100% synchronised[/green] in {result.elapsed_s:.1f} s: {total.synced} "
            f"dossiers at the portal in their latest state, confirmed by read-back; "
            f"{total.quarantined} quarantined by design (unmapped statuses, broken data)."
        )
        return
    if result.error:
        console.print(f"[red]{result.error}[/red]", highlight=False)
    else:
        console.print(
            f"[red]not synchronised after {result.elapsed_s:.1f} s:[/red] "
            f"{len(result.snapshot.missing)} dossier(s) missing"
        )
    for missing in result.snapshot.missing[:MISSING_SHOWN]:
        console.print(f"  {missing.ma_ho_so} ({missing.source}): {missing.why}", highlight=False)
    if len(result.snapshot.missing) > MISSING_SHOWN:
        console.print(f"  … and {len(result.snapshot.missing) - MISSING_SHOWN} more")


async def run_demo(
    options: DemoOptions | None = None, console: Console | None = None
) -> DemoResult:
    """Start everything, sync to 100% (or time out), stop everything. (The command's
    own process: once started, its heap is settled, as ``serve``'s and ``worker``'s.)"""
    async with Demo(options, console) as demo:
        settle_heap()
        return await demo.run()


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time: while the live display runs, rich
    swaps it for a proxy that prints above the bars instead of tearing them."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def main(dossiers: int, timeout_s: float, console: Console | None = None) -> int:
    """The command; returns the exit status (0 only when every dossier is accounted for)."""
    console = console or Console()
    stream: Any = _CurrentStderr()
    configure_logging("WARNING", "console", stream=stream)
    console.print(
        f"dossier-sync demo: the mock portal and {len(DIALECTS)} source simulators "
        f"({', '.join(DIALECTS)}; {dossiers} dossiers each, changing for the first "
        f"{DemoOptions.__dataclass_fields__['change_s'].default} s), SQLite in a temporary "
        "directory",
        highlight=False,
    )
    result = asyncio.run(run_demo(DemoOptions(dossiers=dossiers, timeout_s=timeout_s), console))
    print_report(result, console)
    return 0 if result.success else 1

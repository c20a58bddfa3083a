"""A deterministic world of dossiers moving through their life cycles.

Everything random comes from one ``random.Random(seed)``; with the manual clock nothing
depends on the wall clock either, so the same seed and the same calls give the same world
to the byte — which is what lets a test compare what a connector stored with the truth.

The world is dialect-aware only where it must be: which states exist (the DVCLT queue has
no "new", payment, withdrawal or stop), which status *word* each history entry carries,
and — for ``dvclt`` — the message queue. Rendering to each dialect's JSON lives in the
dialect modules.
"""

from __future__ import annotations

import bisect
import dataclasses
import random
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from app.demodata import load_demo_catalogue
from app.domain.agency import is_top_level_unit
from app.domain.dates import VN_TZ
from app.domain.status import DossierStatus
from app.simulators import people
from app.simulators.catalogue import (
    Agency,
    Procedure,
    agencies_of,
    hex_id,
    input_documents,
    procedures_of,
    result_document,
)
from app.simulators.settings import Dialect, SimulatorSettings
from app.simulators.statuses import (
    DVCLT_STATES,
    FINAL_STATES,
    SourceStatus,
    State,
    default_portal_status,
    status_choices,
    unmapped_status,
)

CLOCK_START = datetime(2024, 5, 13, 8, 0, 0, tzinfo=VN_TZ)
HISTORY_DAYS = 10
# iGate: at most this many dossiers share one updatedDate (source-dialects.md §2).
MAX_TIES = 500
# The share of mutations that bring a new dossier rather than move an existing one.
NEW_DOSSIER_SHARE = 0.2
# With ties on, the chance that a single change lands on the previous change's time.
TIE_CHANCE = 0.3

Channel = Literal["online", "in_person", "postal"]
BadKind = Literal["date", "email", "phone"]
Key = int | str

# Businesses apply for these domains; citizens for the rest.
BUSINESS_DOMAINS = frozenset(
    {"DKKD", "DT", "XNK", "HC", "LTHH", "KDXD", "MT", "TNN", "KS", "ATTP", "THUE", "DL"}
)

# One-step transitions and their weights (the brief: NEW→RECEIVED ~85%, …). Loops are
# bounded per dossier (two supplement requests, one payment request) so that every
# dossier reaches a final state in a handful of steps.
_TRANSITIONS: dict[State, tuple[tuple[State, float], ...]] = {
    State.NEW: ((State.RECEIVED, 0.85), (State.REFUSED, 0.07), (State.WITHDRAWN, 0.08)),
    State.RECEIVED: ((State.PROCESSING, 1.0),),
    State.PROCESSING: (
        (State.SUPPLEMENT, 0.15),
        (State.PAYMENT, 0.10),
        (State.RESULT, 0.65),
        (State.STOPPED, 0.03),
        (State.WITHDRAWN, 0.02),
        (State.PROCESSING, 0.05),  # handed over to another department or agency
    ),
    State.SUPPLEMENT: ((State.PROCESSING, 1.0),),
    State.PAYMENT: ((State.PROCESSING, 1.0),),
    State.RESULT: ((State.RETURNED, 1.0),),
    State.WITHDRAWN: ((State.STOPPED, 1.0),),
}
# Share of withdrawn dossiers that the agency later closes formally (7 → 8).
STOP_AFTER_WITHDRAWAL = 0.3
MAX_SUPPLEMENTS = 2

# Action codes and names (OpenCPS actionCode/actionName, iGate action).
ACTIONS: dict[str, tuple[str, str]] = {
    "submit": ("1000", "Nộp hồ sơ"),
    "receive": ("1100", "Tiếp nhận hồ sơ"),
    "process": ("1200", "Chuyển xử lý"),
    "handover": ("1210", "Chuyển xử lý liên thông"),
    "supplemented": ("1220", "Tiếp nhận hồ sơ bổ sung"),
    "paid": ("1230", "Xác nhận hoàn thành nghĩa vụ tài chính"),
    "supplement": ("1300", "Yêu cầu bổ sung hồ sơ"),
    "payment": ("1400", "Yêu cầu thực hiện nghĩa vụ tài chính"),
    "withdraw": ("1500", "Rút hồ sơ"),
    "stop": ("1600", "Dừng xử lý"),
    "refuse": ("1700", "Từ chối tiếp nhận"),
    "result": ("1800", "Phê duyệt kết quả"),
    "return": ("1900", "Trả kết quả"),
    "pause": ("2000", "Tạm dừng xử lý"),
    "collect": ("2010", "Thu thập thông tin"),
    "resume": ("2100", "Tiếp tục xử lý"),
}

_SUPPLEMENT_NOTES = (
    "bản sao giấy tờ tùy thân còn hiệu lực",
    "tờ khai có đầy đủ chữ ký",
    "giấy tờ chứng minh nơi cư trú",
    "bản vẽ có xác nhận của đơn vị tư vấn",
)
_REFUSAL_NOTES = (
    "hồ sơ không thuộc thẩm quyền giải quyết",
    "thành phần hồ sơ không đúng quy định",
    "người nộp không đủ điều kiện thực hiện thủ tục",
)
FEE_AMOUNTS = (10_000, 15_000, 20_000, 30_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One state change: what every dialect's history, actions or messages show."""

    seq: int  # world-wide, increasing: OpenCPS dossierActionId
    hex_id: str  # iGate history id
    at: datetime
    state: State  # the abstract state after the change
    status: SourceStatus  # the dialect's status at that moment (may be unmapped)
    unmapped: bool
    officer: str
    position: str
    department: str
    department_code: str
    action: str  # key of ACTIONS
    note: str  # may be "" (the dialects fall back to the action name)

    @property
    def action_code(self) -> str:
        return ACTIONS[self.action][0]

    @property
    def action_name(self) -> str:
        return ACTIONS[self.action][1]


@dataclass(frozen=True, slots=True)
class SimFile:
    file_id: int  # OpenCPS dossierFileId, DVCLT file id
    hex_id: str  # iGate attachment id
    template_no: str  # OpenCPS fileTemplateNo, DVCLT loaiGiayTo
    name: str
    result: bool
    digitized: bool
    reused: bool
    removed: bool = False
    result_code: str | None = None  # number of the result document (maGiayToKetQua)

    @property
    def filename(self) -> str:
        return f"{self.name}.pdf"


@dataclass(slots=True, eq=False)  # identity: the queue finds a message by `is`, fast
class Message:
    """A DVCLT queue message: one state change of a dossier, frozen when it was sent."""

    id: int
    tech_id: str
    ma_ho_so: str
    entry: HistoryEntry
    received_at: datetime
    due_at: datetime | None
    files: tuple[SimFile, ...]
    form: dict[str, Any]
    bad: BadKind | None
    duplicate_of: int | None = None
    acknowledged: bool = False


@dataclass(slots=True, eq=False)
class SimDossier:
    index: int
    opencps_id: int
    igate_id: str
    ma_ho_so: str
    reference_uid: str
    procedure: Procedure
    agency: Agency
    applicant: people.Applicant
    channel: Channel
    via_postal: int  # OpenCPS viaPostal: 0 or 1 none, 2 the result goes by post
    fee_amount: int
    note: str
    submitted_at: datetime
    modified_at: datetime
    state: State = State.NEW
    status: SourceStatus = ""
    unmapped: bool = False
    will_stop: bool = False  # a withdrawal the agency will close (7 → 8)
    supplements: int = 0
    payments: int = 0
    fee_paid: bool = False
    payment_method: str | None = None
    received_at: datetime | None = None
    due_at: datetime | None = None
    released_at: datetime | None = None  # end of processing (result, refusal, stop)
    finished_at: datetime | None = None  # result handed over
    history: list[HistoryEntry] = field(default_factory=list)
    files: list[SimFile] = field(default_factory=list)
    bad: BadKind | None = None  # opencps/igate: deliberately broken field right now
    module: str | None = None  # dvclt: LTKS (birth) or LTKT (death)
    ma_don_vi: int | None = None  # dvclt agency number
    form: dict[str, Any] = field(default_factory=dict)  # dvclt application form
    messages: list[Message] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES or (
            self.state == State.WITHDRAWN and not self.will_stop and not self.unmapped
        )

    @property
    def online(self) -> bool:
        return self.channel == "online"

    @property
    def by_post(self) -> bool:
        return self.via_postal == 2

    @property
    def digitized(self) -> bool:
        return any(f.digitized for f in self.files if not f.result and not f.removed)


class Clock:
    """The world's time. ``manual`` moves only when the world changes, by a seeded 1-3 s
    (0 when a change may tie with the previous one); ``real`` follows the wall clock.
    Both count how many dossiers carry the current instant so that no more than
    :data:`MAX_TIES` ever share one."""

    def __init__(self, mode: Literal["manual", "real"], rng: random.Random) -> None:
        self.mode = mode
        self.rng = rng
        self._now = CLOCK_START if mode == "manual" else _wall_clock()
        self._ties = 0

    def now(self) -> datetime:
        if self.mode == "manual":
            return self._now
        return max(self._now, _wall_clock())

    def tick(self, size: int, *, allow_tie: bool) -> datetime:
        """The time of the next change of ``size`` dossiers (one bulk action)."""
        room = self._ties + size <= MAX_TIES
        if self.mode == "manual":
            if allow_tie and room and self.rng.random() < TIE_CHANCE:
                self._ties += size
                return self._now
            step = timedelta(seconds=self.rng.randint(1, 3), milliseconds=self.rng.randint(0, 999))
            self._now += step
            self._ties = size
            return self._now
        wall = _wall_clock()
        if wall > self._now:
            self._now, self._ties = wall, size
        elif allow_tie and room:
            self._ties += size
        else:  # same millisecond, and no tie wanted: the next millisecond
            self._now += timedelta(milliseconds=1)
            self._ties = size
        return self._now


def _wall_clock() -> datetime:
    now = datetime.now(VN_TZ)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class World:
    """The dossiers of one simulated source system and their changes over time.

    Thread-safe: the HTTP server and a test may both touch it; every public method takes
    :attr:`lock`, and callers that read several things consistently take it too.
    """

    def __init__(self, dialect: Dialect, settings: SimulatorSettings | None = None) -> None:
        self.dialect: Dialect = dialect
        self.settings = settings or SimulatorSettings()
        self.lock = threading.RLock()
        catalogue = self.settings.catalogue or load_demo_catalogue()
        self.procedures = procedures_of(catalogue)
        all_agencies = agencies_of(catalogue, self.settings.units, self.procedures)
        if not self.procedures or not all_agencies:
            raise ValueError("the catalogue has no procedures or no agency under the units")
        self.agencies = (
            _dvclt_agencies(all_agencies, self.procedures) if dialect == "dvclt" else all_agencies
        )
        # dvclt: maDonVi is the source's own integer; a fixed numbering of the agencies
        # in code order, exposed in the truth so a test can configure the connector.
        self.agency_map: dict[int, str] = (
            {1001 + i: code for i, code in enumerate(sorted(a.code for a in self.agencies))}
            if dialect == "dvclt"
            else {}
        )
        self._don_vi = {code: number for number, code in self.agency_map.items()}
        self.reset(self.settings.seed, self.settings.dossiers)

    # --- set-up --------------------------------------------------------------------------

    def reset(self, seed: int | None = None, dossiers: int | None = None) -> None:
        """Rebuild the world from scratch (the awkward-case settings stay as they are)."""
        with self.lock:
            changes: dict[str, Any] = {}
            if seed is not None:
                changes["seed"] = seed
            if dossiers is not None:
                changes["dossiers"] = dossiers
            if changes:
                self.settings = self.settings.model_copy(update=changes)
            self.rng = random.Random(self.settings.seed)  # noqa: S311 - a seeded simulation
            self.clock = Clock(self.settings.clock, self.rng)
            self.dossiers: list[SimDossier] = []
            self._by_key: dict[Key, SimDossier] = {}
            # Every dossier as (modified_at, igate_id, index), kept sorted as dossiers
            # change: iGate's search reads its page by bisection instead of filtering
            # and sorting the whole world on every request (26 ms at 20,000 dossiers,
            # on the path of every poll).
            self._timeline: list[tuple[datetime, str, int]] = []
            # Unfinished dossiers, the ones a change may pick: a list (so that a seeded
            # sample is reproducible) with each one's position, for O(1) removal.
            self._active: list[SimDossier] = []
            self._active_at: dict[int, int] = {}
            self._numbers: dict[tuple[str, str], int] = {}
            self._igate_ids: set[str] = set()
            self._staff = {a.code: people.staff(self.rng) for a in self.agencies}
            self._seq = 0
            self._file_seq = 0
            self._message_seq = 0
            self.queue: list[Message] = []
            self._messages: dict[int, Message] = {}
            self._last_queued: dict[str, Message] = {}
            self._unacknowledged = 0
            self._deferred: list[Message] | None = None
            self.mutations = 0
            self._populate(self.settings.dossiers)

    def _populate(self, count: int) -> None:
        """The initial world: ``count`` dossiers submitted over the last ten days, each
        some way along its life cycle, all of it before the clock's start."""
        start = self.clock.now()
        window = timedelta(days=HISTORY_DAYS)
        cap = start - timedelta(minutes=90)
        span_ms = int((window - timedelta(hours=6)).total_seconds() * 1000)
        submits = sorted(
            start - window + timedelta(milliseconds=self.rng.randint(0, span_ms))
            for _ in range(count)
        )
        # Every generated change gets a second of its own, so that a clean world has no
        # ties even at OpenCPS's one-second precision; ties come only from the bulk below.
        used: set[int] = set()
        # dvclt: the generation goes dossier by dossier; the queue is built afterwards, in
        # time order, as the messages would have arrived.
        self._deferred = []

        def own_second(at: datetime) -> datetime:
            while int(at.timestamp()) in used:
                at += timedelta(seconds=1)
            used.add(int(at.timestamp()))
            return at

        for submitted in submits:
            dossier = self._create(own_second(submitted))
            at = dossier.modified_at
            for _ in range(self.rng.randint(0, 7)):
                if dossier.final:
                    break
                at = own_second(at + timedelta(minutes=self.rng.randint(10, 30 * 60)))
                if at > cap:
                    break
                self._step(dossier, at)
            parked = unmapped_status(self.dialect, dossier.state)
            if parked is not None and not dossier.unmapped:
                # Park a share of the unfinished dossiers outside the mapping from the
                # start, so that the share holds at once, not only after many changes.
                at = own_second(at + timedelta(minutes=self.rng.randint(10, 300)))
                if at <= cap and self._chance(self.settings.unmapped_share):
                    self._enter(dossier, dossier.state, at, previous=dossier.state, parked=parked)
            if self.dialect != "dvclt" and self._chance(self.settings.bad_data_share):
                dossier.bad = self._bad_kind()
        if self.settings.ties and self._active:
            # A bulk action an hour before the clock starts: many dossiers share one
            # modification time, so that they straddle every page border.
            bulk_at = start - timedelta(hours=1)
            candidates = [d for d in self._active if d.modified_at < bulk_at]
            size = min(MAX_TIES, max(2, count // 3), len(candidates))
            for dossier in self.rng.sample(candidates, size):
                self._step(dossier, bulk_at)
        deferred, self._deferred = self._deferred, None
        for message in sorted(deferred, key=lambda m: (m.entry.at, m.entry.seq)):
            self._enqueue(message)

    # --- queries -------------------------------------------------------------------------

    def modified_since(
        self, since: datetime | None, start: int, stop: int
    ) -> tuple[list[SimDossier], int]:
        """Rows ``[start, stop)`` of the dossiers modified at or after ``since`` (all
        of them if None), oldest first, equal times by iGate id; and how many there are."""
        with self.lock:
            first = 0 if since is None else bisect.bisect_left(self._timeline, (since, ""))
            rows = self._timeline[first + start : first + stop] if start < stop else []
            return [self.dossiers[index] for _, _, index in rows], len(self._timeline) - first

    def key_of(self, dossier: SimDossier) -> Key:
        """The source's own id: OpenCPS dossierId, iGate id, DVCLT maHoSo."""
        if self.dialect == "opencps":
            return dossier.opencps_id
        if self.dialect == "igate":
            return dossier.igate_id
        return dossier.ma_ho_so

    def get(self, key: Key) -> SimDossier | None:
        with self.lock:
            return self._by_key.get(key)

    def now(self) -> datetime:
        with self.lock:
            return self.clock.now()

    def portal_status(self, status: SourceStatus) -> DossierStatus | None:
        return default_portal_status(self.dialect, status)

    def message(self, message_id: int) -> Message | None:
        with self.lock:
            return self._messages.get(message_id)

    def pending(self, limit: int) -> list[Message]:
        """DVCLT: up to ``limit`` unacknowledged messages, in queue order."""
        with self.lock:
            found: list[Message] = []
            for message in self.queue:
                if not message.acknowledged:
                    found.append(message)
                    if len(found) == limit:
                        break
            return found

    def unacknowledged(self) -> int:
        with self.lock:
            return self._unacknowledged

    def acknowledge(self, message_id: int) -> Message | None:
        """DVCLT: mark a message received; acknowledging twice is harmless."""
        with self.lock:
            message = self._messages.get(message_id)
            if message is None:
                return None
            if not message.acknowledged:
                message.acknowledged = True
                self._unacknowledged -= 1
            # Drop acknowledged messages from the queue now and then, so that listing it
            # does not walk a long acknowledged prefix.
            acknowledged = len(self.queue) - self._unacknowledged
            if acknowledged > 1000 and acknowledged * 2 > len(self.queue):
                self.queue = [m for m in self.queue if not m.acknowledged]
            return message

    # --- changes -------------------------------------------------------------------------

    def mutate(self, count: int, bulk: int = 1) -> list[Key]:
        """Apply ``count`` changes: each moves a random unfinished dossier one step along
        its life cycle or (about one in five) brings a new dossier. Changes come in
        groups of ``bulk`` that share one timestamp (a bulk action; never more than
        :data:`MAX_TIES` per instant). Returns the keys changed, first change first."""
        if count < 0 or bulk < 1:
            raise ValueError("count must be ≥ 0 and bulk ≥ 1")
        with self.lock:
            changed: dict[Key, None] = {}
            remaining = count
            while remaining > 0:
                size = min(bulk, remaining, MAX_TIES)
                at = self.clock.tick(size, allow_tie=self.settings.ties)
                arrivals = sum(1 for _ in range(size) if self.rng.random() < NEW_DOSSIER_SHARE)
                moving = min(size - arrivals, len(self._active))
                for dossier in self.rng.sample(self._active, moving):
                    self._step(dossier, at)
                    changed[self.key_of(dossier)] = None
                for _ in range(size - moving):
                    changed[self.key_of(self._create(at))] = None
                remaining -= size
                self.mutations += size
            return list(changed)

    def _chance(self, share: float) -> bool:
        # No draw at all when a case is off: a clean world's sequence does not depend on
        # the awkward cases it does not use.
        return share > 0 and self.rng.random() < share

    def _bad_kind(self) -> BadKind:
        kinds: Sequence[BadKind] = (
            ("date", "phone") if self.dialect == "dvclt" else ("date", "email", "phone")
        )
        return self.rng.choice(kinds)

    def _create(self, at: datetime) -> SimDossier:
        rng = self.rng
        agency = rng.choice(self.agencies)
        procedure = rng.choice(agency.procedures)
        module: str | None = None
        if self.dialect == "dvclt":
            procedure, module = self._dvclt_procedure()
            channel: Channel = "online"  # the inter-agency service is online only
        else:
            channel = rng.choices(("online", "in_person", "postal"), (0.6, 0.33, 0.07))[0]
        if channel == "postal":
            via_postal = 2
        elif channel == "online":
            via_postal = 2 if rng.random() < 0.15 else 0
        else:
            via_postal = rng.choice((0, 1))
        business = procedure.domain_code in BUSINESS_DOMAINS and rng.random() < 0.85
        applicant = people.applicant(rng, business=business, locality=agency.locality)
        day = at.strftime("%y%m%d")
        number = self._numbers.get((agency.code, day), 0) + 1
        self._numbers[(agency.code, day)] = number
        igate_id = f"{int(at.timestamp()):08x}{rng.getrandbits(64):016x}"
        while igate_id in self._igate_ids:
            igate_id = f"{int(at.timestamp()):08x}{rng.getrandbits(64):016x}"
        self._igate_ids.add(igate_id)
        dossier = SimDossier(
            index=len(self.dossiers),
            opencps_id=240_001 + len(self.dossiers),
            igate_id=igate_id,
            ma_ho_so=f"{agency.code}-{day}-{number:05d}",
            reference_uid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            procedure=procedure,
            agency=agency,
            applicant=applicant,
            channel=channel,
            via_postal=via_postal,
            fee_amount=rng.choice(FEE_AMOUNTS) if procedure.has_fee else 0,
            note=f"Đề nghị giải quyết thủ tục {procedure.name}",
            submitted_at=at,
            modified_at=at,
        )
        if dossier.fee_amount and channel == "online" and rng.random() < 0.6:
            dossier.fee_paid, dossier.payment_method = True, rng.choice(("online", "gateway"))
        self._add_inputs(dossier, module)
        if module is not None:
            dossier.module = module
            dossier.ma_don_vi = self._don_vi[agency.code]
            dossier.form = _dvclt_form(rng, applicant, module, at)
        self.dossiers.append(dossier)
        self._by_key[self.key_of(dossier)] = dossier
        bisect.insort(self._timeline, (at, igate_id, dossier.index))
        self._active_at[dossier.index] = len(self._active)
        self._active.append(dossier)
        if self.dialect == "dvclt":
            # The queue only learns of a dossier at the one-stop desk: received, or
            # refused there.
            first = State.REFUSED if rng.random() < 0.07 else State.RECEIVED
        elif channel == "in_person" and rng.random() < 0.7:
            first = State.RECEIVED  # taken in at the counter on the spot
        else:
            first = State.NEW
        self._enter(dossier, first, at, previous=None)
        return dossier

    def _dvclt_procedure(self) -> tuple[Procedure, str]:
        birth, death = _birth_and_death(self.procedures)
        if self.rng.random() < 0.7:
            return birth, "LTKS"
        return death, "LTKT"

    def _add_inputs(self, dossier: SimDossier, module: str | None) -> None:
        rng = self.rng
        names = input_documents(dossier.procedure, module)
        for number, name in enumerate(names, start=1):
            template = f"TP{number:02d}"
            if rng.random() < 0.1:
                # The applicant replaced this document: the old upload stays, removed.
                self._add_file(dossier, template, name, removed=True)
            self._add_file(dossier, template, name)

    def _add_file(
        self,
        dossier: SimDossier,
        template: str,
        name: str,
        *,
        removed: bool = False,
        result_code: str | None = None,
    ) -> SimFile:
        self._file_seq += 1
        result = result_code is not None
        file = SimFile(
            file_id=500_000 + self._file_seq,
            hex_id=hex_id(dossier.igate_id, "file", self._file_seq),
            template_no=template,
            name=name,
            result=result,
            digitized=not result and self.rng.random() < 0.4,
            reused=not result and self.rng.random() < 0.2,
            removed=removed,
            result_code=result_code,
        )
        dossier.files.append(file)
        return file

    def _retire(self, dossier: SimDossier) -> None:
        """Take a finished dossier out of the active list: the last one takes its place."""
        position = self._active_at.pop(dossier.index)
        last = self._active.pop()
        if last is not dossier:
            self._active[position] = last
            self._active_at[last.index] = position

    def _next_state(self, dossier: SimDossier) -> State:
        options: list[tuple[State, float]] = []
        for state, weight in _TRANSITIONS[dossier.state]:
            if self.dialect == "dvclt" and (state not in DVCLT_STATES or state == dossier.state):
                continue
            if state == State.SUPPLEMENT and dossier.supplements >= MAX_SUPPLEMENTS:
                continue
            if state == State.PAYMENT and (
                not dossier.fee_amount or dossier.fee_paid or dossier.payments
            ):
                continue
            options.append((state, weight))
        states = [state for state, _ in options]
        return self.rng.choices(states, [weight for _, weight in options])[0]

    def _step(self, dossier: SimDossier, at: datetime) -> None:
        """Move ``dossier`` one step at ``at``: resume from a parked status, park in an
        unmapped one, or take the next life-cycle transition."""
        if dossier.unmapped:
            self._enter(dossier, dossier.state, at, previous=dossier.state, resume=True)
        else:
            parked = unmapped_status(self.dialect, dossier.state)
            if parked is not None and self._chance(self.settings.unmapped_share):
                self._enter(dossier, dossier.state, at, previous=dossier.state, parked=parked)
            else:
                self._enter(dossier, self._next_state(dossier), at, previous=dossier.state)
        if self.dialect != "dvclt":
            # Broken data comes and goes with changes: a later change may fix it.
            if dossier.bad is not None:
                if self.rng.random() < 0.5:
                    dossier.bad = None
            elif self._chance(self.settings.bad_data_share):
                dossier.bad = self._bad_kind()

    def _enter(
        self,
        dossier: SimDossier,
        state: State,
        at: datetime,
        *,
        previous: State | None,
        resume: bool = False,
        parked: SourceStatus | None = None,
    ) -> None:
        rng = self.rng
        at = _ms(at)
        self._apply_effects(dossier, state, previous, at, resumed=resume or parked is not None)
        action, note = self._action(dossier, state, previous, resume=resume, parked=parked)
        if parked is not None:
            status: SourceStatus = parked
        else:
            choices = status_choices(
                self.dialect, state, online=dossier.online, by_post=dossier.by_post
            )
            values, weights = zip(*choices, strict=True)
            status = values[0] if len(values) == 1 else rng.choices(values, weights)[0]
        officer = self._officer(dossier, state, action)
        # One entry in five carries no note: the dialects then fall back to the action
        # name (OpenCPS actionNote → actionName, iGate content → action). DVCLT always
        # says what was done.
        if self.dialect != "dvclt" and rng.random() < 0.2:
            note = ""
        self._seq += 1
        entry = HistoryEntry(
            seq=self._seq,
            hex_id=hex_id(dossier.igate_id, "history", self._seq),
            at=at,
            state=state,
            status=status,
            unmapped=parked is not None,
            officer=officer.name,
            position=officer.position,
            department=officer.department,
            department_code=officer.department_code,
            action=action,
            note=note,
        )
        dossier.history.append(entry)
        dossier.state, dossier.status, dossier.unmapped = state, status, parked is not None
        self._move(dossier, at)
        if dossier.final and dossier.index in self._active_at:
            self._retire(dossier)
        if self.dialect == "dvclt":
            self._emit(dossier, entry)

    def _move(self, dossier: SimDossier, at: datetime) -> None:
        """Set the dossier's modification time, keeping the timeline in order."""
        if at == dossier.modified_at:
            return
        old = (dossier.modified_at, dossier.igate_id, dossier.index)
        del self._timeline[bisect.bisect_left(self._timeline, old)]
        dossier.modified_at = at
        bisect.insort(self._timeline, (at, dossier.igate_id, dossier.index))

    def _apply_effects(
        self,
        dossier: SimDossier,
        state: State,
        previous: State | None,
        at: datetime,
        *,
        resumed: bool,
    ) -> None:
        """Dates, fees and result documents that a transition sets."""
        if resumed:
            return
        if state == State.RECEIVED:
            dossier.received_at = at
            dossier.due_at = at + timedelta(days=dossier.procedure.days)
            if dossier.fee_amount and not dossier.fee_paid and dossier.channel == "in_person":
                dossier.fee_paid, dossier.payment_method = True, "counter"
        elif state == State.SUPPLEMENT:
            dossier.supplements += 1
        elif state == State.PAYMENT:
            dossier.payments += 1
        elif state == State.PROCESSING and previous == State.PAYMENT:
            dossier.fee_paid = True
            dossier.payment_method = (
                self.rng.choice(("online", "gateway")) if dossier.online else "counter"
            )
        elif state in {State.REFUSED, State.STOPPED, State.RESULT}:
            dossier.released_at = at
            if state == State.RESULT:
                code = f"KQ-{at:%Y}-{self._file_seq + 1:06d}"
                self._add_file(
                    dossier, "KQ01", result_document(dossier.procedure), result_code=code
                )
        elif state == State.RETURNED:
            dossier.finished_at = at
            if dossier.fee_amount and not dossier.fee_paid:
                dossier.fee_paid, dossier.payment_method = True, "counter"
        elif state == State.WITHDRAWN:
            dossier.will_stop = self.rng.random() < STOP_AFTER_WITHDRAWAL

    def _action(  # noqa: PLR0911, PLR0912 - one wording per transition reads best as a match
        self,
        dossier: SimDossier,
        state: State,
        previous: State | None,
        *,
        resume: bool,
        parked: SourceStatus | None,
    ) -> tuple[str, str]:
        rng = self.rng
        if resume:
            return "resume", "Tiếp tục xử lý hồ sơ"
        if parked is not None:
            if state == State.NEW:
                return "collect", "Đang thu thập thông tin, chờ công dân hoàn thiện hồ sơ"
            return "pause", "Tạm dừng xử lý, chờ ý kiến của cơ quan liên quan"
        match state:
            case State.NEW:
                if dossier.online:
                    return "submit", "Nộp hồ sơ trực tuyến qua Cổng Dịch vụ công"
                return "submit", "Hồ sơ nộp qua bưu chính, chờ kiểm tra tiếp nhận"
            case State.RECEIVED:
                due = dossier.due_at or dossier.modified_at
                return "receive", f"Tiếp nhận hồ sơ, hẹn trả kết quả ngày {due:%d/%m/%Y}"
            case State.PROCESSING:
                if previous == State.SUPPLEMENT:
                    return "supplemented", "Đã nhận hồ sơ bổ sung, tiếp tục xử lý"
                if previous == State.PAYMENT:
                    return "paid", "Đã hoàn thành nghĩa vụ tài chính, tiếp tục xử lý"
                if previous == State.PROCESSING:
                    return "handover", "Chuyển hồ sơ đến đơn vị phối hợp xử lý"
                if self.dialect == "dvclt":
                    return "process", "Đã chuyển hồ sơ sang hệ thống đăng ký hộ tịch"
                return "process", "Chuyển hồ sơ đến phòng chuyên môn thẩm định"
            case State.SUPPLEMENT:
                return "supplement", f"Đề nghị bổ sung {rng.choice(_SUPPLEMENT_NOTES)}"
            case State.PAYMENT:
                amount = f"{dossier.fee_amount:,}".replace(",", ".")
                return "payment", f"Đề nghị nộp phí, lệ phí: {amount} đồng"
            case State.WITHDRAWN:
                return "withdraw", "Công dân có đơn đề nghị rút hồ sơ"
            case State.STOPPED:
                if previous == State.WITHDRAWN:
                    return "stop", "Dừng xử lý theo đề nghị rút hồ sơ của công dân"
                return "stop", "Dừng xử lý do hồ sơ không đủ điều kiện giải quyết"
            case State.REFUSED:
                return "refuse", f"Từ chối tiếp nhận: {rng.choice(_REFUSAL_NOTES)}"
            case State.RESULT:
                return "result", "Đã phê duyệt, có kết quả giải quyết"
            case State.RETURNED:
                if dossier.by_post:
                    return "return", "Đã gửi kết quả qua dịch vụ bưu chính công ích"
                return "return", "Đã trả kết quả trực tiếp cho người nộp hồ sơ"
        raise AssertionError(state)  # pragma: no cover - the match is exhaustive

    def _officer(self, dossier: SimDossier, state: State, action: str) -> people.Officer:
        """Who made a change: the applicant for an online submission, the one-stop desk
        at the counter, a specialist while processing, a leader for decisions."""
        roster = self._staff[dossier.agency.code]
        if action == "submit" and dossier.online:
            return people.Officer(
                dossier.applicant.contact.full_name, "Người nộp hồ sơ", "Cổng Dịch vụ công", "DVC"
            )
        if state in {State.RESULT, State.STOPPED}:
            return self.rng.choice(roster["leader"])
        if state in {State.PROCESSING, State.SUPPLEMENT, State.PAYMENT} or action == "pause":
            specialist = self.rng.choice(roster["specialist"])
            department = f"Phòng {dossier.procedure.domain_name}"
            return people.Officer(
                specialist.name, specialist.position, department, dossier.procedure.domain_code
            )
        return self.rng.choice(roster["desk"])

    # --- dvclt queue ---------------------------------------------------------------------

    def _emit(self, dossier: SimDossier, entry: HistoryEntry) -> None:
        """The message of one state change: a snapshot of the dossier at that time."""
        bad = self._bad_kind() if self._chance(self.settings.bad_data_share) else None
        message = Message(
            id=0,  # given when queued, so that ids grow in queue order
            tech_id="",
            ma_ho_so=dossier.ma_ho_so,
            entry=entry,
            received_at=dossier.received_at or dossier.submitted_at,
            due_at=dossier.due_at,
            files=tuple(dossier.files),
            form=dict(dossier.form),
            bad=bad,
        )
        dossier.messages.append(message)
        if self._deferred is not None:
            self._deferred.append(message)
        else:
            self._enqueue(message)

    def _enqueue(self, message: Message) -> None:
        """Put a message in the queue, oldest first — unless it jumps ahead of its
        dossier's previous message, still unacknowledged (out of order); and maybe a
        second time under another id (duplicate)."""
        self._register(message)
        position = len(self.queue)
        earlier = self._last_queued.get(message.ma_ho_so)
        if (
            earlier is not None
            and not earlier.acknowledged
            and self._chance(self.settings.out_of_order_share)
        ):
            position = self.queue.index(earlier)
        self.queue.insert(position, message)
        self._unacknowledged += 1
        self._last_queued[message.ma_ho_so] = message
        if self._chance(self.settings.duplicates_share):
            twin = dataclasses.replace(message, duplicate_of=message.id)
            self._register(twin)
            self._by_key[message.ma_ho_so].messages.append(twin)
            self.queue.insert(position + 1, twin)
            self._unacknowledged += 1

    def _register(self, message: Message) -> None:
        self._message_seq += 1
        message.id = self._message_seq
        message.tech_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self._messages[message.id] = message

    def messages_in_time_order(self, dossier: SimDossier) -> list[Message]:
        return sorted(dossier.messages, key=lambda m: (m.entry.at, m.entry.seq, m.id))


def _birth_and_death(procedures: Sequence[Procedure]) -> tuple[Procedure, Procedure]:
    """The catalogue's birth and death registrations (else its first two civil-status
    procedures, else the first two procedures)."""
    by_name = {p.name: p for p in procedures}
    birth, death = by_name.get("Đăng ký khai sinh"), by_name.get("Đăng ký khai tử")
    civil = [p for p in procedures if p.domain_code == "HT"] or list(procedures)
    birth = birth or civil[0]
    death = death or (civil[1] if len(civil) > 1 else civil[0])
    return birth, death


def _dvclt_agencies(agencies: Iterable[Agency], procedures: Sequence[Procedure]) -> list[Agency]:
    """The agencies that register births and deaths: People's Committees and justice
    departments (every agency of a unit that has none of them)."""
    chosen: list[Agency] = []
    by_unit: dict[str, list[Agency]] = {}
    for agency in agencies:
        by_unit.setdefault(agency.unit, []).append(agency)
    words = ("Ủy ban nhân dân", "Tư pháp", "Hộ tịch")
    for unit_agencies in by_unit.values():
        # Births and deaths are registered below the province or ministry itself.
        civil = [
            a
            for a in unit_agencies
            if any(w in a.name for w in words) and not is_top_level_unit(a.code)
        ]
        chosen.extend(civil or unit_agencies)
    birth, death = _birth_and_death(procedures)
    return [Agency(a.code, a.name, a.unit, (birth, death)) for a in chosen]


def _dvclt_form(
    rng: random.Random, applicant: people.Applicant, module: str, at: datetime
) -> dict[str, Any]:
    """The DVCLT application form: the applicant, then the registered event."""
    form: dict[str, Any] = {
        "hoTen": applicant.contact.full_name,
        "soDinhDanh": applicant.id_no,
        "soDienThoai": applicant.phone,
        "diaChi": applicant.address,
    }
    subject = people.person(rng)
    if module == "LTKS":
        born = at - timedelta(days=rng.randint(1, 60))
        form |= {
            "hoTenTreEm": f"{applicant.contact.family} {subject.full_name.split(' ', 1)[1]}",
            "gioiTinh": "Nam" if subject.male else "Nữ",
            "ngaySinh": born.strftime("%d/%m/%Y"),
            "noiSinh": "Bệnh viện Đa khoa " + rng.choice(("tỉnh", "khu vực", "huyện")),
            "quanHeVoiTreEm": rng.choice(
                ("Cha", "Ông") if applicant.contact.male else ("Mẹ", "Bà")
            ),
        }
    else:
        died = at - timedelta(days=rng.randint(1, 14))
        form |= {
            "hoTenNguoiChet": subject.full_name,
            "ngayChet": died.strftime("%d/%m/%Y"),
            "noiChet": "Tại nhà riêng" if rng.random() < 0.6 else "Tại bệnh viện",
            "quanHeVoiNguoiChet": rng.choice(
                ("Con", "Chồng", "Cháu") if applicant.contact.male else ("Con", "Vợ", "Cháu")
            ),
        }
    return form

"""Decision 766/QĐ-TTg indicators computed from synced dossiers (indicators-766.md).

Pure: dossier facts in, indicator values, points, group totals and counts out — no I/O,
no clock (the caller passes ``now``). Each rule of the spec is one small function below,
named after it, so that a test can pin each one by hand-computed cases.

The service computes seven of the portal's indicators (56 of its 100 points); the others
need data it does not hold and are not computed here — never reported as 0. Where the
spec is silent, the policies taken are marked **policy** and listed in
``docs/indicators-766.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from app.domain.agency import agency_of_dossier
from app.domain.dates import from_fourteen_digits
from app.domain.periods import Period
from app.domain.status import DossierStatus

_S = DossierStatus

MAX_POINTS = 56
"""The points of the seven indicators computed here (of the portal's 100)."""


class Group(StrEnum):
    """The six groups of the portal's evaluation pages."""

    TRANSPARENCY = "transparency"  # Công khai, minh bạch
    PROGRESS = "progress"  # Tiến độ giải quyết
    ONLINE_SERVICE = "online_service"  # Dịch vụ công trực tuyến
    ONLINE_PAYMENT = "online_payment"  # Thanh toán trực tuyến
    DIGITISATION = "digitisation"  # Số hóa hồ sơ
    SATISFACTION = "satisfaction"  # Mức độ hài lòng


GROUP_MAX_POINTS: Mapping[Group, int] = {
    Group.TRANSPARENCY: 18,
    Group.PROGRESS: 20,
    Group.ONLINE_SERVICE: 12,
    Group.ONLINE_PAYMENT: 10,
    Group.DIGITISATION: 22,
    Group.SATISFACTION: 18,
}
"""Each group's maximum on the portal (all its indicators, computable here or not)."""


@dataclass(frozen=True, slots=True)
class Indicator:
    """An indicator computed here: its points are ``max_points × value``, or
    ``max_points × threshold(value, full_marks_at)`` when it has a threshold."""

    id: str
    name: str
    group: Group
    max_points: int
    full_marks_at: float | None = None


INDICATORS: tuple[Indicator, ...] = (
    Indicator("1.4", "dossier_sync", Group.TRANSPARENCY, 6),
    Indicator("2.1", "on_time", Group.PROGRESS, 20),
    Indicator("3.3", "online_share", Group.ONLINE_SERVICE, 12, 0.5),
    Indicator("4.1", "online_payment", Group.ONLINE_PAYMENT, 6),
    Indicator("6.1", "electronic_result", Group.DIGITISATION, 6, 0.8),  # threshold: policy
    Indicator("6.2", "digitised_components", Group.DIGITISATION, 4, 0.8),  # policy
    Indicator("6.4", "reused_data", Group.DIGITISATION, 2, 0.8),  # policy
)
INDICATOR_BY_ID: Mapping[str, Indicator] = {i.id: i for i in INDICATORS}

# Why a ratio is null: its denominator is 0 (the spec: null with the reason, not 0, not 1).
NO_RECEIVED = "no dossier received in the period"
NO_RECEIVED_ANYWHERE = "no dossier received in the period, at the source or at the portal"
NO_FEES = "no dossier received in the period has fees to pay"
NO_RESULT = "no dossier reached status 9 or 10 in the period"

# Statuses that end a dossier without a result (spec, `end(d)`).
ENDED_WITHOUT_RESULT = frozenset({_S.NOT_RECEIVED, _S.WITHDRAWN, _S.STOPPED})
# Statuses that keep a dossier out of `received` (never received, or refused at the counter).
NOT_RECEIVED_STATUSES = frozenset({_S.NEWLY_REGISTERED, _S.NOT_RECEIVED})
RESULT_STATUSES = frozenset({_S.RESULT_READY, _S.RESULT_RETURNED})
EARLY_BY = timedelta(days=1)


# --- report shapes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndicatorValue:
    """One indicator for one agency (or the unit) and period. ``value`` and ``points``
    are null exactly when ``denominator`` is 0, and ``reason`` then says why."""

    id: str
    name: str
    value: float | None
    points: float | None
    numerator: int
    denominator: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AgencyReport:
    """The indicators of one agency (or, as a unit's ``total``, of all its dossiers).

    ``groups``: each group's points from its indicators computed here (null when none
    is); ``points``: their sum, out of ``max_points`` (56); ``counts``: the figures the
    indicators come from (see :func:`dossier_counts`); ``overdue_rate``: late over
    received."""

    agency: str
    indicators: list[IndicatorValue]
    groups: dict[str, float | None]
    points: float
    max_points: int
    counts: dict[str, int]
    overdue_rate: float | None

    def indicator(self, indicator_id: str) -> IndicatorValue:
        """The indicator with this id (``"2.1"``…); :class:`KeyError` for an unknown id."""
        for value in self.indicators:
            if value.id == indicator_id:
                return value
        raise KeyError(indicator_id)


@dataclass(frozen=True, slots=True)
class UnitReport:
    """A unit's report for a period: one :class:`AgencyReport` per agency with
    dossiers in the period, and ``total`` computed over all of them at once (a ratio of
    sums, not an average of ratios)."""

    unit: str
    period: Period
    agencies: list[AgencyReport]
    total: AgencyReport


# --- dossier facts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Supplement:
    """A request for supplementary documents (``DanhSachHoSoBoSung`` item): when it was
    made (``NgayBoSung``) and when the supplement was received (``NgayTiepNhanBoSung``,
    None while the applicant has not answered)."""

    requested_at: datetime
    answered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DossierFacts:
    """What the indicators need of one dossier: its latest state from the source, the
    first time its history reached each status, and where it stands with the portal.

    ``synced``: the portal holds its latest source state (read-back confirmed, and the
    source's latest record is not in quarantine). ``portal_status``: the status of the
    copy the portal is known to hold (None when read-back never found one)."""

    agency: str
    status: DossierStatus
    received_at: datetime | None = None  # NgayTiepNhan
    due_at: datetime | None = None  # NgayHenTra
    closed_at: datetime | None = None  # NgayKetThucXuLy
    first_reached: Mapping[DossierStatus, datetime] = field(default_factory=dict)
    supplements: tuple[Supplement, ...] = ()
    online: bool = False  # KenhThucHien = 2
    fees_total: int = 0  # Σ DanhSachLePhi[].Gia
    paid_online: bool = False  # DuocThanhToanTrucTuyen 1 or 2
    digitised: bool = False  # HoSoCoThanhPhanSoHoa = 1
    reused_data: bool = False  # a TaiLieuNop item reused or taken from the national store
    electronic_result: bool = False  # a result with DuongDanTepTinKetQua
    synced: bool = False
    portal_status: DossierStatus | None = None


def facts_from_state(
    state: Mapping[str, Any],
    *,
    first_reached: Mapping[DossierStatus, datetime] | None = None,
    synced: bool = False,
    portal_status: DossierStatus | None = None,
) -> DossierFacts:
    """The facts of a stored dossier (portal ``DongBoHoSoMC`` JSON, validated when it was
    stored). Read leniently all the same: a field that does not read as the contract
    says counts as absent, so one odd record cannot take a whole report down."""
    return DossierFacts(
        agency=agency_of_dossier(str(state["MaHoSo"])),
        status=DossierStatus(str(state["TrangThaiHoSo"])),
        received_at=_date(state.get("NgayTiepNhan")),
        due_at=_date(state.get("NgayHenTra")),
        closed_at=_date(state.get("NgayKetThucXuLy")),
        first_reached=dict(first_reached or {}),
        supplements=tuple(
            Supplement(requested, _date(item.get("NgayTiepNhanBoSung")))
            for item in _items(state, "DanhSachHoSoBoSung")
            if (requested := _date(item.get("NgayBoSung"))) is not None
        ),
        online=state.get("KenhThucHien") == 2,
        fees_total=sum(
            item["Gia"]
            for item in _items(state, "DanhSachLePhi")
            if isinstance(item.get("Gia"), int) and item["Gia"] > 0
        ),
        paid_online=state.get("DuocThanhToanTrucTuyen") in (1, 2),
        digitised=state.get("HoSoCoThanhPhanSoHoa") == 1,
        # A document the applicant deleted was not part of the dossier (policy).
        reused_data=any(
            item.get("IsDeleted") != 1
            and (item.get("DuocTaiSuDung") == 1 or item.get("DuocLayTuKhoDMQG") == 1)
            for item in _items(state, "TaiLieuNop")
        ),
        electronic_result=any(
            isinstance(link := item.get("DuongDanTepTinKetQua"), str) and link.strip() != ""
            for item in _items(state, "DanhSachGiayToKetQua")
        ),
        synced=synced,
        portal_status=portal_status,
    )


def _date(value: object) -> datetime | None:
    """A stored ``yyyyMMddHHmmss`` date, as :func:`parse_portal_datetime` reads it (a
    report reads three dates of every dossier of its period)."""
    if not isinstance(value, str) or len(value) != 14 or not (value.isascii() and value.isdigit()):
        return None
    try:
        return from_fourteen_digits(value)
    except ValueError:
        return None


def _items(state: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = state.get(name)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


# --- the rules -----------------------------------------------------------------------------


def threshold(x: float, t: float) -> float:
    """``min(1, x / t)``: full marks from ratio ``t`` up."""
    return min(1.0, x / t)


def in_window(moment: datetime | None, since: datetime, until: datetime) -> bool:
    return moment is not None and since <= moment < until


def is_received(d: DossierFacts, since: datetime, until: datetime) -> bool:
    """``received(A, P)``: ``NgayTiepNhan`` in P and status neither 1 nor 3."""
    return in_window(d.received_at, since, until) and d.status not in NOT_RECEIVED_STATUSES


def is_received_at_portal(d: DossierFacts, since: datetime, until: datetime) -> bool:
    """Counted in ``received_portal(A, P)``: ``NgayTiepNhan`` in P and the portal holds a
    copy whose status is neither 1 nor 3 (**policy**: the portal's copy is what read-back
    last confirmed; its ``NgayTiepNhan`` is taken from the latest source state, the only
    one stored)."""
    return (
        in_window(d.received_at, since, until)
        and d.portal_status is not None
        and d.portal_status not in NOT_RECEIVED_STATUSES
    )


def supplement_wait(d: DossierFacts) -> timedelta:
    """Time spent waiting for the applicant: Σ ``NgayTiepNhanBoSung − NgayBoSung`` over
    the answered requests (an answer dated before its request counts 0, **policy**)."""
    waited = timedelta(0)
    for request in d.supplements:
        if request.answered_at is not None:
            waited += max(timedelta(0), request.answered_at - request.requested_at)
    return waited


def due(d: DossierFacts) -> datetime | None:
    """``due(d)``: ``NgayHenTra`` plus the supplement waiting time; None without a
    ``NgayHenTra``."""
    return None if d.due_at is None else d.due_at + supplement_wait(d)


def result_at(d: DossierFacts) -> datetime | None:
    """When the dossier first reached status 9, else 10, in its history; for a dossier at
    9 or 10 whose history does not show it, ``NgayKetThucXuLy`` (**policy**)."""
    for status in (_S.RESULT_READY, _S.RESULT_RETURNED):
        if status in d.first_reached:
            return d.first_reached[status]
    return d.closed_at if d.status in RESULT_STATUSES else None


def is_open(d: DossierFacts) -> bool:
    """Still being processed: no result in its history and not ended in 3, 7 or 8."""
    return result_at(d) is None and d.status not in ENDED_WITHOUT_RESULT


def end(d: DossierFacts, judged_at: datetime) -> datetime:
    """``end(d)``: the time of the result (:func:`result_at`); for a dossier ended in 3,
    7 or 8, ``NgayKetThucXuLy`` (else, **policy**, the first time its history reached
    that status); for an open one — or one whose end has no known time — ``judged_at``:
    the end of the period, or ``now`` while the period is not over (**policy**: an open
    dossier is not late before its due time has passed)."""
    reached = result_at(d)
    if reached is not None:
        return reached
    if d.status in ENDED_WITHOUT_RESULT:
        known = d.closed_at or d.first_reached.get(d.status)
        if known is not None:
            return known
    return judged_at


def is_on_time(d: DossierFacts, judged_at: datetime) -> bool:
    """``on_time(d)``: ended (or judged) by its due time, with at most one supplement
    request — two or more make it late whatever the dates. A dossier without
    ``NgayHenTra`` has no due time to miss (**policy**)."""
    if len(d.supplements) > 1:
        return False
    deadline = due(d)
    return deadline is None or end(d, judged_at) <= deadline


def is_early(d: DossierFacts, judged_at: datetime) -> bool:
    """On time, ended, and ended at least a day before ``NgayHenTra`` (the date as given,
    without the supplement extension)."""
    return (
        d.due_at is not None
        and not is_open(d)
        and is_on_time(d, judged_at)
        and end(d, judged_at) <= d.due_at - EARLY_BY
    )


def judgement_time(period: Period, now: datetime) -> datetime:
    """When the period's open dossiers are judged: its end, or ``now`` before then."""
    return min(period.bounds()[1], now)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Every rule applied once to one dossier for one period (the indicators and counts
    of an agency and of its unit are then plain tallies)."""

    facts: DossierFacts
    received: bool  # in received(A, P)
    at_portal: bool  # in received_portal(A, P)
    dated_in_period: bool  # NgayTiepNhan in P, whatever the status
    result_in_period: bool  # first result (9, else 10) in P
    on_time: bool
    early: bool
    open: bool


def judge(d: DossierFacts, since: datetime, until: datetime, judged_at: datetime) -> Verdict:
    received = is_received(d, since, until)
    punctual = received and is_on_time(d, judged_at)
    return Verdict(
        facts=d,
        received=received,
        at_portal=is_received_at_portal(d, since, until),
        dated_in_period=in_window(d.received_at, since, until),
        result_in_period=in_window(result_at(d), since, until),
        on_time=punctual,
        early=punctual and is_early(d, judged_at),
        open=received and is_open(d),
    )


# --- indicators ----------------------------------------------------------------------------


def _indicator(
    indicator_id: str,
    numerator: int,
    denominator: int,
    reason: str,
    factor: float | None = 1.0,
) -> IndicatorValue:
    """``numerator / denominator × factor`` scored by the indicator's rule; null (with
    ``reason``) on an empty denominator or a null ``factor``."""
    spec = INDICATOR_BY_ID[indicator_id]
    if denominator == 0 or factor is None:
        return IndicatorValue(spec.id, spec.name, None, None, numerator, denominator, reason)
    value = numerator / denominator * factor
    return IndicatorValue(
        spec.id, spec.name, value, points(spec, value), numerator, denominator, None
    )


def points(spec: Indicator, value: float) -> float:
    """The indicator's points for ``value``."""
    if spec.full_marks_at is None:
        return spec.max_points * value
    return spec.max_points * threshold(value, spec.full_marks_at)


@dataclass(slots=True)
class Tally:
    """What the indicators and counts of an agency (or a unit) are computed from: every
    rule's count over its dossiers. A report keeps one per agency and one for the unit
    and adds each dossier's :class:`Verdict` to them as it is judged, so its memory does
    not grow with the period's dossiers (a month can hold millions); the unit's counts
    are then the sums of its agencies', and its ratios ratios of those sums."""

    received: int = 0
    synced: int = 0  # received and synced: 1.4's numerator
    at_portal: int = 0
    on_time: int = 0
    early: int = 0
    open: int = 0
    online: int = 0
    with_fees: int = 0
    paid_online: int = 0  # of those with fees
    reached_result: int = 0
    electronic_result: int = 0  # of those that reached a result
    digitised: int = 0
    reused_data: int = 0
    by_status: dict[DossierStatus, int] = field(default_factory=dict)  # dated in P

    def add(self, v: Verdict) -> None:
        d = v.facts
        if v.received:
            self.received += 1
            self.synced += d.synced
            self.on_time += v.on_time
            self.early += v.early
            self.open += v.open
            self.online += d.online
            self.digitised += d.digitised
            self.reused_data += d.reused_data
            if d.fees_total > 0:
                self.with_fees += 1
                self.paid_online += d.paid_online
        self.at_portal += v.at_portal
        if v.result_in_period:
            self.reached_result += 1
            self.electronic_result += d.electronic_result
        if v.dated_in_period:
            self.by_status[d.status] = self.by_status.get(d.status, 0) + 1

    @classmethod
    def of(cls, verdicts: Iterable[Verdict]) -> Tally:
        tally = cls()
        for v in verdicts:
            tally.add(v)
        return tally


def dossier_sync(t: Tally) -> IndicatorValue:
    """1.4: ``synced / max(received_source, received_portal)``."""
    return _indicator("1.4", t.synced, max(t.received, t.at_portal), NO_RECEIVED_ANYWHERE)


def on_time(t: Tally) -> IndicatorValue:
    """2.1: on-time over received."""
    return _indicator("2.1", t.on_time, t.received, NO_RECEIVED)


def online_share(t: Tally, sync: IndicatorValue) -> IndicatorValue:
    """3.3: the share submitted online (``KenhThucHien = 2``) times the sync rate (1.4).
    ``numerator``/``denominator`` are the share's."""
    return _indicator("3.3", t.online, t.received, NO_RECEIVED, sync.value)


def online_payment(t: Tally) -> IndicatorValue:
    """4.1: among received dossiers with fees (sum > 0), the share paid online."""
    return _indicator("4.1", t.paid_online, t.with_fees, NO_FEES)


def electronic_result(t: Tally) -> IndicatorValue:
    """6.1: among dossiers that reached status 9 or 10 in P — counted once, in the period
    of their *first* result status (**policy**) — the share with an electronic result."""
    return _indicator("6.1", t.electronic_result, t.reached_result, NO_RESULT)


def digitised_components(t: Tally) -> IndicatorValue:
    """6.2: the share of received dossiers with ``HoSoCoThanhPhanSoHoa = 1``."""
    return _indicator("6.2", t.digitised, t.received, NO_RECEIVED)


def reused_data(t: Tally) -> IndicatorValue:
    """6.4: the share of received dossiers with a submitted document reused
    (``DuocTaiSuDung = 1``) or taken from the national store (``DuocLayTuKhoDMQG = 1``)."""
    return _indicator("6.4", t.reused_data, t.received, NO_RECEIVED)


def indicators(t: Tally) -> list[IndicatorValue]:
    """The seven indicators, in the spec's order, over every dossier relevant to the
    period (received in it, or reaching a result in it)."""
    sync = dossier_sync(t)
    return [
        sync,
        on_time(t),
        online_share(t, sync),
        online_payment(t),
        electronic_result(t),
        digitised_components(t),
        reused_data(t),
    ]


def group_points(values: Sequence[IndicatorValue]) -> dict[str, float | None]:
    """Each group's computable points: the sum over its non-null indicators; null when
    none of its indicators is computed here or all are null."""
    totals: dict[str, float | None] = {}
    for group in Group:
        found = [
            v.points
            for v in values
            if v.points is not None and INDICATOR_BY_ID[v.id].group is group
        ]
        totals[group.value] = sum(found) if found else None
    return totals


def dossier_counts(t: Tally) -> dict[str, int]:
    """The figures reported alongside (no points), over the received dossiers:
    ``received``; ``on_time`` (2.1's numerator); ``early`` (of those, ended a day or more
    before ``NgayHenTra``); ``late`` (received − on_time); ``open`` (still processing,
    on time or not); ``synced``, ``received_portal`` (1.4's figures);
    ``reached_result`` (6.1's denominator); and ``status_1`` … ``status_10``: the
    dossiers with ``NgayTiepNhan`` in P by latest status, statuses 1 and 3 included."""
    counts = {
        "received": t.received,
        "on_time": t.on_time,
        "early": t.early,
        "late": t.received - t.on_time,
        "open": t.open,
        "synced": t.synced,
        "received_portal": t.at_portal,
        "reached_result": t.reached_result,
    }
    for status in DossierStatus:
        counts[f"status_{status.value}"] = t.by_status.get(status, 0)
    return counts


def _report(agency: str, tally: Tally) -> AgencyReport:
    values = indicators(tally)
    counts = dossier_counts(tally)
    return AgencyReport(
        agency=agency,
        indicators=values,
        groups=group_points(values),
        points=sum(v.points for v in values if v.points is not None),
        max_points=MAX_POINTS,
        counts=counts,
        overdue_rate=counts["late"] / counts["received"] if counts["received"] else None,
    )


class ReportBuilder:
    """A unit's report for a period, built one dossier at a time: each is judged when it
    is added and only the tallies are kept (see :class:`Tally`)."""

    def __init__(
        self, unit: str, period: Period, now: datetime, *, agencies: Iterable[str] = ()
    ) -> None:
        self.unit = unit
        self.period = period
        self.since, self.until = period.bounds()
        self.judged_at = judgement_time(period, now)
        self.total = Tally()
        self.agencies: dict[str, Tally] = {agency: Tally() for agency in agencies}

    def add(self, d: DossierFacts) -> None:
        verdict = judge(d, self.since, self.until, self.judged_at)
        self.total.add(verdict)
        tally = self.agencies.get(d.agency)
        if tally is None:
            tally = self.agencies[d.agency] = Tally()
        tally.add(verdict)

    def report(self) -> UnitReport:
        """The unit's report: one entry per agency that has dossiers among those added
        (and per agency it was created with, even without any), and the total."""
        return UnitReport(
            unit=self.unit,
            period=self.period,
            agencies=[_report(agency, self.agencies[agency]) for agency in sorted(self.agencies)],
            total=_report(self.unit, self.total),
        )


def agency_report(
    agency: str, facts: Iterable[DossierFacts], period: Period, now: datetime
) -> AgencyReport:
    """The report of ``facts`` (one agency's, or a unit's all) for ``period`` as of
    ``now``."""
    since, until = period.bounds()
    judged_at = judgement_time(period, now)
    return _report(agency, Tally.of(judge(d, since, until, judged_at) for d in facts))


def build_report(
    unit: str,
    period: Period,
    facts: Iterable[DossierFacts],
    now: datetime,
    *,
    agencies: Iterable[str] = (),
) -> UnitReport:
    """The unit's report: one entry per agency that has dossiers among ``facts`` (and
    per agency of ``agencies`` even without any), and the total over all ``facts``."""
    builder = ReportBuilder(unit, period, now, agencies=agencies)
    for d in facts:
        builder.add(d)
    return builder.report()

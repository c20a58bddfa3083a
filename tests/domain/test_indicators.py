"""The 766 indicators as pure functions (indicators-766.md): one hand-computed case (or
a few) per rule, and properties over generated dossiers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.dates import VN_TZ, parse_portal_datetime
from app.domain.indicators import (
    INDICATORS,
    MAX_POINTS,
    NO_FEES,
    NO_RECEIVED,
    NO_RECEIVED_ANYWHERE,
    NO_RESULT,
    DossierFacts,
    Supplement,
    agency_report,
    build_report,
    due,
    end,
    facts_from_state,
    is_early,
    is_on_time,
    is_open,
    is_received,
    result_at,
    supplement_wait,
    threshold,
)
from app.domain.periods import Period
from app.domain.status import DossierStatus as S

from .factories import PROPERTY, full_dossier, valid_dossier

MAY = Period(2024, 5)
SINCE, UNTIL = MAY.bounds()
AFTER_MAY = datetime(2025, 1, 1, tzinfo=UTC)  # "now" for a report of a past May
A53, A54 = "000.00.53.H26", "000.00.54.H26"


def vn(day: int, hour: int = 0, minute: int = 0, second: int = 0, month: int = 5) -> datetime:
    """A Vietnamese local time in 2024 (May by default)."""
    return datetime(2024, month, day, hour, minute, second, tzinfo=VN_TZ)


def facts(status: S = S.PROCESSING, **fields: Any) -> DossierFacts:
    """A dossier of agency 53 received May 2 08:00, due May 12 17:00, at ``status``."""
    values: dict[str, Any] = {
        "agency": A53,
        "status": status,
        "received_at": vn(2, 8),
        "due_at": vn(12, 17),
    }
    return DossierFacts(**(values | fields))


def done(at: datetime, status: S = S.RESULT_READY, **fields: Any) -> DossierFacts:
    """A dossier whose history reached ``status`` (9 by default) at ``at``."""
    return facts(status, first_reached={status: at}, **fields)


def report(*dossiers: DossierFacts, now: datetime = AFTER_MAY, period: Period = MAY) -> Any:
    return agency_report(A53, list(dossiers), period, now)


def values(*dossiers: DossierFacts, now: datetime = AFTER_MAY) -> dict[str, tuple[Any, ...]]:
    return {
        v.id: (v.value, v.points, v.numerator, v.denominator)
        for v in report(*dossiers, now=now).indicators
    }


# --- threshold scoring ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "t", "expected"),
    [(0.0, 0.5, 0.0), (0.4, 0.5, 0.8), (0.5, 0.5, 1.0), (0.9, 0.5, 1.0), (0.6, 0.8, 0.75)],
)
def test_threshold_gives_full_marks_from_t(x: float, t: float, expected: float) -> None:
    assert threshold(x, t) == pytest.approx(expected)


def test_points_with_and_without_threshold() -> None:
    # 10 received: 4 digitised (0.4), 4 online, 4 reused, 4 of the 5 with fees paid online.
    # 6.2: 4 × min(1, 0.4 / 0.8) = 2; 6.4: 2 × 0.5 = 1; 4.1 (no threshold): 6 × 0.8.
    dossiers = [
        facts(
            digitised=i < 4,
            reused_data=i < 4,
            online=i < 4,
            synced=True,
            fees_total=1000 if i < 5 else 0,
            paid_online=i < 4,
        )
        for i in range(10)
    ]
    got = values(*dossiers)
    assert got["6.2"] == (pytest.approx(0.4), pytest.approx(2.0), 4, 10)
    assert got["6.4"] == (pytest.approx(0.4), pytest.approx(1.0), 4, 10)
    assert got["4.1"] == (pytest.approx(0.8), pytest.approx(4.8), 4, 5)
    # 3.3: 0.4 online × 1.0 synced = 0.4; 12 × min(1, 0.4 / 0.5) = 9.6.
    assert got["3.3"] == (pytest.approx(0.4), pytest.approx(9.6), 4, 10)


def test_electronic_result_is_scored_with_a_threshold_of_0_8() -> None:
    # 5 results in May, 4 electronic: 0.8 → full 6 points; 3 of 5: 0.6 → 6 × 0.75 = 4.5.
    four = [done(vn(10), electronic_result=i < 4) for i in range(5)]
    three = [done(vn(10), electronic_result=i < 3) for i in range(5)]
    assert values(*four)["6.1"] == (pytest.approx(0.8), pytest.approx(6.0), 4, 5)
    assert values(*three)["6.1"] == (pytest.approx(0.6), pytest.approx(4.5), 3, 5)


# --- received, and period boundaries in Vietnamese time ------------------------------------


@pytest.mark.parametrize(
    ("received_at", "inside"),
    [
        (vn(1, 0, 0, 0), True),  # the first second of May in Vietnam
        (datetime(2024, 4, 30, 17, 0, tzinfo=UTC), True),  # the same instant in UTC
        (vn(31, 23, 59, 59), True),
        (vn(30, 23, 59, 59, month=4), False),
        (datetime(2024, 4, 30, 16, 59, 59, tzinfo=UTC), False),
        (vn(1, 0, 0, 0, month=6), False),
        (datetime(2024, 5, 31, 17, 0, tzinfo=UTC), False),  # 00:00 June 1 in Vietnam
        (None, False),
    ],
)
def test_received_in_a_month_of_vietnamese_time(received_at: datetime | None, inside: bool) -> None:
    assert is_received(facts(received_at=received_at), SINCE, UNTIL) is inside


@pytest.mark.parametrize("status", list(S))
def test_statuses_1_and_3_are_not_received(status: S) -> None:
    expected = status not in (S.NEWLY_REGISTERED, S.NOT_RECEIVED)
    assert is_received(facts(status), SINCE, UNTIL) is expected


def test_status_counts_include_the_dossiers_not_received() -> None:
    counts = report(facts(S.NEWLY_REGISTERED), facts(S.NOT_RECEIVED), facts(S.PROCESSING)).counts
    assert (counts["received"], counts["status_1"], counts["status_3"], counts["status_4"]) == (
        1,
        1,
        1,
        1,
    )
    assert sum(v for k, v in counts.items() if k.startswith("status_")) == 3


# --- due date and supplement waiting time ---------------------------------------------------


def test_supplement_waiting_time_extends_the_due_date() -> None:
    # Requested May 4 09:00, answered May 6 15:00: 2 days 6 hours of waiting.
    d = facts(supplements=(Supplement(vn(4, 9), vn(6, 15)),))
    assert supplement_wait(d) == timedelta(days=2, hours=6)
    assert due(d) == vn(14, 23)  # May 12 17:00 + 2 d 6 h
    # Ended May 14 22:00: past NgayHenTra, before the extended due date: on time.
    assert is_on_time(replace(d, first_reached={S.RESULT_READY: vn(14, 22)}), AFTER_MAY)
    assert not is_on_time(replace(d, first_reached={S.RESULT_READY: vn(14, 23, 0, 1)}), AFTER_MAY)


def test_an_unanswered_request_adds_no_waiting_time() -> None:
    d = facts(supplements=(Supplement(vn(4, 9)),))
    assert supplement_wait(d) == timedelta(0) and due(d) == vn(12, 17)


def test_an_answer_dated_before_its_request_counts_zero() -> None:
    assert supplement_wait(facts(supplements=(Supplement(vn(6), vn(4)),))) == timedelta(0)


def test_waiting_times_add_up() -> None:
    d = facts(supplements=(Supplement(vn(3), vn(4)), Supplement(vn(5), vn(5, 12))))
    assert supplement_wait(d) == timedelta(days=1, hours=12)


def test_without_ngayhentra_there_is_no_due_time_to_miss() -> None:
    d = done(vn(31), due_at=None)
    assert due(d) is None and is_on_time(d, AFTER_MAY) and not is_early(d, AFTER_MAY)


# --- on time, late, early -------------------------------------------------------------------


def test_ending_exactly_at_the_due_time_is_on_time() -> None:
    assert is_on_time(done(vn(12, 17)), AFTER_MAY)
    assert not is_on_time(done(vn(12, 17, 0, 1)), AFTER_MAY)


def test_two_supplement_requests_make_a_dossier_late() -> None:
    one = (Supplement(vn(3), vn(3, 12)),)
    two = (*one, Supplement(vn(4), vn(4, 12)))
    # Ended May 5, a week before its due date.
    assert is_on_time(done(vn(5), supplements=one), AFTER_MAY)
    assert not is_on_time(done(vn(5), supplements=two), AFTER_MAY)
    # Even unanswered, a second request counts.
    assert not is_on_time(done(vn(5), supplements=(*one, Supplement(vn(4)))), AFTER_MAY)
    assert not is_early(done(vn(5), supplements=two), AFTER_MAY)


def test_early_means_at_least_a_day_before_ngayhentra() -> None:
    assert is_early(done(vn(11, 17)), AFTER_MAY)  # exactly one day before
    assert not is_early(done(vn(11, 17, 0, 1)), AFTER_MAY)
    # The supplement extension does not move the early line: due May 15 17:00 with the
    # wait, ended May 12 10:00 — on time, but less than a day before NgayHenTra.
    waited = done(vn(12, 10), supplements=(Supplement(vn(3), vn(6)),))
    assert is_on_time(waited, AFTER_MAY) and not is_early(waited, AFTER_MAY)


def test_counts_of_a_hand_made_month() -> None:
    # Received in May: early (May 5), on time (May 12 17:00), late (May 13), open before
    # its due date (June 10), open past it (May 12).
    dossiers = [
        done(vn(5)),
        done(vn(12, 17)),
        done(vn(13)),
        facts(due_at=vn(10, 17, month=6)),
        facts(),
    ]
    r = report(*dossiers)
    assert {k: r.counts[k] for k in ("received", "on_time", "early", "late", "open")} == {
        "received": 5,
        "on_time": 3,
        "early": 1,
        "late": 2,
        "open": 2,
    }
    assert r.overdue_rate == pytest.approx(2 / 5)
    assert r.indicator("2.1").value == pytest.approx(3 / 5)
    assert r.indicator("2.1").points == pytest.approx(12.0)


# --- end of a dossier, open dossiers at the end of the period -------------------------------


def test_end_is_the_first_status_9_else_10() -> None:
    both = facts(
        S.RESULT_RETURNED, first_reached={S.RESULT_READY: vn(9), S.RESULT_RETURNED: vn(11)}
    )
    assert end(both, AFTER_MAY) == vn(9)
    only_10 = facts(S.RESULT_RETURNED, first_reached={S.RESULT_RETURNED: vn(11)})
    assert end(only_10, AFTER_MAY) == vn(11)


def test_a_result_without_history_ends_at_ngayketthucxuly() -> None:
    d = facts(S.RESULT_RETURNED, closed_at=vn(8))
    assert result_at(d) == vn(8) and end(d, AFTER_MAY) == vn(8) and not is_open(d)


@pytest.mark.parametrize("status", [S.WITHDRAWN, S.STOPPED, S.NOT_RECEIVED])
def test_ended_without_result_uses_ngayketthucxuly(status: S) -> None:
    d = facts(status, closed_at=vn(7), first_reached={status: vn(6)})
    assert end(d, AFTER_MAY) == vn(7) and not is_open(d) and result_at(d) is None
    # Without NgayKetThucXuLy: the first time the history reached the status.
    assert end(replace(d, closed_at=None), AFTER_MAY) == vn(6)
    # Without either: judged like an open dossier, though it is not open.
    bare = replace(d, closed_at=None, first_reached={})
    assert end(bare, vn(20)) == vn(20) and not is_open(bare)


def test_an_open_dossier_ends_at_the_end_of_the_period() -> None:
    # Due May 31 23:59:59: on time at the end of May (00:00 June 1)? No — one second late.
    late = facts(due_at=vn(31, 23, 59, 59))
    on_time = facts(due_at=vn(1, 0, 0, 0, month=6))
    assert is_open(late) and is_open(on_time)
    r = report(late, on_time)
    assert (r.counts["open"], r.counts["on_time"], r.counts["late"]) == (2, 1, 1)
    # Judged at the end of the quarter instead, both are late.
    q2 = report(late, on_time, period=Period.of_quarter(2024, 2))
    assert (q2.counts["on_time"], q2.counts["late"]) == (0, 2)


def test_an_open_dossier_is_judged_now_while_the_period_runs() -> None:
    # Due May 12 17:00. On May 10 it is not late yet; on May 20 it is.
    d = facts()
    assert report(d, now=vn(10)).counts["on_time"] == 1
    assert report(d, now=vn(20)).counts["late"] == 1


def test_a_dossier_that_ended_after_the_period_uses_its_real_end() -> None:
    # Received in May, due June 10, result June 12 (reported later): late in May's report.
    d = done(vn(12, month=6), due_at=vn(10, month=6))
    r = report(d)
    assert (r.counts["late"], r.counts["open"], r.counts["reached_result"]) == (1, 0, 0)


# --- 1.4: synced over max(received at the source, at the portal) ----------------------------


def test_dossier_sync_over_the_source_count() -> None:
    # 4 received, 3 synced; the portal holds those 3 (status 4).
    dossiers = [
        facts(synced=i < 3, portal_status=S.PROCESSING if i < 3 else None) for i in range(4)
    ]
    assert values(*dossiers)["1.4"] == (pytest.approx(0.75), pytest.approx(4.5), 3, 4)


def test_dossier_sync_over_the_portal_count_when_it_is_larger() -> None:
    # 2 received at the source, both synced. The portal also holds 2 dossiers of May at
    # status 2 that the source has since refused (3): 2 / max(2, 4) = 0.5.
    held = [facts(synced=True, portal_status=S.PROCESSING) for _ in range(2)]
    refused = [facts(S.NOT_RECEIVED, portal_status=S.RECEIVED) for _ in range(2)]
    r = report(*held, *refused)
    assert values(*held, *refused)["1.4"] == (pytest.approx(0.5), pytest.approx(3.0), 2, 4)
    assert (r.counts["received"], r.counts["received_portal"], r.counts["synced"]) == (2, 4, 2)


def test_the_portals_count_excludes_statuses_1_and_3_and_other_months() -> None:
    received = facts(synced=True, portal_status=S.PROCESSING)
    at_portal_refused = facts(S.NOT_RECEIVED, portal_status=S.NOT_RECEIVED)
    at_portal_new = facts(S.NEWLY_REGISTERED, portal_status=S.NEWLY_REGISTERED)
    april = facts(received_at=vn(30, month=4), portal_status=S.PROCESSING)
    assert values(received, at_portal_refused, at_portal_new, april)["1.4"] == (1.0, 6.0, 1, 1)


def test_dossier_sync_is_null_with_nothing_received_anywhere() -> None:
    sync = report().indicator("1.4")
    assert (sync.value, sync.points, sync.reason) == (None, None, NO_RECEIVED_ANYWHERE)
    # Nothing received at the source, but the portal holds one: 0 / 1, not null.
    only_portal = facts(S.NOT_RECEIVED, portal_status=S.RECEIVED)
    assert values(only_portal)["1.4"] == (0.0, 0.0, 0, 1)


# --- 3.3, 4.1, 6.1, 6.2, 6.4 ------------------------------------------------------------------


def test_online_share_is_scaled_by_the_sync_rate() -> None:
    # 4 received, all online, 2 synced (held by the portal): share 1 × sync 0.5 = 0.5 →
    # full 12 points; with 1 synced: 0.25 → 12 × 0.5 = 6.
    two = [facts(online=True, synced=i < 2, portal_status=S.PROCESSING) for i in range(4)]
    one = [facts(online=True, synced=i < 1, portal_status=S.PROCESSING) for i in range(4)]
    assert values(*two)["3.3"] == (pytest.approx(0.5), pytest.approx(12.0), 4, 4)
    assert values(*one)["3.3"] == (pytest.approx(0.25), pytest.approx(6.0), 4, 4)


def test_online_payment_counts_only_dossiers_with_fees() -> None:
    free_paid = facts(fees_total=0, paid_online=True)  # no fees: not in 4.1 at all
    paid = facts(fees_total=50000, paid_online=True)
    unpaid = facts(fees_total=20000)
    assert values(free_paid, paid, unpaid)["4.1"] == (0.5, 3.0, 1, 2)
    payment = report(free_paid).indicator("4.1")
    assert (payment.value, payment.points, payment.reason) == (None, None, NO_FEES)


def test_electronic_result_counts_the_period_of_the_first_result() -> None:
    march = done(vn(10, month=5), received_at=vn(10, month=3), electronic_result=True)
    # Status 9 in April, 10 in May: its result belongs to April.
    april_then_may = facts(
        S.RESULT_RETURNED,
        first_reached={S.RESULT_READY: vn(29, month=4), S.RESULT_RETURNED: vn(2)},
        electronic_result=True,
    )
    paper = done(vn(31, 23, 59, 59))
    june = done(vn(1, month=6), electronic_result=True)
    r = report(march, april_then_may, paper, june)
    assert values(march, april_then_may, paper, june)["6.1"] == (0.5, pytest.approx(3.75), 1, 2)
    assert r.counts["reached_result"] == 2
    # The March dossier is not a received one of May.
    assert r.counts["received"] == 3


def test_electronic_result_is_null_without_results_in_the_period() -> None:
    value = report(facts()).indicator("6.1")
    assert (value.value, value.reason, value.denominator) == (None, NO_RESULT, 0)


def test_facts_are_read_from_the_portal_json() -> None:
    state = full_dossier("10", MaHoSo="000.00.54.H26-1", KenhThucHien=2)
    d = facts_from_state(state, synced=True, portal_status=S.RESULT_RETURNED)
    assert (d.agency, d.status, d.synced, d.portal_status) == (
        A54,
        S.RESULT_RETURNED,
        True,
        S.RESULT_RETURNED,
    )
    assert d.received_at == datetime(2024, 1, 25, 8, 30, tzinfo=VN_TZ)
    assert d.due_at == datetime(2024, 2, 8, 17, 0, tzinfo=VN_TZ)
    assert d.closed_at == datetime(2024, 2, 5, 10, 0, tzinfo=VN_TZ)
    assert d.supplements == (
        Supplement(datetime(2024, 1, 26, 9, tzinfo=VN_TZ), datetime(2024, 1, 27, 9, tzinfo=VN_TZ)),
    )
    assert (d.online, d.fees_total, d.paid_online, d.digitised) == (True, 50000, True, True)
    assert (d.reused_data, d.electronic_result) == (True, True)


@PROPERTY
@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2099, 12, 31, 23, 59, 59),  # noqa: DTZ001
    )
)
def test_dates_are_read_as_the_portal_parser_reads_them(moment: datetime) -> None:
    text = moment.strftime("%Y%m%d%H%M%S")
    d = facts_from_state(valid_dossier("2", NgayTiepNhan=text))
    assert d.received_at == parse_portal_datetime(text)
    assert d.received_at is not None and d.received_at.tzinfo is VN_TZ


@pytest.mark.parametrize(
    "text", ["2024013108300", "2024-01-31T08:30", "20240230083000", "２０２４０１３１０８３０００"]
)
def test_an_unreadable_stored_date_counts_as_absent(text: str) -> None:
    state = valid_dossier("2") | {"NgayHenTra": text}
    assert facts_from_state(state).due_at is None


def test_facts_of_a_bare_dossier() -> None:
    d = facts_from_state(valid_dossier("2", KenhThucHien=1, DuocThanhToanTrucTuyen=0))
    assert (d.online, d.fees_total, d.paid_online, d.digitised) == (False, 0, False, False)
    assert (d.reused_data, d.electronic_result, d.synced, d.portal_status) == (
        False,
        False,
        False,
        None,
    )
    assert d.supplements == () and d.closed_at is None


@pytest.mark.parametrize(
    ("documents", "reused"),
    [
        ([{"TenTepDinhKem": "a", "DuocTaiSuDung": 1}], True),
        ([{"TenTepDinhKem": "a", "DuocLayTuKhoDMQG": 1}], True),
        ([{"TenTepDinhKem": "a", "DuocTaiSuDung": 0, "DuocLayTuKhoDMQG": 0}], False),
        ([{"TenTepDinhKem": "a", "DuocTaiSuDung": 1, "IsDeleted": 1}], False),
        ([], False),
    ],
)
def test_reused_data_reads_the_submitted_documents(
    documents: list[dict[str, Any]], reused: bool
) -> None:
    assert facts_from_state(valid_dossier("2", TaiLieuNop=documents)).reused_data is reused


@pytest.mark.parametrize(
    ("results", "electronic"),
    [
        ([{"TenGiayTo": "a", "DuongDanTepTinKetQua": "https://x/1"}], True),
        ([{"TenGiayTo": "a"}, {"TenGiayTo": "b", "DuongDanTepTinKetQua": "https://x/2"}], True),
        ([{"TenGiayTo": "a", "DuongDanTepTinKetQua": "  "}], False),
        ([{"TenGiayTo": "a"}], False),
    ],
)
def test_electronic_result_needs_a_result_file_link(
    results: list[dict[str, Any]], electronic: bool
) -> None:
    state = valid_dossier("9", DanhSachGiayToKetQua=results)
    assert facts_from_state(state).electronic_result is electronic


def test_fees_add_up_over_the_list() -> None:
    state = valid_dossier(
        "2",
        DanhSachLePhi=[{"TenPhiLePhi": "a", "Gia": 20000}, {"TenPhiLePhi": "b", "Gia": 0}],
    )
    assert facts_from_state(state).fees_total == 20000


# --- nulls, groups, totals -------------------------------------------------------------------


def test_every_ratio_is_null_with_a_reason_on_an_empty_period() -> None:
    r = report()
    assert [(v.id, v.value, v.points, v.reason) for v in r.indicators] == [
        ("1.4", None, None, NO_RECEIVED_ANYWHERE),
        ("2.1", None, None, NO_RECEIVED),
        ("3.3", None, None, NO_RECEIVED),
        ("4.1", None, None, NO_FEES),
        ("6.1", None, None, NO_RESULT),
        ("6.2", None, None, NO_RECEIVED),
        ("6.4", None, None, NO_RECEIVED),
    ]
    assert (r.points, r.max_points, r.overdue_rate) == (0, 56, None)
    assert set(r.groups.values()) == {None}


def test_a_zero_ratio_is_zero_not_null() -> None:
    # One received dossier, late, not synced, at the counter, no digitisation.
    r = report(facts(online=False))
    assert [(v.id, v.value, v.reason) for v in r.indicators if v.value is not None] == [
        ("1.4", 0.0, None),
        ("2.1", 0.0, None),
        ("3.3", 0.0, None),
        ("6.2", 0.0, None),
        ("6.4", 0.0, None),
    ]
    assert r.groups["progress"] == 0.0 and r.groups["online_payment"] is None


def test_groups_add_their_indicators_and_the_total_adds_the_groups() -> None:
    # One received dossier, everything right: every computable point, 56.
    best = done(
        vn(5),
        online=True,
        synced=True,
        portal_status=S.RESULT_READY,
        fees_total=1,
        paid_online=True,
        digitised=True,
        reused_data=True,
        electronic_result=True,
    )
    r = report(best)
    assert r.groups == {
        "transparency": 6.0,
        "progress": 20.0,
        "online_service": 12.0,
        "online_payment": 6.0,
        "digitisation": 12.0,
        "satisfaction": None,
    }
    assert r.points == 56.0 == MAX_POINTS


def test_the_units_total_is_a_ratio_of_sums_not_an_average() -> None:
    # Agency 53: 1 of 1 on time; agency 54: 1 of 3. Average of ratios 2/3; unit: 2/4.
    dossiers = [done(vn(5)), *(done(vn(5) if i == 0 else vn(20), agency=A54) for i in range(3))]
    unit = build_report("000.00.00.H26", MAY, dossiers, AFTER_MAY)
    assert [a.agency for a in unit.agencies] == [A53, A54]
    assert [a.indicator("2.1").value for a in unit.agencies] == [1.0, pytest.approx(1 / 3)]
    assert unit.total.agency == "000.00.00.H26"
    assert unit.total.indicator("2.1").value == pytest.approx(0.5)
    assert unit.total.counts["received"] == 4


def test_an_agency_asked_for_is_listed_without_dossiers() -> None:
    unit = build_report("000.00.00.H26", MAY, [], AFTER_MAY, agencies=[A54])
    assert [a.agency for a in unit.agencies] == [A54]
    assert unit.agencies[0].indicator("2.1").reason == NO_RECEIVED


# --- properties ------------------------------------------------------------------------------

# Hypothesis bounds are naive local times; `timezones` makes the drawn values aware.
_TIMES = st.datetimes(
    min_value=datetime(2024, 3, 1),  # noqa: DTZ001
    max_value=datetime(2024, 8, 1),  # noqa: DTZ001
    timezones=st.just(VN_TZ),
)


@st.composite
def dossier_facts(draw: st.DrawFn) -> DossierFacts:
    status = draw(st.sampled_from(list(S)))
    reached = draw(
        st.dictionaries(
            st.sampled_from(
                [S.NOT_RECEIVED, S.WITHDRAWN, S.STOPPED, S.RESULT_READY, S.RESULT_RETURNED]
            ),
            _TIMES,
            max_size=3,
        )
    )
    supplements = draw(
        st.lists(st.builds(Supplement, _TIMES, st.none() | _TIMES), max_size=3).map(tuple)
    )
    return DossierFacts(
        agency=draw(st.sampled_from([A53, A54, "000.00.55.H26"])),
        status=status,
        received_at=draw(st.none() | _TIMES),
        due_at=draw(st.none() | _TIMES),
        closed_at=draw(st.none() | _TIMES),
        first_reached=reached,
        supplements=supplements,
        online=draw(st.booleans()),
        fees_total=draw(st.sampled_from([0, 0, 20000])),
        paid_online=draw(st.booleans()),
        digitised=draw(st.booleans()),
        reused_data=draw(st.booleans()),
        electronic_result=draw(st.booleans()),
        synced=draw(st.booleans()),
        portal_status=draw(st.none() | st.sampled_from(list(S))),
    )


_PERIODS = st.sampled_from([MAY, Period(2024, 6), Period.of_quarter(2024, 2), Period.of_year(2024)])


@PROPERTY
@given(st.lists(dossier_facts(), max_size=30), _PERIODS, _TIMES)
def test_values_are_ratios_and_points_stay_within_their_maximum(
    dossiers: list[DossierFacts], period: Period, now: datetime
) -> None:
    unit = build_report("000.00.00.H26", period, dossiers, now)
    maxima = {i.id: i.max_points for i in INDICATORS}
    for r in [*unit.agencies, unit.total]:
        for v in r.indicators:
            assert (v.value is None) == (v.points is None) == (v.reason is not None)
            assert 0 <= v.numerator <= v.denominator
            if v.value is not None and v.points is not None:
                assert 0.0 <= v.value <= 1.0
                assert 0.0 <= v.points <= maxima[v.id] + 1e-9
            else:
                assert v.denominator == 0 or v.id == "3.3"
        assert 0.0 <= r.points <= MAX_POINTS + 1e-9
        assert r.points == pytest.approx(sum(g for g in r.groups.values() if g is not None))
        c = r.counts
        assert c["on_time"] + c["late"] == c["received"]
        assert c["early"] <= c["on_time"] and c["open"] <= c["received"]
        assert c["synced"] <= c["received"]
        assert sum(v for k, v in c.items() if k.startswith("status_")) >= c["received"]


@PROPERTY
@given(st.lists(dossier_facts(), max_size=30), _PERIODS)
def test_the_unit_counts_are_the_sums_of_its_agencies(
    dossiers: list[DossierFacts], period: Period
) -> None:
    unit = build_report("000.00.00.H26", period, dossiers, AFTER_MAY)
    for key in unit.total.counts:
        assert unit.total.counts[key] == sum(a.counts[key] for a in unit.agencies)
    for position, total in enumerate(unit.total.indicators):
        assert total.numerator == sum(a.indicators[position].numerator for a in unit.agencies)


@PROPERTY
@given(dossier_facts(), _TIMES)
def test_a_dossier_received_in_june_is_not_in_mays_report(d: DossierFacts, now: datetime) -> None:
    """Only a dossier's own times place it: one received in June is not in May's report."""
    moved = replace(d, received_at=vn(1, month=6), first_reached={}, closed_at=None)
    assert report(moved, now=now).counts["received"] == 0


def test_report_times_may_be_given_in_any_zone() -> None:
    # 00:30 June 1 in Vietnam is 17:30 May 31 UTC: past the end of May either way.
    d = facts(due_at=vn(31, 23))
    utc = report(d, now=datetime(2024, 5, 31, 17, 30, tzinfo=UTC))
    local = report(d, now=vn(1, 0, 30, month=6))
    assert utc.counts == local.counts and utc.counts["late"] == 1

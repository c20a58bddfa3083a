"""The simulated world, seen through the control API of each dialect: deterministic,
realistic, following the portal's life cycle, and awkward exactly when asked."""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime, timedelta
from typing import Any, Literal

import pytest
from email_validator import validate_email

from app.demodata import load_demo_catalogue
from app.domain import DossierStatus, is_transition_allowed, parse_dossier
from app.domain.agency import is_dossier_code, unit_of
from app.domain.validation import RecordInvalid
from app.simulators import DIALECTS, Dialect, SimulatorSettings
from app.simulators.world import SimDossier, World
from tests.simulators.conftest import Clients, StartSimulator
from tests.simulators.helpers import parse_dmy, parse_iso
from tests.simulators.portal_mapping import UnparsableError, igate_dossier, opencps_dossier

UNITS = {"000.00.00.H26", "000.00.00.H29", "000.00.00.G05"}
AWKWARD: dict[str, Any] = {
    "ties": True,
    "unmapped_share": 0.1,
    "bad_data_share": 0.1,
    "duplicates_share": 0.1,
    "out_of_order_share": 0.3,
}
MA_HO_SO_RE = re.compile(r"^(\d{3}\.\d{2}\.\d{2}\.[GH]\d{2})-(\d{6})-(\d{5})$")
PHONE_RE = re.compile(r"^0[35789]\d{8}$")


def _last_change(dialect: Dialect, record: dict[str, Any]) -> datetime:
    if dialect == "opencps":
        return parse_dmy(record["modifiedDate"])
    if dialect == "igate":
        return parse_iso(record["updatedDate"])
    return parse_dmy(record["thoiGianThucHien"])


@pytest.mark.parametrize("dialect", DIALECTS)
def test_same_seed_and_calls_give_the_same_world(
    start: StartSimulator, clients: Clients, dialect: Dialect
) -> None:
    one = clients.control(start(dialect, seed=7, dossiers=40, **AWKWARD))
    two = clients.control(start(dialect, seed=7, dossiers=40, **AWKWARD))
    other = clients.control(start(dialect, seed=8, dossiers=40, **AWKWARD))
    assert one.truth() == two.truth()
    for count, bulk in ((5, 1), (12, 4), (30, 1)):
        assert one.mutate(count, bulk) == two.mutate(count, bulk)
    assert one.truth() == two.truth()
    assert one.truth()["dossiers"] != other.truth()["dossiers"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_life_cycles_follow_the_portal_transitions(
    start: StartSimulator, clients: Clients, dialect: Dialect
) -> None:
    control = clients.control(start(dialect, dossiers=120, **AWKWARD))
    control.mutate(400)
    control.mutate(40, bulk=10)
    finals = 0
    for dossier in control.truth()["dossiers"]:
        expected = dossier["expected"]
        mapped = [DossierStatus(s) for s in expected["history_statuses"] if s is not None]
        assert mapped, dossier["key"]
        for before, after in itertools.pairwise(mapped):
            assert is_transition_allowed(before, after), (dossier["key"], before, after)
        if expected["TrangThaiHoSo"] is not None:
            assert expected["TrangThaiHoSo"] == mapped[-1].value
        else:
            assert expected["history_statuses"][-1] is None
        finals += mapped[-1].value in {"3", "8", "10"}
        assert expected["MaHoSo"] == dossier["ma_ho_so"]
    assert finals > 40  # a few hundred changes bring many dossiers to an end


@pytest.mark.parametrize("dialect", DIALECTS)
def test_mutations_bring_new_dossiers_and_share_a_time_in_bulk(
    start: StartSimulator, clients: Clients, dialect: Dialect
) -> None:
    control = clients.control(start(dialect, dossiers=50))
    changed = control.mutate(100)
    dossiers = control.truth()["dossiers"]
    assert 50 + 5 <= len(dossiers) <= 50 + 40  # about one change in five is a new dossier
    assert set(changed) <= {d["key"] for d in dossiers}
    bulk = control.mutate(10, bulk=5)
    by_key = {d["key"]: d for d in control.truth()["dossiers"]}
    times = {_last_change(dialect, by_key[key]["record"]) for key in bulk}
    assert len(times) <= 2  # two bulk actions: two instants


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_manual_clock(start: StartSimulator, clients: Clients, dialect: Dialect) -> None:
    control = clients.control(start(dialect, dossiers=20))
    now = datetime.fromisoformat(control.truth()["now"])
    assert now == datetime.fromisoformat("2024-05-13T08:00:00.000+07:00")
    for _ in range(5):
        control.mutate(1)
        later = datetime.fromisoformat(control.truth()["now"])
        assert timedelta(seconds=1) <= later - now < timedelta(seconds=4)  # ties off: ≥ 1 s
        now = later
    control.settings(ties=True)
    steps = []
    for _ in range(30):
        control.mutate(1)
        later = datetime.fromisoformat(control.truth()["now"])
        steps.append(later - now)
        now = later
    assert timedelta(0) in steps  # with ties on, some changes land on the same instant
    assert max(steps) < timedelta(seconds=4)


@pytest.mark.parametrize("dialect", ["opencps", "igate"])
def test_dossiers_look_real(start: StartSimulator, clients: Clients, dialect: Dialect) -> None:
    control = clients.control(start(dialect, dossiers=150))
    procedures = {p["MaTTHC"]: p for p in load_demo_catalogue()["procedures"]}
    codes: set[str] = set()
    for dossier in control.truth()["dossiers"]:
        record = dossier["record"]
        ma_ho_so = dossier["ma_ho_so"]
        match = MA_HO_SO_RE.match(ma_ho_so)
        assert match and is_dossier_code(ma_ho_so) and unit_of(match[1]) in UNITS
        assert ma_ho_so not in codes
        codes.add(ma_ho_so)
        if dialect == "opencps":
            procedure = procedures[record["serviceCode"]]
            assert record["serviceName"] == procedure["TenTTHC"]
            business = record["applicantIdType"] == "business"
            id_no, phone, email = (
                record["applicantIdNo"],
                record["contactTelNo"],
                record["contactEmail"],
            )
            submitted = parse_dmy(record["submitDate"])
            received = parse_dmy(record["receiveDate"]) if record["receiveDate"] else None
            due = parse_dmy(record["dueDate"]) if record["dueDate"] else None
            fee = record["feeAmount"]
            assert match[2] == submitted.strftime("%y%m%d")
        else:
            procedure = procedures[record["procedure"]["code"]]
            business = record["applicant"]["type"] == 2
            data = record["applicant"]["data"]
            id_no, phone, email = data["identityNumber"], data["phoneNumber"], data["email"]
            submitted = parse_iso(record["appliedDate"])
            received = parse_iso(record["acceptedDate"]) if record["acceptedDate"] else None
            due = parse_iso(record["appointmentDate"]) if record["appointmentDate"] else None
            fee = record["fee"]["amount"]
        assert re.fullmatch(r"\d{10}" if business else r"\d{12}", id_no)
        assert PHONE_RE.match(phone)
        if email:
            validate_email(email, check_deliverability=False)
        if received is not None:
            assert submitted <= received
            assert due == received + timedelta(days=procedure["ThoiHanGiaiQuyet"])
        assert (fee > 0) == bool(procedure["CoPhiLePhi"])


def _portal_form(dialect: Dialect, dossier: dict[str, Any], status: str) -> dict[str, Any]:
    if dialect == "opencps":
        return opencps_dossier(dossier["record"], dossier["files"], status)
    return igate_dossier(dossier["record"], status)


@pytest.mark.parametrize("dialect", ["opencps", "igate"])
def test_valid_means_a_valid_portal_dossier(
    start: StartSimulator, clients: Clients, dialect: Dialect
) -> None:
    """Mapped as the spec says, a record the truth calls valid passes the portal's own
    validation, and one it calls invalid does not."""
    control = clients.control(start(dialect, dossiers=150, bad_data_share=0.15, ties=True))
    control.mutate(150)
    procedures = {p["MaTTHC"] for p in load_demo_catalogue()["procedures"]}
    checked = invalid = 0
    for dossier in control.truth()["dossiers"]:
        expected = dossier["expected"]
        if expected["TrangThaiHoSo"] is None:
            continue
        try:
            parse_dossier(
                _portal_form(dialect, dossier, expected["TrangThaiHoSo"]), procedures=procedures
            )
            valid = True
        except (UnparsableError, RecordInvalid):
            valid = False
        assert valid == expected["valid"], json.dumps(dossier["record"], ensure_ascii=False)
        checked += 1
        invalid += not valid
    assert checked > 150 and invalid > 5


def test_worlds_are_built_without_http() -> None:
    """The world is usable on its own (the demo command and tests may embed it)."""
    world = World("igate", SimulatorSettings(dossiers=30, seed=3))
    again = World("igate", SimulatorSettings(dossiers=30, seed=3))
    assert [d.ma_ho_so for d in world.dossiers] == [d.ma_ho_so for d in again.dossiers]
    assert world.mutate(10) == again.mutate(10)
    assert world.mutations == 10
    with pytest.raises(ValueError, match="units"):
        SimulatorSettings(units=("000.00.53.H26",))
    with pytest.raises(ValueError, match="count"):
        world.mutate(-1)


@pytest.mark.parametrize("clock", ["manual", "real"])
def test_the_timeline_answers_as_filtering_and_sorting_the_whole_world(
    clock: Literal["manual", "real"],
) -> None:
    """iGate's search reads pages off a timeline kept in order as dossiers change; it must
    answer exactly what filtering the world and sorting it by (time, id) answers, ties
    and bulk actions included, at every page and ``updated-from``."""
    world = World("igate", SimulatorSettings(dossiers=200, seed=11, ties=True, clock=clock))

    def brute(since: datetime | None) -> list[SimDossier]:
        chosen = [d for d in world.dossiers if since is None or d.modified_at >= since]
        return sorted(chosen, key=lambda d: (d.modified_at, d.igate_id))

    for round_ in range(6):
        world.mutate(40, bulk=1 + round_ % 4)
        times = sorted({d.modified_at for d in world.dossiers})
        probes = [None, times[0], times[len(times) // 2], times[-1], times[-1] + timedelta(0, 0, 1)]
        for since in probes:
            expected = brute(since)
            for start, stop in ((0, 7), (7, 14), (0, 500), (len(expected) - 3, len(expected) + 9)):
                rows, total = world.modified_since(since, max(start, 0), stop)
                assert total == len(expected)
                assert rows == expected[max(start, 0) : stop]
    assert len({(d.modified_at, d.igate_id) for d in world.dossiers}) == len(world.dossiers)

"""The built-in demo catalogue matches the portal contract (§1, §4, §9)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from app.demodata import load_demo_catalogue
from app.domain.agency import is_agency_code, is_ministry, is_top_level_unit, unit_of

PROCEDURE_TYPES: dict[str, type] = {
    "MaTTHC": str,
    "TenTTHC": str,
    "MaLinhVuc": str,
    "TenLinhVuc": str,
    "ThoiHanGiaiQuyet": int,
    "CoPhiLePhi": int,
    "DuDieuKienTrucTuyenToanTrinh": int,
}
MA_TTHC_RE = re.compile(r"^\d\.\d{6}$")
REQUIRED_UNITS = ("000.00.00.H26", "000.00.00.H29", "000.00.00.G05")


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Any]:
    return load_demo_catalogue()


def _agencies(catalogue: dict[str, Any]) -> list[dict[str, Any]]:
    agencies: list[dict[str, Any]] = catalogue["agencies"]
    return agencies


def test_catalogue_loads_with_the_three_sections(catalogue: dict[str, Any]) -> None:
    assert set(catalogue) == {"procedures", "agencies", "accounts"}
    for section in catalogue.values():
        assert isinstance(section, list)
        assert section


def test_procedures_have_the_contract_fields_and_types(catalogue: dict[str, Any]) -> None:
    procedures = catalogue["procedures"]
    assert 60 <= len(procedures) <= 80
    for procedure in procedures:
        assert set(procedure) == set(PROCEDURE_TYPES), procedure
        for key, expected in PROCEDURE_TYPES.items():
            value = procedure[key]
            # bool is an int in Python but not in the contract: reject it explicitly.
            assert type(value) is expected, (procedure["MaTTHC"], key, value)
            if isinstance(value, str):
                assert value.strip(), (procedure["MaTTHC"], key)
        assert MA_TTHC_RE.fullmatch(procedure["MaTTHC"]), procedure["MaTTHC"]
        assert len(procedure["TenTTHC"]) <= 500
        assert procedure["ThoiHanGiaiQuyet"] > 0
        assert procedure["CoPhiLePhi"] in {0, 1}
        assert procedure["DuDieuKienTrucTuyenToanTrinh"] in {0, 1}


def test_procedure_codes_are_unique(catalogue: dict[str, Any]) -> None:
    codes = Counter(p["MaTTHC"] for p in catalogue["procedures"])
    assert [code for code, count in codes.items() if count > 1] == []


def test_each_domain_code_has_one_name(catalogue: dict[str, Any]) -> None:
    names: dict[str, set[str]] = {}
    for procedure in catalogue["procedures"]:
        names.setdefault(procedure["MaLinhVuc"], set()).add(procedure["TenLinhVuc"])
    assert {code: n for code, n in names.items() if len(n) > 1} == {}


def test_flags_are_mixed(catalogue: dict[str, Any]) -> None:
    procedures = catalogue["procedures"]
    for flag in ("CoPhiLePhi", "DuDieuKienTrucTuyenToanTrinh"):
        assert {p[flag] for p in procedures} == {0, 1}, flag


def test_agency_codes_follow_the_contract(catalogue: dict[str, Any]) -> None:
    agencies = _agencies(catalogue)
    codes = [a["MaCoQuan"] for a in agencies]
    assert len(set(codes)) == len(codes)
    for agency in agencies:
        assert set(agency) == {"MaCoQuan", "TenCoQuan", "Cap"}, agency
        code = agency["MaCoQuan"]
        assert is_agency_code(code), code
        assert isinstance(agency["TenCoQuan"], str)
        assert agency["TenCoQuan"].strip()
        assert agency["Cap"] == ("BO" if is_ministry(code) else "TINH"), code


def test_every_agency_sits_under_a_listed_unit(catalogue: dict[str, Any]) -> None:
    codes = {a["MaCoQuan"] for a in _agencies(catalogue)}
    assert {code for code in codes if unit_of(code) not in codes} == set()


def test_required_units_have_several_agencies(catalogue: dict[str, Any]) -> None:
    under = Counter(
        unit_of(a["MaCoQuan"]) for a in _agencies(catalogue) if not is_top_level_unit(a["MaCoQuan"])
    )
    for unit in REQUIRED_UNITS:
        assert under[unit] >= 5, unit
    units = {a["MaCoQuan"] for a in _agencies(catalogue) if is_top_level_unit(a["MaCoQuan"])}
    assert any(is_ministry(u) for u in units - set(REQUIRED_UNITS))
    assert any(not is_ministry(u) for u in units - set(REQUIRED_UNITS))


def test_one_demo_account_per_unit(catalogue: dict[str, Any]) -> None:
    units = {a["MaCoQuan"] for a in _agencies(catalogue) if is_top_level_unit(a["MaCoQuan"])}
    accounts = catalogue["accounts"]
    assert sorted(a["unit"] for a in accounts) == sorted(units)
    for account in accounts:
        assert account == {
            "unit": account["unit"],
            "username": account["unit"],
            "password": "demo",
        }

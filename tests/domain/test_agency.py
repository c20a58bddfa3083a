"""Contract §1 and §3: agency codes, top-level units and dossier ownership."""

from __future__ import annotations

import pytest

from app.domain import (
    agency_of_dossier,
    is_agency_code,
    is_dossier_code,
    is_top_level_unit,
    unit_of,
    unit_of_dossier,
    unit_owns_dossier,
)
from app.domain.agency import AgencyCodeError, is_ministry

GOOD_AGENCIES = ["000.00.53.H26", "000.00.00.H26", "000.00.00.G05", "123.45.67.G99"]
BAD_AGENCIES = [
    pytest.param("000.00.53.H26\n", id="trailing-newline"),
    pytest.param("\n000.00.53.H26", id="leading-newline"),
    pytest.param(" 000.00.53.H26", id="leading-space"),
    pytest.param("000.00.53.H26 ", id="trailing-space"),
    pytest.param("٠٠٠.٠٠.٥٣.H٢٦", id="arabic-indic-digits"),
    pytest.param("000.00.53.H２6", id="fullwidth-digit"),
    pytest.param("000.00.53.X26", id="bad-letter"),
    pytest.param("000.00.53.h26", id="lowercase"),
    pytest.param("000.00.53.H2", id="short-unit"),
    pytest.param("000.00.53.H266", id="long-unit"),
    pytest.param("00.00.53.H26", id="short-first"),
    pytest.param("000.0.53.H26", id="short-second"),
    pytest.param("000.00.5.H26", id="short-third"),
    pytest.param("000-00-53-H26", id="dashes"),
    pytest.param("000.00.53H26", id="missing-dot"),
    pytest.param("000.00.53.H26-1", id="dossier-code"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("code", GOOD_AGENCIES)
def test_agency_code_accepted(code: str) -> None:
    assert is_agency_code(code)


@pytest.mark.parametrize("code", BAD_AGENCIES)
def test_agency_code_rejected(code: str) -> None:
    assert not is_agency_code(code)


@pytest.mark.parametrize(
    ("code", "top_level"),
    [
        ("000.00.00.H26", True),
        ("000.00.00.G05", True),
        ("000.00.53.H26", False),
        ("001.00.00.H26", False),
        ("000.01.00.G05", False),
        ("000.00.00.H26\n", False),
        ("000.00.00.X26", False),
    ],
)
def test_is_top_level_unit(code: str, top_level: bool) -> None:
    assert is_top_level_unit(code) is top_level


@pytest.mark.parametrize(
    ("code", "unit"),
    [
        ("000.00.53.H26", "000.00.00.H26"),
        ("000.00.00.H26", "000.00.00.H26"),
        ("123.45.67.G05", "000.00.00.G05"),
        ("000.12.34.H29", "000.00.00.H29"),
    ],
)
def test_unit_of(code: str, unit: str) -> None:
    assert unit_of(code) == unit


@pytest.mark.parametrize("code", BAD_AGENCIES)
def test_unit_of_malformed_code_raises(code: str) -> None:
    with pytest.raises(AgencyCodeError):
        unit_of(code)


def test_is_ministry() -> None:
    assert is_ministry("000.00.12.G05")
    assert not is_ministry("000.00.53.H26")
    assert not is_ministry("G05")


@pytest.mark.parametrize(
    ("ma_ho_so", "agency"),
    [
        ("000.00.53.H26-240125-00012", "000.00.53.H26"),
        ("000.00.00.G05-1", "000.00.00.G05"),
        ("000.00.12.H29-A-B-C", "000.00.12.H29"),
    ],
)
def test_agency_of_dossier(ma_ho_so: str, agency: str) -> None:
    assert is_dossier_code(ma_ho_so)
    assert agency_of_dossier(ma_ho_so) == agency
    assert unit_of_dossier(ma_ho_so) == unit_of(agency)


BAD_DOSSIER_CODES = [
    pytest.param("000.00.53.H26", id="agency-only"),
    pytest.param("000.00.53.H26-", id="empty-number"),
    pytest.param("000.00.53.H26-240125-00012\n", id="trailing-newline"),
    pytest.param("000.00.53.H26-2401 25", id="space"),
    pytest.param("٠٠٠.٠٠.٥٣.H٢٦-1", id="arabic-indic-digits"),
    pytest.param("000.00.53.H26-" + "1" * 37, id="51-chars"),
    pytest.param("x-000.00.53.H26-1", id="prefix"),
]


@pytest.mark.parametrize("ma_ho_so", BAD_DOSSIER_CODES)
def test_malformed_dossier_code(ma_ho_so: str) -> None:
    assert not is_dossier_code(ma_ho_so)
    with pytest.raises(AgencyCodeError):
        agency_of_dossier(ma_ho_so)


def test_dossier_code_length_limit() -> None:
    assert is_dossier_code("000.00.53.H26-" + "1" * 36)
    assert not is_dossier_code("000.00.53.H26-" + "1" * 37)


@pytest.mark.parametrize(
    ("unit", "ma_ho_so", "owned"),
    [
        ("000.00.00.H26", "000.00.53.H26-240125-00012", True),
        ("000.00.00.H26", "000.00.00.H26-1", True),
        ("000.00.00.H29", "000.00.53.H26-240125-00012", False),
        ("000.00.00.G26", "000.00.53.H26-240125-00012", False),
        ("000.00.00.G05", "000.00.12.G05-1", True),
        ("000.00.00.H05", "000.00.12.G05-1", False),
        ("000.00.00.H26\n", "000.00.53.H26-1", False),
        ("000.00.00.H26", "000.00.53.H26-1\n", False),
        ("000.00.00.H26", "000.00.53.H26", False),
        ("000.00.00.H26", "000.00.53.H26-", False),
        ("000.00.00.H٢٦", "000.00.53.H٢٦-1", False),
        ("000.00.00.H26", "000.00.53.H٢٦-1", False),
        ("H26", "000.00.53.H26-1", False),
        ("", "", False),
    ],
)
def test_unit_owns_dossier(unit: str, ma_ho_so: str, owned: bool) -> None:
    assert unit_owns_dossier(unit, ma_ho_so) is owned

"""Agency codes (``mã định danh``) and which unit owns a dossier (contract §1, §3)."""

from __future__ import annotations

import re

AGENCY_CODE_PATTERN = r"^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[GH][0-9]{2}$"
_AGENCY_CODE_RE = re.compile(AGENCY_CODE_PATTERN)
_AGENCY_PREFIX = r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[GH][0-9]{2}"

# `MaHoSo` is the owning agency's code, "-", then the agency's own number. The number's
# alphabet is not in the contract; any printable ASCII without spaces is accepted (policy).
MA_HO_SO_PATTERN = rf"^{_AGENCY_PREFIX}-[!-~]+$"
_MA_HO_SO_RE = re.compile(MA_HO_SO_PATTERN)
MA_HO_SO_MAX_LENGTH = 50

_TOP_LEVEL_PREFIX = "000.00.00."


class AgencyCodeError(ValueError):
    """A string that is not a well-formed agency code or dossier code."""


def is_agency_code(value: str) -> bool:
    """Whether ``value`` matches ``^\\d{3}\\.\\d{2}\\.\\d{2}\\.[GH]\\d{2}$``."""
    return bool(_AGENCY_CODE_RE.fullmatch(value))


def is_top_level_unit(value: str) -> bool:
    """Whether ``value`` is a ministry's or province's own code (``000.00.00.Gxx/Hxx``)."""
    return is_agency_code(value) and value.startswith(_TOP_LEVEL_PREFIX)


def unit_of(agency_code: str) -> str:
    """The top-level unit an agency belongs to: ``000.00.53.H26`` → ``000.00.00.H26``."""
    if not is_agency_code(agency_code):
        raise AgencyCodeError(f"không phải mã định danh hợp lệ: {agency_code!r}")
    return _TOP_LEVEL_PREFIX + agency_code.rsplit(".", 1)[1]


def is_ministry(agency_code: str) -> bool:
    """Whether the agency sits under a ministry (``…Gxx``) rather than a province (``…Hxx``)."""
    return is_agency_code(agency_code) and agency_code[-3] == "G"


def is_dossier_code(value: str) -> bool:
    """Whether ``value`` is a well-formed ``MaHoSo`` (agency code, ``-``, number; ≤ 50)."""
    return len(value) <= MA_HO_SO_MAX_LENGTH and bool(_MA_HO_SO_RE.fullmatch(value))


def agency_of_dossier(ma_ho_so: str) -> str:
    """The agency code that prefixes a ``MaHoSo``."""
    if not is_dossier_code(ma_ho_so):
        raise AgencyCodeError(f"không phải mã hồ sơ hợp lệ: {ma_ho_so!r}")
    return ma_ho_so.split("-", 1)[0]


def unit_of_dossier(ma_ho_so: str) -> str:
    """The top-level unit that owns a ``MaHoSo``."""
    return unit_of(agency_of_dossier(ma_ho_so))


def unit_owns_dossier(unit_code: str, ma_ho_so: str) -> bool:
    """Contract §3: a dossier belongs to ``madonvi`` when the agency code prefixing its
    ``MaHoSo`` ends in the same top-level segment. Malformed codes belong to nobody."""
    if not is_agency_code(unit_code) or not is_dossier_code(ma_ho_so):
        return False
    return unit_of_dossier(ma_ho_so) == unit_of(unit_code)

"""The procedures and agencies a simulated world draws from (the demo catalogue by
default), with the documents each kind of procedure asks for and produces."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.domain.agency import is_agency_code, unit_of


@dataclass(frozen=True, slots=True)
class Procedure:
    code: str
    name: str
    domain_code: str
    domain_name: str
    days: int  # ThoiHanGiaiQuyet
    has_fee: bool  # CoPhiLePhi

    @property
    def english_name(self) -> str:
        return f"Administrative procedure {self.code}"


@dataclass(frozen=True, slots=True)
class Agency:
    code: str
    name: str
    unit: str
    procedures: tuple[Procedure, ...]

    @property
    def english_name(self) -> str:
        return f"Agency {self.code}"

    @property
    def locality(self) -> str:
        """The place named at the end of the agency's name, for applicants' addresses."""
        for marker in ("tỉnh ", "thành phố ", "huyện ", "thị xã "):
            if marker in self.name:
                return marker + self.name.split(marker, 1)[1]
        return "Hà Nội"


def hex_id(*parts: object) -> str:
    """A stable 24-hex-digit id (MongoDB style, as iGate uses) derived from ``parts``."""
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:24]


def procedures_of(catalogue: Mapping[str, Any]) -> list[Procedure]:
    return [
        Procedure(
            code=str(p["MaTTHC"]),
            name=str(p["TenTTHC"]),
            domain_code=str(p["MaLinhVuc"]),
            domain_name=str(p["TenLinhVuc"]),
            days=max(1, int(p.get("ThoiHanGiaiQuyet") or 1)),
            has_fee=bool(p.get("CoPhiLePhi")),
        )
        for p in catalogue.get("procedures", [])
    ]


# Which domains an agency handles, by a word of its name; the first match wins, and an
# agency that matches nothing (a provincial People's Committee, a service centre) takes
# every procedure. Only realism: nothing checks it.
_DOMAINS_BY_NAME: Sequence[tuple[str, frozenset[str]]] = (
    ("Hộ tịch", frozenset({"HT", "CT"})),
    ("Con nuôi", frozenset({"NCN"})),
    ("Bổ trợ tư pháp", frozenset({"LS", "CT"})),
    ("giao dịch bảo đảm", frozenset({"DKBD"})),
    ("Lý lịch tư pháp", frozenset({"LLTP"})),
    ("Tư pháp", frozenset({"HT", "CT", "NCN", "LLTP", "LS"})),
    ("Kế hoạch và Đầu tư", frozenset({"DKKD", "DT", "HKD"})),
    ("Xây dựng", frozenset({"XD"})),
    ("Tài nguyên và Môi trường", frozenset({"DD", "MT", "TNN", "KS"})),
    ("Y tế", frozenset({"KCB", "ATTP", "DUOC"})),
    ("Giáo dục", frozenset({"GD", "VBCC"})),
    ("Lao động", frozenset({"VL", "BTXH", "NCC"})),
    ("Giao thông", frozenset({"DB", "DTND"})),
    ("Xuất nhập khẩu", frozenset({"XNK"})),
    ("Hóa chất", frozenset({"HC"})),
    ("thị trường trong nước", frozenset({"LTHH", "KDXD"})),
    ("Công Thương", frozenset({"LTHH", "KDXD", "XNK", "HC"})),
    ("Ủy ban nhân dân thành phố", frozenset({"HT", "CT", "HKD", "DD", "XD", "BTXH"})),
    ("Ủy ban nhân dân huyện", frozenset({"HT", "CT", "HKD", "DD", "XD", "BTXH"})),
    ("Ủy ban nhân dân thị xã", frozenset({"HT", "CT", "HKD", "DD", "XD", "BTXH"})),
)


def agencies_of(
    catalogue: Mapping[str, Any], units: Sequence[str], procedures: Sequence[Procedure]
) -> list[Agency]:
    """The catalogue's agencies under ``units``, each with the procedures it handles."""
    agencies: list[Agency] = []
    for raw in catalogue.get("agencies", []):
        code, name = str(raw["MaCoQuan"]), str(raw["TenCoQuan"])
        if not is_agency_code(code) or unit_of(code) not in units:
            continue
        domains = next((d for word, d in _DOMAINS_BY_NAME if word in name), None)
        handled = [p for p in procedures if domains is None or p.domain_code in domains]
        agencies.append(Agency(code, name, unit_of(code), tuple(handled or procedures)))
    return agencies


# --- documents -----------------------------------------------------------------------------

_INPUTS: Mapping[str, tuple[str, ...]] = {
    "HT": ("Tờ khai đăng ký hộ tịch", "Bản sao Căn cước công dân", "Giấy tờ chứng minh nơi cư trú"),
    "CT": ("Bản chính giấy tờ cần chứng thực", "Bản sao Căn cước công dân"),
    "DKKD": (
        "Giấy đề nghị đăng ký doanh nghiệp",
        "Điều lệ công ty",
        "Danh sách thành viên, cổ đông sáng lập",
    ),
    "HKD": ("Giấy đề nghị đăng ký hộ kinh doanh", "Bản sao Căn cước công dân"),
    "XD": (
        "Đơn đề nghị cấp giấy phép xây dựng",
        "Bản vẽ thiết kế xây dựng",
        "Giấy chứng nhận quyền sử dụng đất",
    ),
    "DD": (
        "Đơn đăng ký biến động đất đai",
        "Giấy chứng nhận quyền sử dụng đất",
        "Hợp đồng chuyển nhượng quyền sử dụng đất",
    ),
    "LLTP": ("Tờ khai yêu cầu cấp Phiếu lý lịch tư pháp", "Bản sao Căn cước công dân"),
}
_DEFAULT_INPUTS = ("Đơn đề nghị", "Bản sao Căn cước công dân", "Giấy tờ chứng minh liên quan")

_RESULTS: Mapping[str, str] = {
    "1.000656": "Giấy khai sinh (bản chính)",
    "1.001193": "Trích lục khai tử",
    "DKKD": "Giấy chứng nhận đăng ký doanh nghiệp",
    "HKD": "Giấy chứng nhận đăng ký hộ kinh doanh",
    "XD": "Giấy phép xây dựng",
    "DD": "Giấy chứng nhận quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất",
    "LLTP": "Phiếu lý lịch tư pháp",
    "CT": "Bản sao đã được chứng thực",
}

BIRTH_INPUTS = ("Tờ khai đăng ký khai sinh", "Giấy chứng sinh", "Bản sao Căn cước công dân")
DEATH_INPUTS = ("Tờ khai đăng ký khai tử", "Giấy báo tử", "Bản sao Căn cước công dân")


def input_documents(procedure: Procedure, module: str | None = None) -> tuple[str, ...]:
    if module == "LTKS":
        return BIRTH_INPUTS
    if module == "LTKT":
        return DEATH_INPUTS
    return _INPUTS.get(procedure.domain_code, _DEFAULT_INPUTS)


def result_document(procedure: Procedure) -> str:
    found = _RESULTS.get(procedure.code) or _RESULTS.get(procedure.domain_code)
    return found or f"Kết quả giải quyết thủ tục {procedure.code}"


SECTOR_ENGLISH: Mapping[str, str] = {
    "HT": "Civil status",
    "CT": "Certification",
    "DKKD": "Business registration",
    "HKD": "Household businesses",
    "XD": "Construction",
    "DD": "Land",
    "LLTP": "Judicial records",
}


def sector_english(code: str) -> str:
    return SECTOR_ENGLISH.get(code, f"Sector {code}")

"""Builders of portal-format records (plain dicts, exactly what a client would send).

``valid_dossier(status, **overrides)`` returns the smallest dossier the contract accepts at
``status``: the always-required fields plus the fields required at that status (§3.1).
``full_dossier(status)`` also carries every optional field. An override whose value is
:data:`ABSENT` removes the key; any other value (``None`` included) replaces it.
"""

from __future__ import annotations

from typing import Any, Final

from hypothesis import settings

from app.domain import RecordInvalid

ABSENT: Final = object()
"""Override value that removes a key from the built record."""

MA_HO_SO: Final = "000.00.53.H26-240125-00012"
MA_TTHC: Final = "1.000656"

# One consistent timeline (Asia/Ho_Chi_Minh, yyyyMMddHHmmss).
NGAY_NOP: Final = "20240125080000"
NGAY_TIEP_NHAN: Final = "20240125083000"
NGAY_TU_CHOI: Final = "20240125090000"
NGAY_KET_THUC: Final = "20240205100000"
NGAY_TRA: Final = "20240206090000"
NGAY_HEN_TRA: Final = "20240208170000"

ALL_STATUSES: Final = tuple(str(n) for n in range(1, 11))

# The contract's §3.1 table, in its order.
DOSSIER_FIELDS: Final = (
    "MaHoSo",
    "MaTTHC",
    "TenTTHC",
    "MaLinhVuc",
    "TenLinhVuc",
    "KenhThucHien",
    "ChuHoSo",
    "LoaiDoiTuong",
    "MaDoiTuong",
    "SoGiayToChuHoSo",
    "SoDienThoai",
    "Email",
    "Fax",
    "TrichYeuHoSo",
    "ThongTinKhac",
    "GhiChu",
    "SoBienNhan",
    "NgayNopHoSo",
    "NgayTiepNhan",
    "NgayHenTra",
    "TrangThaiHoSo",
    "NgayKetThucXuLy",
    "NgayTuChoi",
    "NgayTra",
    "HinhThuc",
    "ThongTinTra",
    "DonViXuLy",
    "HoSoCoThanhPhanSoHoa",
    "TaiKhoanDuocXacThucVoiVNeID",
    "DuocThanhToanTrucTuyen",
    "TaiLieuNop",
    "DanhSachLePhi",
    "DanhSachHoSoBoSung",
    "DanhSachGiayToKetQua",
)

ALWAYS_REQUIRED: Final = (
    "MaHoSo",
    "MaTTHC",
    "TenTTHC",
    "MaLinhVuc",
    "TenLinhVuc",
    "KenhThucHien",
    "ChuHoSo",
    "LoaiDoiTuong",
    "TrangThaiHoSo",
    "DonViXuLy",
)

# Conditional requirements of §3.1: field -> statuses at which it is required.
RECEIVED_STATUSES: Final = frozenset({"2", "4", "6", "9", "10"})
CONDITIONAL_REQUIRED: Final[dict[str, frozenset[str]]] = {
    "NgayNopHoSo": frozenset({"1"}),
    "NgayTiepNhan": RECEIVED_STATUSES,
    "NgayHenTra": RECEIVED_STATUSES,
    "NgayKetThucXuLy": frozenset({"3", "8", "9", "10"}),
    "NgayTuChoi": frozenset({"3"}),
    "NgayTra": frozenset({"10"}),
    "HinhThuc": frozenset({"10"}),
    "DanhSachGiayToKetQua": frozenset({"9", "10"}),
}

OPTIONAL_FIELDS: Final = tuple(f for f in DOSSIER_FIELDS if f not in ALWAYS_REQUIRED)

# Field names of the list items, in the contract's order.
ITEM_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "TaiLieuNop": (
        "TepDinhKemId",
        "TenTepDinhKem",
        "MaThanhPhanHoSo",
        "DuongDanTaiTepTin",
        "IsDeleted",
        "DuocSoHoa",
        "DuocTaiSuDung",
        "DuocLayTuKhoDMQG",
    ),
    "DanhSachLePhi": ("MaPhiLePhi", "TenPhiLePhi", "HinhThucThu", "Gia", "LoaiPhiLePhi"),
    "DanhSachHoSoBoSung": (
        "HoSoBoSungId",
        "NguoiYeuCauBoSung",
        "NoiDungBoSung",
        "NgayBoSung",
        "NgayTiepNhanBoSung",
        "TrangThaiBoSung",
        "NgayHenTraTruoc",
        "NgayHenTraMoi",
    ),
    "DanhSachGiayToKetQua": (
        "GiayToId",
        "TenGiayTo",
        "MaThanhPhanHoSo",
        "MaGiayToKetQua",
        "DuongDanTepTinKetQua",
    ),
}

PROGRESS_FIELDS: Final = (
    "MaHoSo",
    "NguoiXuLy",
    "ChucDanh",
    "PhongBanXuLy",
    "ThoiDiemXuLy",
    "NoiDungXuLy",
    "TrangThai",
    "NgayBatDau",
    "NgayKetThucTheoQuyDinh",
)
PROGRESS_REQUIRED: Final = ("MaHoSo", "NguoiXuLy", "ThoiDiemXuLy", "NoiDungXuLy", "TrangThai")

# Hypothesis settings shared by the property tests: no example database (keeps the
# working tree clean), no deadline (the first call of a validator warms caches).
PROPERTY: Final = settings(max_examples=100, deadline=None, database=None)
FUZZ: Final = settings(max_examples=300, deadline=None, database=None)


def submitted_document(**overrides: object) -> dict[str, Any]:
    return _apply({"TepDinhKemId": "f-1", "TenTepDinhKem": "Tờ khai.pdf"}, overrides)


def fee(**overrides: object) -> dict[str, Any]:
    return _apply({"MaPhiLePhi": "LP01", "TenPhiLePhi": "Lệ phí cấp giấy", "Gia": 50000}, overrides)


def supplement_request(**overrides: object) -> dict[str, Any]:
    return _apply({"HoSoBoSungId": "bs-1", "NgayBoSung": "20240126090000"}, overrides)


def result_document(**overrides: object) -> dict[str, Any]:
    return _apply({"GiayToId": "kq-1", "TenGiayTo": "Giấy chứng nhận"}, overrides)


def valid_dossier(status: str = "1", /, **overrides: object) -> dict[str, Any]:
    """The smallest dossier accepted at ``status``, in portal JSON form."""
    record: dict[str, Any] = {
        "MaHoSo": MA_HO_SO,
        "MaTTHC": MA_TTHC,
        "TenTTHC": "Đăng ký khai sinh",
        "MaLinhVuc": "HT",
        "TenLinhVuc": "Hộ tịch",
        "KenhThucHien": 2,
        "ChuHoSo": "Nguyễn Văn An",
        "LoaiDoiTuong": 1,
        "TrangThaiHoSo": status,
        "DonViXuLy": "UBND phường Bến Nghé",
    }
    conditional: dict[str, Any] = {
        "NgayNopHoSo": NGAY_NOP,
        "NgayTiepNhan": NGAY_TIEP_NHAN,
        "NgayHenTra": NGAY_HEN_TRA,
        "NgayKetThucXuLy": NGAY_KET_THUC,
        "NgayTuChoi": NGAY_TU_CHOI,
        "NgayTra": NGAY_TRA,
        "HinhThuc": 0,
        "DanhSachGiayToKetQua": [result_document()],
    }
    record.update(
        {name: value for name, value in conditional.items() if status in CONDITIONAL_REQUIRED[name]}
    )
    return _apply(record, overrides)


def full_dossier(status: str = "1", /, **overrides: object) -> dict[str, Any]:
    """A dossier accepted at ``status`` that carries every field of the contract."""
    record = valid_dossier(
        status,
        MaDoiTuong="acc-123",
        SoGiayToChuHoSo="001204567845",
        SoDienThoai="0912345678",
        Email="an.nguyen@example.vn",
        Fax="+842838291234",
        TrichYeuHoSo="Đăng ký khai sinh cho con",
        ThongTinKhac="",
        GhiChu="ghi chú",
        SoBienNhan="BN-0012",
        NgayNopHoSo=NGAY_NOP,
        NgayTiepNhan=NGAY_TIEP_NHAN,
        NgayHenTra=NGAY_HEN_TRA,
        NgayKetThucXuLy=NGAY_KET_THUC,
        NgayTuChoi=NGAY_TU_CHOI,
        NgayTra=NGAY_TRA,
        HinhThuc=1,
        ThongTinTra="Trả qua bưu điện",
        HoSoCoThanhPhanSoHoa=1,
        TaiKhoanDuocXacThucVoiVNeID=0,
        DuocThanhToanTrucTuyen=2,
        TaiLieuNop=[
            submitted_document(
                MaThanhPhanHoSo="TP1",
                DuongDanTaiTepTin="https://files.example.vn/1",
                IsDeleted=0,
                DuocSoHoa=1,
                DuocTaiSuDung=0,
                DuocLayTuKhoDMQG=1,
            )
        ],
        DanhSachLePhi=[fee(HinhThucThu=1, LoaiPhiLePhi=2)],
        DanhSachHoSoBoSung=[
            supplement_request(
                NguoiYeuCauBoSung="Cán bộ A",
                NoiDungBoSung="Bổ sung bản sao",
                NgayTiepNhanBoSung="20240127090000",
                TrangThaiBoSung=1,
                NgayHenTraTruoc="20240205170000",
                NgayHenTraMoi=NGAY_HEN_TRA,
            )
        ],
        DanhSachGiayToKetQua=[
            result_document(
                MaThanhPhanHoSo="KQ1",
                MaGiayToKetQua="GCN-1",
                DuongDanTepTinKetQua="https://files.example.vn/kq1",
            )
        ],
    )
    return _apply(record, overrides)


def valid_progress(**overrides: object) -> dict[str, Any]:
    """A progress record (§3.2) with every required field."""
    record: dict[str, Any] = {
        "MaHoSo": MA_HO_SO,
        "NguoiXuLy": "Trần Thị Bình",
        "ChucDanh": "Chuyên viên",
        "PhongBanXuLy": "Bộ phận một cửa",
        "ThoiDiemXuLy": NGAY_TIEP_NHAN,
        "NoiDungXuLy": "Tiếp nhận hồ sơ",
        "TrangThai": "2",
    }
    return _apply(record, overrides)


def issue_summary(error: RecordInvalid) -> list[tuple[str, str]]:
    """``[(rendered path, code), ...]`` in the order the validator reports them."""
    return [(issue.render_path(), issue.code) for issue in error.issues]


def _apply(record: dict[str, Any], overrides: dict[str, object]) -> dict[str, Any]:
    for name, value in overrides.items():
        if value is ABSENT:
            record.pop(name, None)
        else:
            record[name] = value
    return record

"""Contract §8: personal data never reaches logs in clear."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.personal_data import (
    PERSONAL_FIELDS,
    PersonalKind,
    mask,
    mask_email,
    mask_id_number,
    mask_name,
    mask_personal_data,
    mask_phone,
    scrub_text,
)

from .factories import PROPERTY, full_dossier


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("001204567845", "0012******45"),
        ("001004567845", "0010******45"),
        ("0101234567", "0101****67"),
        ("0101234567-001", "0101********01"),
        ("001204567", "00*****67"),
        ("12345", "*****"),
        ("", ""),
    ],
)
def test_mask_id_number(value: str, masked: str) -> None:
    assert mask_id_number(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("0912345678", "*******678"),
        ("+84912345678", "+********678"),
        ("123", "***"),
        ("+12", "+**"),
    ],
)
def test_mask_phone(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("an.nguyen@example.vn", "a***@example.vn"),
        ("@example.vn", "****@example.vn"),
        ("no-at-sign", "***"),
    ],
)
def test_mask_email(value: str, masked: str) -> None:
    assert mask_email(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("Nguyễn Văn An", "N*** V*** A***"),
        ("An", "A***"),
        ("   ", "***"),
        ("", "***"),
    ],
)
def test_mask_name(value: str, masked: str) -> None:
    assert mask_name(value) == masked


@pytest.mark.parametrize(
    ("kind", "value", "masked"),
    [
        (PersonalKind.NAME, "Trần Bình", "T*** B***"),
        (PersonalKind.ID_NUMBER, "001204567845", "0012******45"),
        (PersonalKind.PHONE, "0912345678", "*******678"),
        (PersonalKind.EMAIL, "b@example.vn", "b***@example.vn"),
        (PersonalKind.ADDRESS, "12 Lê Lợi, Quận 1", "***"),
        (PersonalKind.SECRET, "demo", "***"),
    ],
)
def test_mask_by_kind(kind: PersonalKind, value: str, masked: str) -> None:
    assert mask(kind, value) == masked


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("ChuHoSo", PersonalKind.NAME),
        ("SoGiayToChuHoSo", PersonalKind.ID_NUMBER),
        ("SoDienThoai", PersonalKind.PHONE),
        ("Email", PersonalKind.EMAIL),
        ("Fax", PersonalKind.PHONE),
        ("applicantName", PersonalKind.NAME),
        ("contactName", PersonalKind.NAME),
        ("applicantIdNo", PersonalKind.ID_NUMBER),
        ("contactTelNo", PersonalKind.PHONE),
        ("contactEmail", PersonalKind.EMAIL),
        ("fullname", PersonalKind.NAME),
        ("identityNumber", PersonalKind.ID_NUMBER),
        ("phoneNumber", PersonalKind.PHONE),
        ("email", PersonalKind.EMAIL),
        ("hoTen", PersonalKind.NAME),
        ("soDinhDanh", PersonalKind.ID_NUMBER),
        ("soDienThoai", PersonalKind.PHONE),
        ("password", PersonalKind.SECRET),
        ("session", PersonalKind.SECRET),
    ],
)
def test_personal_fields_of_the_contract_and_the_dialects(field: str, kind: PersonalKind) -> None:
    assert PERSONAL_FIELDS[field] is kind


NAME = "Nguyễn Văn An"
ID_12 = "001204567845"
TAX = "0101234567-001"
PHONE = "0912345678"
PLUS_PHONE = "+84987654321"
EMAIL = "an.nguyen@example.vn"

LOG_EVENT: dict[str, Any] = {
    "event": "dossier rejected",
    "portal": full_dossier(
        "10",
        ChuHoSo=NAME,
        SoGiayToChuHoSo=ID_12,
        SoDienThoai=PHONE,
        Email=EMAIL,
        Fax=PLUS_PHONE,
    ),
    "opencps": {
        "applicantName": "Trần Thị Bình",
        "contactName": "Lê Văn Cường",
        "applicantIdNo": TAX,
        "contactTelNo": "0281234567",
        "contactEmail": "cuong.le@example.com",
    },
    "igate": {
        "applicant": {
            "data": {
                "fullname": "Phạm Minh Dũng",
                "identityNumber": 79203000111,  # sent as a JSON number
                "phoneNumber": "0909000111",
                "email": "dung@example.org",
                "address": "12 Lê Lợi, Quận 1",
            },
            "type": 1,
        },
        "history": [{"user": {"fullname": "Hoàng Thị Em"}, "content": "Tiếp nhận"}],
    },
    "dvclt": {"hoTen": "Võ Văn Phúc", "soDinhDanh": "038099001122", "soDienThoai": "0388123456"},
    "list_of_names": {"hoTen": ["Đỗ Giang", "Bùi Hà"]},
    "credentials": {"password": "demo", "session": "abc.def", "access_token": "tok-123"},
    "message": "CCCD 079203000999 gọi +84911222333 hoặc viết thu@example.vn",
}

SECRETS = [
    NAME,
    ID_12,
    TAX,
    PHONE,
    PLUS_PHONE,
    EMAIL,
    "Trần Thị Bình",
    "Lê Văn Cường",
    "0281234567",
    "cuong.le@example.com",
    "Phạm Minh Dũng",
    "79203000111",
    "0909000111",
    "dung@example.org",
    "12 Lê Lợi",
    "Hoàng Thị Em",
    "Võ Văn Phúc",
    "038099001122",
    "0388123456",
    "Đỗ Giang",
    "Bùi Hà",
    "abc.def",
    "tok-123",
    "079203000999",
    "+84911222333",
    "thu@example.vn",
]


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_mask_personal_data_leaves_no_original_value(ensure_ascii: bool) -> None:
    dumped = json.dumps(LOG_EVENT, ensure_ascii=ensure_ascii)
    assert all(secret in dumped or json.dumps(secret)[1:-1] in dumped for secret in SECRETS)
    masked = json.dumps(mask_personal_data(LOG_EVENT), ensure_ascii=ensure_ascii)
    leaked = [s for s in SECRETS if s in masked or json.dumps(s)[1:-1] in masked]
    assert leaked == []


def test_mask_personal_data_keeps_the_shape_and_non_personal_values() -> None:
    masked = mask_personal_data(LOG_EVENT)
    assert masked["event"] == "dossier rejected"
    assert masked["portal"]["MaHoSo"] == LOG_EVENT["portal"]["MaHoSo"]
    assert masked["portal"]["NgayTiepNhan"] == LOG_EVENT["portal"]["NgayTiepNhan"]
    assert masked["portal"]["KenhThucHien"] == 2
    assert masked["portal"]["ChuHoSo"] == "N*** V*** A***"
    assert masked["portal"]["SoGiayToChuHoSo"] == "0012******45"
    assert masked["portal"]["Email"] == "a***@example.vn"
    assert masked["igate"]["applicant"]["type"] == 1
    assert masked["igate"]["applicant"]["data"]["identityNumber"] == "7920*****11"
    assert masked["list_of_names"]["hoTen"] == ["Đ*** G***", "B*** H***"]
    assert masked["credentials"]["password"] == "***"
    assert LOG_EVENT["portal"]["ChuHoSo"] == NAME  # the input is not modified


@pytest.mark.parametrize(
    ("event", "secret"),
    [
        ({"address": {"street": "12 Lê Lợi", "ward": "Bến Nghé"}}, "12 Lê Lợi"),
        ({"ChuHoSo": {"ten": "Nguyễn Văn An"}}, "Nguyễn Văn An"),
        ({"applicantName": [{"value": "Trần Bình"}]}, "Trần Bình"),
        ({"password": {"value": "demo"}}, "demo"),
    ],
    ids=["address-object", "name-object", "list-of-objects", "secret-object"],
)
def test_values_nested_under_a_personal_key_are_masked(event: dict[str, Any], secret: str) -> None:
    assert secret not in json.dumps(mask_personal_data(event), ensure_ascii=False)


def test_booleans_and_nulls_under_personal_keys_are_kept() -> None:
    assert mask_personal_data({"Email": None, "ChuHoSo": True}) == {"Email": None, "ChuHoSo": True}


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("CCCD 001204567845 nộp", "CCCD 0012******45 nộp"),
        ("MST 0101234567-001.", "MST 0101********01."),
        ("gọi 0912345678", "gọi 0912****78"),
        ("gọi +84912345678!", "gọi +********678!"),
        ("thư an.nguyen@example.vn,", "thư a***@example.vn,"),
        ("CMND:012345678;", "CMND:01*****78;"),
    ],
)
def test_scrub_text_masks_personal_data(text: str, masked: str) -> None:
    assert scrub_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "NgayTiepNhan 20240125083000",
        "000.00.53.H26-240125-00012",
        "data[3].NgayHenTra: phải ≥ NgayTiepNhan",
        "1.000656",
        "HTTP 503 sau 1234 ms",
        "000.00.00.H26",
    ],
)
def test_scrub_text_keeps_portal_codes_and_dates(text: str) -> None:
    assert scrub_text(text) == text


@pytest.mark.parametrize(
    "identifier",
    [
        "5c9ae123b8a8412345677a29c0fc8ad7",  # a request id with eight digits in a row
        "0b2d6e41-1234-5678-9012-3456789abcde",  # a UUID
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # sha-256
    ],
)
def test_scrub_text_keeps_hex_identifiers_that_hold_digit_runs(identifier: str) -> None:
    text = f"request_id={identifier} CCCD 001204567845"
    assert scrub_text(text) == f"request_id={identifier} CCCD 0012******45"


@PROPERTY
@given(st.from_regex(r"[0-9]{16,32}", fullmatch=True))
def test_a_long_run_of_digits_alone_is_not_taken_for_a_hex_identifier(digits: str) -> None:
    # No letter, so not an identifier: the 8–13 digit rule still applies to its parts.
    assert scrub_text(f"x {digits} y") == f"x {digits} y"  # 14+ digits are kept (dates)
    assert "0912345678" not in scrub_text(f"{digits[:3]}a 0912345678")


def test_scrub_text_in_a_realistic_message() -> None:
    text = (
        "Hồ sơ 000.00.53.H26-240125-00012 tiếp nhận 20240125083000: "
        "SoGiayToChuHoSo 001204567845, ĐT +84912345678, e-mail an.nguyen@example.vn"
    )
    scrubbed = scrub_text(text)
    assert "000.00.53.H26-240125-00012" in scrubbed
    assert "20240125083000" in scrubbed
    for secret in ["001204567845", "+84912345678", "84912345678", "an.nguyen@example.vn"]:
        assert secret not in scrubbed


@PROPERTY
@given(
    st.sampled_from([PersonalKind.ID_NUMBER, PersonalKind.PHONE]),
    st.from_regex(r"\+?[0-9]{8,15}", fullmatch=True),
)
def test_masked_numbers_never_contain_the_original(kind: PersonalKind, value: str) -> None:
    masked = mask(kind, value)
    assert value not in masked
    assert len(masked) == len(value)


@PROPERTY
@given(st.from_regex(r"[0-9]{9}|[0-9]{10}|[0-9]{12}|[0-9]{10}-[0-9]{3}", fullmatch=True))
def test_scrub_text_masks_every_id_format(value: str) -> None:
    scrubbed = scrub_text(f"id={value}.")
    assert value not in scrubbed
    assert scrubbed == f"id={mask_id_number(value)}."


@PROPERTY
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30).filter(str.strip))
def test_mask_name_keeps_only_initials(name: str) -> None:
    words = name.split()
    assert mask_name(name).split(" ") == [word[0] + "***" for word in words]


def test_personal_data_inside_an_embedded_json_string_is_masked() -> None:
    """DVCLT sends its application form as a JSON string; logging a raw message must not
    leak the applicant's name or id held inside it."""
    form = json.dumps(
        {"hoTen": "Nguyễn Văn An", "soDinhDanh": "001204567845", "noiSinh": "Hà Nội"},
        ensure_ascii=False,
    )
    masked = mask_personal_data({"data": form, "maHoSo": "000.00.53.H26-240125-00012"})
    assert "Nguyễn" not in masked["data"] and "001204567845" not in masked["data"]
    assert json.loads(masked["data"]) == {
        "hoTen": "N*** V*** A***",
        "soDinhDanh": "0012******45",
        "noiSinh": "Hà Nội",
    }
    assert masked["maHoSo"] == "000.00.53.H26-240125-00012"


def test_text_that_only_looks_like_json_is_scrubbed_as_text() -> None:
    assert mask_personal_data("{not json 001204567845") == "{not json 0012******45"

"""Plausible Vietnamese applicants and civil servants, drawn from a seeded generator.

Everything here is invented: names are combined from common family, middle and given
names, numbers follow the shape of real ones (12-digit citizen ids, 10-digit tax codes,
10-digit mobile numbers) without belonging to anybody.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass

FAMILY_NAMES = (
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng",
    "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Đinh", "Trương", "Mai", "Cao",
)  # fmt: skip
# Family names are far from uniform: Nguyễn alone is about four in ten.
FAMILY_WEIGHTS = (38, 11, 9, 7, 5, 4, 4, 4, 3, 2, 2, 2, 1.5, 1.3, 1, 0.5, 1, 1, 1, 1)

MALE_MIDDLE = ("Văn", "Hữu", "Đức", "Minh", "Quốc", "Thanh", "Công", "Xuân", "Gia", "Anh")
FEMALE_MIDDLE = ("Thị", "Ngọc", "Thu", "Thanh", "Minh", "Kim", "Bảo", "Hồng", "Mai", "Phương")
MALE_GIVEN = (
    "An", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hiếu", "Hoàng", "Hùng", "Huy",
    "Khánh", "Khoa", "Long", "Minh", "Nam", "Phúc", "Quân", "Quang", "Sơn", "Tài",
    "Thắng", "Thành", "Trung", "Tuấn", "Việt",
)  # fmt: skip
FEMALE_GIVEN = (
    "Anh", "Chi", "Dung", "Giang", "Hà", "Hạnh", "Hoa", "Hương", "Lan", "Linh",
    "Loan", "Mai", "My", "Ngân", "Nhung", "Oanh", "Phương", "Quyên", "Tâm", "Thảo",
    "Trang", "Uyên", "Vy", "Xuân", "Yến",
)  # fmt: skip

STREETS = (
    "Lê Lợi", "Trần Hưng Đạo", "Nguyễn Huệ", "Hai Bà Trưng", "Lý Thường Kiệt",
    "Quang Trung", "Hùng Vương", "Phan Chu Trinh", "Nguyễn Trãi", "Lê Duẩn",
)  # fmt: skip
WARDS = (
    "phường Tân Phú", "phường An Lạc", "phường Hòa Bình", "xã Bình An", "xã Phú Mỹ",
    "thị trấn Minh Đức", "phường Đông Hải", "xã Tân Thành",
)  # fmt: skip
COMPANY_KINDS = ("Công ty TNHH", "Công ty Cổ phần", "Công ty TNHH MTV", "Doanh nghiệp tư nhân")
COMPANY_NAMES = (
    "Thương mại Dịch vụ An Phát", "Xây dựng Hoàng Long", "Đầu tư Minh Khang",
    "Sản xuất Bao bì Tân Tiến", "Thực phẩm Sạch Đồng Xanh", "Vận tải Phú Quý",
    "Công nghệ Sao Việt", "Dược phẩm Bình An", "Môi trường Xanh", "Xuất nhập khẩu Hải Đăng",
)  # fmt: skip
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "gmail.com", "vnn.vn")
MOBILE_PREFIXES = ("03", "05", "07", "08", "09")


@dataclass(frozen=True, slots=True)
class Person:
    full_name: str
    family: str
    given: str
    male: bool


@dataclass(frozen=True, slots=True)
class Applicant:
    """Who a dossier is for: a citizen, or a business with a contact person."""

    business: bool
    name: str  # the citizen, or the company
    id_no: str  # 12-digit citizen id, or 10-digit tax code
    contact: Person
    phone: str
    email: str | None
    address: str


def ascii_fold(text: str) -> str:
    """Vietnamese without diacritics (``Đặng Thị Hà`` → ``Dang Thi Ha``), for e-mails."""
    text = text.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def person(rng: random.Random) -> Person:
    male = rng.random() < 0.5
    family = rng.choices(FAMILY_NAMES, FAMILY_WEIGHTS)[0]
    middle = rng.choice(MALE_MIDDLE if male else FEMALE_MIDDLE)
    given = rng.choice(MALE_GIVEN if male else FEMALE_GIVEN)
    # One in five names has a second middle name (Nguyễn Thị Thu Hà).
    if rng.random() < 0.2:
        middle += " " + rng.choice(MALE_MIDDLE if male else FEMALE_MIDDLE)
    return Person(f"{family} {middle} {given}", family, given, male)


def citizen_id(rng: random.Random, male: bool) -> str:
    """12 digits: province of birth (001-096), century and sex digit, year, serial."""
    province = rng.randint(1, 96)
    born = rng.randint(1950, 2005)
    century_sex = (0 if born < 2000 else 2) + (0 if male else 1)
    return f"{province:03d}{century_sex}{born % 100:02d}{rng.randint(0, 999_999):06d}"


def tax_code(rng: random.Random) -> str:
    """A business tax code: 10 digits, the first two a province code."""
    return f"{rng.randint(1, 96):02d}{rng.randint(0, 99_999_999):08d}"


def phone(rng: random.Random) -> str:
    """A Vietnamese mobile number: 0[3|5|7|8|9] and eight digits."""
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randint(0, 99_999_999):08d}"


def email(rng: random.Random, who: Person) -> str:
    local = ascii_fold(f"{who.given}.{who.family}").lower()
    if rng.random() < 0.6:
        local += str(rng.randint(1, 99))
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def address(rng: random.Random, locality: str) -> str:
    return f"Số {rng.randint(1, 250)}, đường {rng.choice(STREETS)}, {rng.choice(WARDS)}, {locality}"


def applicant(rng: random.Random, *, business: bool, locality: str) -> Applicant:
    contact = person(rng)
    if business:
        name = f"{rng.choice(COMPANY_KINDS)} {rng.choice(COMPANY_NAMES)}"
        id_no = tax_code(rng)
    else:
        name = contact.full_name
        id_no = citizen_id(rng, contact.male)
    # Four in five applicants leave an e-mail address; everybody leaves a phone number.
    mail = email(rng, contact) if rng.random() < 0.8 else None
    return Applicant(business, name, id_no, contact, phone(rng), mail, address(rng, locality))


@dataclass(frozen=True, slots=True)
class Officer:
    """A civil servant who handles dossiers: the name, position and department that
    history entries carry."""

    name: str
    position: str
    department: str
    department_code: str


ONE_STOP = ("Bộ phận Tiếp nhận và Trả kết quả", "BPMC")
LEADERSHIP = ("Lãnh đạo cơ quan", "LD")


def staff(rng: random.Random) -> dict[str, list[Officer]]:
    """An agency's roster by role: the one-stop desk, specialists, leaders."""
    return {
        "desk": [
            Officer(person(rng).full_name, position, *ONE_STOP)
            for position in ("Cán bộ tiếp nhận", "Công chức một cửa")
        ],
        "specialist": [
            Officer(person(rng).full_name, position, "", "")
            for position in ("Chuyên viên", "Chuyên viên chính", "Phó Trưởng phòng")
        ],
        "leader": [
            Officer(person(rng).full_name, position, *LEADERSHIP)
            for position in ("Phó Giám đốc", "Trưởng phòng")
        ],
    }

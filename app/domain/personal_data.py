"""Personal data (contract §8): which fields hold it, and how they are masked for logs.

Logs never carry names, id numbers, phones or e-mails in clear. Two layers do that:
fields known to hold personal data are masked by kind wherever they appear in a log
event, and every other string is scrubbed of things that look like ids, phones or
e-mail addresses (error messages sometimes echo a value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any


class PersonalKind(Enum):
    NAME = "name"
    ID_NUMBER = "id_number"
    PHONE = "phone"
    EMAIL = "email"
    ADDRESS = "address"
    SECRET = "secret"  # noqa: S105 - a kind of value, not a password: credentials and tokens are never logged either


_K = PersonalKind

# Field names across the portal contract and every source dialect (source-dialects.md).
PERSONAL_FIELDS: Mapping[str, PersonalKind] = {
    # portal contract §8
    "ChuHoSo": _K.NAME,
    "SoGiayToChuHoSo": _K.ID_NUMBER,
    "SoDienThoai": _K.PHONE,
    "Email": _K.EMAIL,
    "Fax": _K.PHONE,
    # OpenCPS
    "applicantName": _K.NAME,
    "contactName": _K.NAME,
    "applicantIdNo": _K.ID_NUMBER,
    "contactTelNo": _K.PHONE,
    "contactEmail": _K.EMAIL,
    # iGate
    "fullname": _K.NAME,
    "identityNumber": _K.ID_NUMBER,
    "phoneNumber": _K.PHONE,
    "email": _K.EMAIL,
    "address": _K.ADDRESS,
    # DVCLT application form
    "hoTen": _K.NAME,
    "soDinhDanh": _K.ID_NUMBER,
    "soDienThoai": _K.PHONE,
    # credentials
    "password": _K.SECRET,
    "client_secret": _K.SECRET,
    "session": _K.SECRET,
    "token": _K.SECRET,
    "access_token": _K.SECRET,
    "refreshToken": _K.SECRET,
    "authorization": _K.SECRET,
    "api_key": _K.SECRET,
}

_MASK = "*"


def mask_id_number(value: str) -> str:
    """``001204567845`` → ``0012******45``: enough to tell records apart, not to identify."""
    if len(value) >= 10:
        return value[:4] + _MASK * (len(value) - 6) + value[-2:]
    if len(value) >= 6:
        return value[:2] + _MASK * (len(value) - 4) + value[-2:]
    return _MASK * len(value)


def mask_phone(value: str) -> str:
    """``0912345678`` → ``*******678`` (a leading ``+`` is kept)."""
    plus, digits = ("+", value[1:]) if value.startswith("+") else ("", value)
    if len(digits) <= 3:
        return plus + _MASK * len(digits)
    return plus + _MASK * (len(digits) - 3) + digits[-3:]


def mask_email(value: str) -> str:
    """``an.nguyen@example.vn`` → ``a***@example.vn``."""
    local, at, domain = value.rpartition("@")
    if not at:
        return _MASK * 3
    return (local[:1] or _MASK) + _MASK * 3 + "@" + domain


def mask_name(value: str) -> str:
    """``Nguyễn Văn An`` → ``N*** V*** A***``: initials only, length hidden."""
    return " ".join(word[0] + _MASK * 3 for word in value.split()) or _MASK * 3


def mask(kind: PersonalKind, value: str) -> str:
    match kind:
        case PersonalKind.NAME:
            return mask_name(value)
        case PersonalKind.ID_NUMBER:
            return mask_id_number(value)
        case PersonalKind.PHONE:
            return mask_phone(value)
        case PersonalKind.EMAIL:
            return mask_email(value)
        case PersonalKind.ADDRESS | PersonalKind.SECRET:
            return _MASK * 3


# Free-text patterns: e-mail addresses; "+" phones; runs of 8–13 digits (ids are 9, 10 or
# 12 digits, tax codes 10 or 10-3, domestic phones 10). 14-digit runs are left alone: they
# are the portal's yyyyMMddHHmmss dates, which log lines need.
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PLUS_PHONE_RE = re.compile(r"\+[0-9]{8,15}(?![0-9])")
_DIGITS_RE = re.compile(r"(?<![0-9])[0-9]{8,13}(?:-[0-9]{3})?(?![0-9])")
# Request ids, UUIDs and content hashes are hex: one may hold a run of eight digits by
# chance, and masking it would break the id a log line is searched by. A token of 16 or
# more hex characters (dashes allowed) with a letter in it is an identifier, not a person.
_HEX_ID_RE = re.compile(
    r"(?<![\w-])(?=[0-9a-fA-F-]*[a-fA-F])[0-9a-fA-F](?:-?[0-9a-fA-F]){15,}(?![\w-])"
)


def scrub_text(text: str) -> str:
    """Mask anything in free text that looks like an e-mail, phone or id number."""
    kept = _HEX_ID_RE.split(text)
    if len(kept) > 1:
        identifiers = _HEX_ID_RE.findall(text)
        parts = [_scrub_plain(kept[0])]
        for identifier, rest in zip(identifiers, kept[1:], strict=True):
            parts += [identifier, _scrub_plain(rest)]
        return "".join(parts)
    return _scrub_plain(text)


def _scrub_plain(text: str) -> str:
    text = _EMAIL_RE.sub(lambda m: mask_email(m.group()), text)
    text = _PLUS_PHONE_RE.sub(lambda m: mask_phone(m.group()), text)
    return _DIGITS_RE.sub(lambda m: mask_id_number(m.group()), text)


def _mask_text(value: str, kind: PersonalKind | None) -> str:
    if kind is not None:
        return mask(kind, value)
    embedded = _embedded_json(value)
    if embedded is not None:
        # DVCLT carries the application form (hoTen, soDinhDanh, …) as a JSON string.
        return json.dumps(mask_personal_data(embedded), ensure_ascii=False)
    return scrub_text(value)


def _embedded_json(text: str) -> dict[str, Any] | list[Any] | None:
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict | list) else None


def mask_personal_data(value: Any, kind: PersonalKind | None = None) -> Any:
    """Return a copy of ``value`` (any JSON-like structure) safe to log.

    Values under a personal-data key are masked by kind (recursively, so a list of names
    or an address object is masked too); every other string is scrubbed.
    """
    if isinstance(value, str):
        return _mask_text(value, kind)
    if isinstance(value, Mapping):
        # A key names its own kind; inside a personal value every other key keeps the
        # enclosing kind (``{"address": {"street": ...}}`` is still an address).
        return {
            key: mask_personal_data(
                item, PERSONAL_FIELDS.get(key, kind) if isinstance(key, str) else kind
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_personal_data(item, kind) for item in value]
    if kind is not None and value is not None and not isinstance(value, bool):
        # A number under a personal key (an id sent as an int) is masked as text.
        return mask(kind, str(value))
    return value

"""The portal's date type: local time Asia/Ho_Chi_Minh written as ``yyyyMMddHHmmss``.

Inside the service every date is an aware :class:`~datetime.datetime`; the 14-digit form
exists only at the portal boundary, so parsing and formatting live here and nowhere else.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

PORTAL_DATE_FORMAT = "%Y%m%d%H%M%S"
_PORTAL_DATE_RE = re.compile(r"^[0-9]{14}$")

# Dossiers older than the first e-government systems or later than any plausible due date
# are data errors, not dates; the window is generous on purpose (policy, the contract is
# silent on a range).
EARLIEST_YEAR = 1900
LATEST_YEAR = 2099


class PortalDateError(ValueError):
    """A value that is not a valid ``yyyyMMddHHmmss`` portal date."""


def parse_portal_datetime(value: str) -> datetime:
    """Parse ``yyyyMMddHHmmss`` (Asia/Ho_Chi_Minh) into an aware datetime.

    Raises :class:`PortalDateError` with a message suitable for an API client.
    """
    if not _PORTAL_DATE_RE.fullmatch(value):
        raise PortalDateError("phải có dạng yyyyMMddHHmmss (14 chữ số)")
    try:
        parsed = from_fourteen_digits(value)
    except ValueError:
        raise PortalDateError(f"không phải ngày giờ hợp lệ: {value!r}") from None
    if not EARLIEST_YEAR <= parsed.year <= LATEST_YEAR:
        raise PortalDateError(_YEAR_WINDOW_MESSAGE)
    return parsed


def from_fourteen_digits(digits: str) -> datetime:
    """Fourteen ASCII digits (checked by the caller) as ``yyyyMMddHHmmss`` in
    Asia/Ho_Chi_Minh time; ValueError when they name no such moment (month 13, 31 April,
    second 60). What ``strptime`` with ``PORTAL_DATE_FORMAT`` gives for such a string
    (fourteen characters leave every field its two digits), at a quarter of its cost
    (1.6 against 5.7 µs): every portal date of every dossier is read this way, in the
    pipeline, the mock portal and the 766 report."""
    return datetime(
        int(digits[0:4]),
        int(digits[4:6]),
        int(digits[6:8]),
        int(digits[8:10]),
        int(digits[10:12]),
        int(digits[12:14]),
        tzinfo=VN_TZ,
    )


_YEAR_WINDOW_MESSAGE = f"năm phải trong khoảng {EARLIEST_YEAR}–{LATEST_YEAR}"


def normalise_portal_datetime(value: datetime) -> datetime:
    """An aware datetime as the portal will hold it: Asia/Ho_Chi_Minh time, whole seconds,
    inside the year window — exactly what parsing its 14-digit form gives back.

    Raises :class:`PortalDateError` like :func:`parse_portal_datetime`.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise PortalDateError("ngày giờ phải có múi giờ")
    try:
        local = value.astimezone(VN_TZ)
    except OverflowError:
        raise PortalDateError(_YEAR_WINDOW_MESSAGE) from None
    if not EARLIEST_YEAR <= local.year <= LATEST_YEAR:
        raise PortalDateError(_YEAR_WINDOW_MESSAGE)
    return local.replace(microsecond=0, fold=0)


def format_portal_datetime(value: datetime) -> str:
    """Format an aware datetime as ``yyyyMMddHHmmss`` in Asia/Ho_Chi_Minh time."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("portal dates must be timezone-aware")
    return value.astimezone(VN_TZ).strftime(PORTAL_DATE_FORMAT)


def to_vn(value: datetime) -> datetime:
    """The same instant in Asia/Ho_Chi_Minh time (naive input is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(VN_TZ)


def month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """The calendar month (Asia/Ho_Chi_Minh) containing ``moment``, as UTC bounds
    ``[start, end)``: the 766 period (indicators-766.md, "Period P")."""
    local = moment.astimezone(VN_TZ)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return start.astimezone(UTC), following.astimezone(UTC)


def _validate_portal_datetime(value: Any) -> datetime:
    if not isinstance(value, datetime | str):
        raise PydanticCustomError("portal_date", "phải là chuỗi yyyyMMddHHmmss")
    try:
        if isinstance(value, datetime):
            return normalise_portal_datetime(value)
        return parse_portal_datetime(value)
    except PortalDateError as exc:
        raise PydanticCustomError("portal_date", str(exc)) from None


PortalDateTime = Annotated[
    datetime,
    PlainValidator(_validate_portal_datetime),
    PlainSerializer(format_portal_datetime, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[0-9]{14}$",
            "description": "Giờ Việt Nam (Asia/Ho_Chi_Minh), dạng yyyyMMddHHmmss",
            "examples": ["20240125083000"],
        }
    ),
]
"""A portal date field: accepts the 14-digit string (or an aware datetime from code),
holds an aware datetime in Asia/Ho_Chi_Minh, serialises back to 14 digits in JSON."""

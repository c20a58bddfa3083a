"""The portal's small code lists (contract §3.1) and its error codes (contract §6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum


class Channel(IntEnum):
    """``KenhThucHien``: how the dossier was submitted."""

    IN_PERSON = 1  # trực tiếp
    ONLINE = 2  # trực tuyến
    POSTAL = 3  # bưu chính công ích


class ApplicantType(IntEnum):
    """``LoaiDoiTuong``: who the applicant is."""

    CITIZEN = 1  # công dân
    BUSINESS = 2  # doanh nghiệp
    STATE_AGENCY = 3  # cơ quan nhà nước
    OTHER_ORGANISATION = 4  # tổ chức khác


class ReturnMethod(IntEnum):
    """``HinhThuc``: how the result was returned (required at status 10)."""

    IN_PERSON = 0  # trả trực tiếp
    BY_POST = 1  # trả qua bưu chính


class OnlinePayment(IntEnum):
    """``DuocThanhToanTrucTuyen``: whether and where fees were paid online."""

    NO = 0
    ON_PORTAL = 1  # paid on the National Public Service Portal
    ON_LOCAL_GATEWAY = 2  # paid on the ministry's or province's own gateway


class YesNo(IntEnum):
    """The contract's 0/1 flags (``HoSoCoThanhPhanSoHoa``, ``DuocSoHoa``, …)."""

    NO = 0
    YES = 1


class ErrorCode(IntEnum):
    """``error_code`` values of contract §6."""

    SUCCESS = 0
    PARTIAL = 1
    BAD_CREDENTIALS = -1
    SESSION_EXPIRED = -2
    ALREADY_EXISTS = -3
    NOT_FOUND = -4
    VALIDATION_FAILED = -5
    TRANSITION_REFUSED = -6
    BATCH_TOO_LARGE = -8
    UNKNOWN_SERVICE = -9
    UNIT_MISMATCH = -10
    INTERNAL_ERROR = -99


class ClientAction(Enum):
    """What a well-behaved client does after receiving an error code."""

    NONE = "none"  # success
    RETRY_FAILED_ITEMS = "retry_failed_items"  # partial: decide per item
    FIX_CONFIGURATION = "fix_configuration"  # never retried automatically
    REAUTHENTICATE = "reauthenticate"  # once, then repeat the call
    RESEND_AS_UPDATE = "resend_as_update"
    CREATE_FIRST = "create_first"  # progress: push the dossier first
    QUARANTINE = "quarantine"  # the record is invalid: never resend it unchanged
    REFUSE = "refuse"  # permanent for this content: never resend it unchanged
    SPLIT_BATCH = "split_batch"
    RETRY = "retry"  # transient: back off and repeat


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    http_status: int
    action: ClientAction

    @property
    def retryable(self) -> bool:
        """True when repeating the same item (possibly after re-auth or re-shaping) can
        succeed; false when resending it unchanged is a contract violation."""
        return self.action in _RETRYABLE_ACTIONS


_RETRYABLE_ACTIONS = frozenset(
    {
        ClientAction.REAUTHENTICATE,
        ClientAction.RESEND_AS_UPDATE,
        ClientAction.CREATE_FIRST,
        ClientAction.SPLIT_BATCH,
        ClientAction.RETRY,
    }
)

ERROR_POLICIES: Mapping[ErrorCode, ErrorPolicy] = {
    ErrorCode.SUCCESS: ErrorPolicy(200, ClientAction.NONE),
    ErrorCode.PARTIAL: ErrorPolicy(200, ClientAction.RETRY_FAILED_ITEMS),
    ErrorCode.BAD_CREDENTIALS: ErrorPolicy(401, ClientAction.FIX_CONFIGURATION),
    ErrorCode.SESSION_EXPIRED: ErrorPolicy(401, ClientAction.REAUTHENTICATE),
    ErrorCode.ALREADY_EXISTS: ErrorPolicy(200, ClientAction.RESEND_AS_UPDATE),
    ErrorCode.NOT_FOUND: ErrorPolicy(200, ClientAction.CREATE_FIRST),
    ErrorCode.VALIDATION_FAILED: ErrorPolicy(200, ClientAction.QUARANTINE),
    ErrorCode.TRANSITION_REFUSED: ErrorPolicy(200, ClientAction.REFUSE),
    ErrorCode.BATCH_TOO_LARGE: ErrorPolicy(200, ClientAction.SPLIT_BATCH),
    ErrorCode.UNKNOWN_SERVICE: ErrorPolicy(200, ClientAction.REFUSE),
    ErrorCode.UNIT_MISMATCH: ErrorPolicy(200, ClientAction.REFUSE),
    ErrorCode.INTERNAL_ERROR: ErrorPolicy(500, ClientAction.RETRY),
}

# HTTP statuses that mean "nothing is known to be stored, try again" (contract §1).
RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})

MAX_BATCH_ITEMS = 100
"""Items per ``DongBoHoSoMC`` / ``CapNhatTienDoHoSoMC`` call and codes per bulk look-up."""

MAX_BODY_BYTES = 5 * 1024 * 1024
"""Largest request body the portal accepts (HTTP 413 above)."""


def error_policy(code: int) -> ErrorPolicy | None:
    """The policy for a raw ``error_code``, or ``None`` for a code the contract lacks."""
    try:
        return ERROR_POLICIES[ErrorCode(code)]
    except ValueError:
        return None

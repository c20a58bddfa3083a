"""The abstract life cycle every simulated dossier follows, and how each dialect spells
its states (source-dialects.md, the three status tables).

The world moves dossiers through :class:`State`; each history entry records the
*dialect's* status word or number chosen at that moment, so that the rendering stays
stable and the default mapping of the spec gives the expected portal status.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from app.domain.status import DossierStatus
from app.simulators.settings import Dialect


class State(StrEnum):
    """The dialect-independent states; the value is the portal's nearest status."""

    NEW = "NEW"
    RECEIVED = "RECEIVED"
    PROCESSING = "PROCESSING"
    SUPPLEMENT = "SUPPLEMENT"
    PAYMENT = "PAYMENT"
    WITHDRAWN = "WITHDRAWN"
    STOPPED = "STOPPED"
    REFUSED = "REFUSED"
    RESULT = "RESULT"
    RETURNED = "RETURNED"

    @property
    def portal(self) -> DossierStatus:
        return PORTAL_EQUIVALENT[self]


PORTAL_EQUIVALENT: Mapping[State, DossierStatus] = {
    State.NEW: DossierStatus.NEWLY_REGISTERED,
    State.RECEIVED: DossierStatus.RECEIVED,
    State.PROCESSING: DossierStatus.PROCESSING,
    State.SUPPLEMENT: DossierStatus.SUPPLEMENT_REQUESTED,
    State.PAYMENT: DossierStatus.PAYMENT_REQUESTED,
    State.WITHDRAWN: DossierStatus.WITHDRAWN,
    State.STOPPED: DossierStatus.STOPPED,
    State.REFUSED: DossierStatus.NOT_RECEIVED,
    State.RESULT: DossierStatus.RESULT_READY,
    State.RETURNED: DossierStatus.RESULT_RETURNED,
}

FINAL_STATES = frozenset({State.STOPPED, State.REFUSED, State.RETURNED})

# A status value as the dialect writes it: opencps words, igate and dvclt integers.
SourceStatus = str | int

_S = DossierStatus

# --- opencps -------------------------------------------------------------------------------

OPENCPS_DEFAULT_MAPPING: Mapping[str, DossierStatus] = {
    "new": _S.NEWLY_REGISTERED,
    "receiving": _S.NEWLY_REGISTERED,
    "processing": _S.PROCESSING,
    "handover": _S.PROCESSING,
    "interoperating": _S.PROCESSING,
    "waiting": _S.SUPPLEMENT_REQUESTED,
    "correcting": _S.SUPPLEMENT_REQUESTED,
    "paying": _S.PAYMENT_REQUESTED,
    "cancelling": _S.WITHDRAWN,
    "cancelled": _S.WITHDRAWN,
    "unresolved": _S.STOPPED,
    "denied": _S.NOT_RECEIVED,
    "releasing": _S.RESULT_READY,
    "posting": _S.RESULT_READY,
    "done": _S.RESULT_RETURNED,
}

OPENCPS_STATUS_TEXT: Mapping[str, str] = {
    "new": "Mới đăng ký",
    "receiving": "Chờ tiếp nhận",
    "processing": "Đang xử lý",
    "handover": "Chuyển xử lý",
    "interoperating": "Đang liên thông xử lý",
    "waiting": "Chờ bổ sung hồ sơ",
    "correcting": "Yêu cầu sửa đổi, bổ sung",
    "paying": "Chờ thực hiện nghĩa vụ tài chính",
    "cancelling": "Đang rút hồ sơ",
    "cancelled": "Đã rút hồ sơ",
    "unresolved": "Dừng xử lý",
    "denied": "Từ chối tiếp nhận",
    "releasing": "Có kết quả, chờ trả",
    "posting": "Đang chuyển phát kết quả",
    "done": "Đã trả kết quả",
    "collecting": "Đang thu thập thông tin",
    "pausing": "Tạm dừng xử lý",
}

# --- igate ---------------------------------------------------------------------------------

IGATE_STATUS_NAMES: Mapping[int, tuple[str, str]] = {  # id: (Vietnamese, English)
    0: ("Mới đăng ký", "Newly registered"),
    1: ("Chờ tiếp nhận", "Waiting for reception"),
    2: ("Đã tiếp nhận", "Received"),
    3: ("Đang xử lý", "Processing"),
    4: ("Có kết quả", "Result available"),
    5: ("Đã trả kết quả", "Result returned"),
    6: ("Từ chối tiếp nhận", "Reception refused"),
    7: ("Chờ bổ sung", "Waiting for supplement"),
    8: ("Chờ thực hiện nghĩa vụ tài chính", "Waiting for payment"),
    9: ("Công dân rút hồ sơ", "Withdrawn by the applicant"),
    10: ("Dừng xử lý", "Processing stopped"),
    11: ("Tạm dừng", "Paused"),
}

IGATE_DEFAULT_MAPPING: Mapping[int, DossierStatus] = {
    0: _S.NEWLY_REGISTERED,
    1: _S.NEWLY_REGISTERED,
    2: _S.RECEIVED,
    3: _S.PROCESSING,
    4: _S.RESULT_READY,
    5: _S.RESULT_RETURNED,
    6: _S.NOT_RECEIVED,
    7: _S.SUPPLEMENT_REQUESTED,
    8: _S.PAYMENT_REQUESTED,
    9: _S.WITHDRAWN,
    10: _S.STOPPED,
}

# --- dvclt ---------------------------------------------------------------------------------

DVCLT_DEFAULT_MAPPING: Mapping[int, DossierStatus] = {
    2: _S.SUPPLEMENT_REQUESTED,
    3: _S.RECEIVED,
    4: _S.RESULT_READY,
    5: _S.RESULT_RETURNED,
    6: _S.NOT_RECEIVED,
    7: _S.PROCESSING,
}

# The states a dvclt dossier can be in: the queue has no code for "new", payment,
# withdrawal or stop (birth and death registration is free and is not withdrawn there).
DVCLT_STATES = frozenset(
    {
        State.RECEIVED,
        State.PROCESSING,
        State.SUPPLEMENT,
        State.REFUSED,
        State.RESULT,
        State.RETURNED,
    }
)


def _widen(mapping: Mapping[Any, DossierStatus]) -> Mapping[SourceStatus, DossierStatus]:
    return dict(mapping)


DEFAULT_MAPPINGS: Mapping[Dialect, Mapping[SourceStatus, DossierStatus]] = {
    "opencps": _widen(OPENCPS_DEFAULT_MAPPING),
    "igate": _widen(IGATE_DEFAULT_MAPPING),
    "dvclt": _widen(DVCLT_DEFAULT_MAPPING),
}


def default_portal_status(dialect: Dialect, status: SourceStatus) -> DossierStatus | None:
    """The portal status the spec's default mapping gives, None for an unmapped status."""
    return DEFAULT_MAPPINGS[dialect].get(status)


# How each dialect spells a state: a list of (status, weight) to draw from. `online` and
# `postal` pick the variant (OpenCPS "new" vs "receiving", iGate 0 vs 1, result "posting").
def status_choices(
    dialect: Dialect, state: State, *, online: bool, by_post: bool
) -> list[tuple[SourceStatus, float]]:
    if dialect == "opencps":
        return _opencps_choices(state, online=online, by_post=by_post)
    if dialect == "igate":
        return [(_IGATE_STATUS_OF[state] if state != State.NEW else (0 if online else 1), 1.0)]
    return [(_DVCLT_STATUS_OF[state], 1.0)]


def _opencps_choices(
    state: State, *, online: bool, by_post: bool
) -> list[tuple[SourceStatus, float]]:
    if state == State.NEW:
        return [("new" if online else "receiving", 1.0)]
    if state == State.RESULT:
        return [("posting" if by_post else "releasing", 1.0)]
    return list(_OPENCPS_CHOICES[state])


_OPENCPS_CHOICES: Mapping[State, tuple[tuple[SourceStatus, float], ...]] = {
    # OpenCPS has no "received" word: intake hands the dossier straight to processing,
    # which the default mapping reports as 4.
    State.RECEIVED: (("processing", 1.0),),
    State.PROCESSING: (("processing", 0.7), ("handover", 0.15), ("interoperating", 0.15)),
    State.SUPPLEMENT: (("waiting", 0.6), ("correcting", 0.4)),
    State.PAYMENT: (("paying", 1.0),),
    State.WITHDRAWN: (("cancelling", 0.5), ("cancelled", 0.5)),
    State.STOPPED: (("unresolved", 1.0),),
    State.REFUSED: (("denied", 1.0),),
    State.RETURNED: (("done", 1.0),),
}

_IGATE_STATUS_OF: Mapping[State, int] = {
    State.NEW: 0,
    State.RECEIVED: 2,
    State.PROCESSING: 3,
    State.RESULT: 4,
    State.RETURNED: 5,
    State.REFUSED: 6,
    State.SUPPLEMENT: 7,
    State.PAYMENT: 8,
    State.WITHDRAWN: 9,
    State.STOPPED: 10,
}

_DVCLT_STATUS_OF: Mapping[State, int] = {
    State.SUPPLEMENT: 2,
    State.RECEIVED: 3,
    State.RESULT: 4,
    State.RETURNED: 5,
    State.REFUSED: 6,
    State.PROCESSING: 7,
}


def unmapped_status(dialect: Dialect, state: State) -> SourceStatus | None:
    """The off-mapping status a dossier in ``state`` may park in, None where there is none.

    OpenCPS "collecting" (information still being gathered, before intake) and
    "pausing", iGate 11 "Tạm dừng"; the dvclt queue has no such code."""
    if dialect == "opencps":
        if state == State.NEW:
            return "collecting"
        if state in {State.RECEIVED, State.PROCESSING}:
            return "pausing"
        return None
    if dialect == "igate" and state in {State.RECEIVED, State.PROCESSING}:
        return 11
    return None

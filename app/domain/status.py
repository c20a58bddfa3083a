"""Dossier status (``TrangThaiHoSo``) and the portal's transition policy (contract §5)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from functools import cache


class DossierStatus(StrEnum):
    """``TrangThaiHoSo``: the portal's ten statuses, sent as the strings ``"1"``..``"10"``."""

    NEWLY_REGISTERED = "1"  # Mới đăng ký
    RECEIVED = "2"  # Được tiếp nhận
    NOT_RECEIVED = "3"  # Không được tiếp nhận (refused at the counter)
    PROCESSING = "4"  # Đang xử lý
    SUPPLEMENT_REQUESTED = "5"  # Yêu cầu bổ sung giấy tờ
    PAYMENT_REQUESTED = "6"  # Yêu cầu thực hiện nghĩa vụ tài chính
    WITHDRAWN = "7"  # Công dân yêu cầu rút hồ sơ
    STOPPED = "8"  # Dừng xử lý
    RESULT_READY = "9"  # Đã xử lý xong
    RESULT_RETURNED = "10"  # Đã trả kết quả

    @property
    def label(self) -> str:
        """The status's Vietnamese name as the portal shows it."""
        return STATUS_LABELS[self]


STATUS_LABELS: Mapping[DossierStatus, str] = {
    DossierStatus.NEWLY_REGISTERED: "Mới đăng ký",
    DossierStatus.RECEIVED: "Được tiếp nhận",
    DossierStatus.NOT_RECEIVED: "Không được tiếp nhận",
    DossierStatus.PROCESSING: "Đang xử lý",
    DossierStatus.SUPPLEMENT_REQUESTED: "Yêu cầu bổ sung giấy tờ",
    DossierStatus.PAYMENT_REQUESTED: "Yêu cầu thực hiện nghĩa vụ tài chính",
    DossierStatus.WITHDRAWN: "Công dân yêu cầu rút hồ sơ",
    DossierStatus.STOPPED: "Dừng xử lý",
    DossierStatus.RESULT_READY: "Đã xử lý xong",
    DossierStatus.RESULT_RETURNED: "Đã trả kết quả",
}

_S = DossierStatus

# The one-step table of contract §5; everything else is derived from it.
NEXT_STATUSES: Mapping[DossierStatus, frozenset[DossierStatus]] = {
    _S.NEWLY_REGISTERED: frozenset(
        {_S.RECEIVED, _S.NOT_RECEIVED, _S.SUPPLEMENT_REQUESTED, _S.WITHDRAWN}
    ),
    _S.RECEIVED: frozenset(
        {
            _S.PROCESSING,
            _S.SUPPLEMENT_REQUESTED,
            _S.PAYMENT_REQUESTED,
            _S.WITHDRAWN,
            _S.STOPPED,
            _S.RESULT_READY,
        }
    ),
    _S.PROCESSING: frozenset(
        {_S.SUPPLEMENT_REQUESTED, _S.PAYMENT_REQUESTED, _S.WITHDRAWN, _S.STOPPED, _S.RESULT_READY}
    ),
    _S.SUPPLEMENT_REQUESTED: frozenset(
        {_S.PROCESSING, _S.PAYMENT_REQUESTED, _S.WITHDRAWN, _S.STOPPED, _S.RESULT_READY}
    ),
    _S.PAYMENT_REQUESTED: frozenset({_S.PROCESSING, _S.WITHDRAWN, _S.STOPPED, _S.RESULT_READY}),
    _S.WITHDRAWN: frozenset({_S.STOPPED}),
    _S.RESULT_READY: frozenset({_S.RESULT_RETURNED}),
    _S.NOT_RECEIVED: frozenset(),
    _S.STOPPED: frozenset(),
    _S.RESULT_RETURNED: frozenset(),
}

FINAL_STATUSES = frozenset(s for s, nxt in NEXT_STATUSES.items() if not nxt)

# Statuses at which the contract requires the reception fields (NgayTiepNhan, NgayHenTra).
RECEPTION_REQUIRED_AT = frozenset(
    {_S.RECEIVED, _S.PROCESSING, _S.PAYMENT_REQUESTED, _S.RESULT_READY, _S.RESULT_RETURNED}
)
# Statuses at which processing has ended (NgayKetThucXuLy required).
PROCESSING_ENDED_AT = frozenset({_S.NOT_RECEIVED, _S.STOPPED, _S.RESULT_READY, _S.RESULT_RETURNED})
# Statuses that carry a result (DanhSachGiayToKetQua needs at least one item).
RESULT_REQUIRED_AT = frozenset({_S.RESULT_READY, _S.RESULT_RETURNED})


@cache
def reachable_from(status: DossierStatus) -> frozenset[DossierStatus]:
    """Every status reachable from ``status`` in one step or more (not ``status`` itself
    unless a loop leads back to it)."""
    seen: set[DossierStatus] = set()
    frontier = list(NEXT_STATUSES[status])
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier.extend(NEXT_STATUSES[current])
    return frozenset(seen)


def is_transition_allowed(stored: DossierStatus, new: DossierStatus) -> bool:
    """Whether the portal accepts an update from ``stored`` to ``new``.

    Same status is always allowed (a field update); otherwise ``new`` must be reachable
    from ``stored`` (contract §5, policy: skipping intermediate steps is fine).
    """
    return new == stored or new in reachable_from(stored)


def transition_refusal_message(stored: DossierStatus, new: DossierStatus) -> str:
    """The ``-6`` message, naming both codes as the contract requires."""
    return (
        f"Không cho phép chuyển trạng thái từ {stored.value} ({stored.label}) "
        f"sang {new.value} ({new.label})"
    )

"""Contract §3.1 code lists and §6 error codes with the client's retry policy."""

from __future__ import annotations

import pytest

from app.domain import (
    ApplicantType,
    Channel,
    ClientAction,
    ErrorCode,
    OnlinePayment,
    ReturnMethod,
    error_policy,
)
from app.domain.codes import (
    ERROR_POLICIES,
    MAX_BATCH_ITEMS,
    MAX_BODY_BYTES,
    RETRYABLE_HTTP_STATUSES,
    YesNo,
)

A = ClientAction

# code, HTTP status, retryable, action: contract §6.
CONTRACT_ERRORS = [
    (0, 200, False, A.NONE),
    (1, 200, False, A.RETRY_FAILED_ITEMS),
    (-1, 401, False, A.FIX_CONFIGURATION),
    (-2, 401, True, A.REAUTHENTICATE),
    (-3, 200, True, A.RESEND_AS_UPDATE),
    (-4, 200, True, A.CREATE_FIRST),
    (-5, 200, False, A.QUARANTINE),
    (-6, 200, False, A.REFUSE),
    (-8, 200, True, A.SPLIT_BATCH),
    (-9, 200, False, A.REFUSE),
    (-10, 200, False, A.REFUSE),
    (-99, 500, True, A.RETRY),
]


@pytest.mark.parametrize(
    ("code", "http_status", "retryable", "action"),
    CONTRACT_ERRORS,
    ids=[str(c[0]) for c in CONTRACT_ERRORS],
)
def test_error_policy(code: int, http_status: int, retryable: bool, action: ClientAction) -> None:
    policy = error_policy(code)
    assert policy is not None
    assert policy.http_status == http_status
    assert policy.retryable is retryable
    assert policy.action is action


def test_every_contract_code_has_a_policy() -> None:
    assert {int(code) for code in ERROR_POLICIES} == {c[0] for c in CONTRACT_ERRORS}
    assert {int(code) for code in ErrorCode} == {c[0] for c in CONTRACT_ERRORS}


@pytest.mark.parametrize("code", [-6, -5, -9, -10])
def test_never_retry_unchanged(code: int) -> None:
    # §6: "A client must never retry a -5, -6, -9 or -10 item unchanged."
    policy = error_policy(code)
    assert policy is not None
    assert not policy.retryable


@pytest.mark.parametrize("code", [2, -7, -11, -98, -100, 99, 200, 401])
def test_unknown_code_has_no_policy(code: int) -> None:
    assert error_policy(code) is None


def test_retryable_http_statuses() -> None:
    assert frozenset({429, 502, 503, 504}) == RETRYABLE_HTTP_STATUSES


def test_limits() -> None:
    assert MAX_BATCH_ITEMS == 100
    assert MAX_BODY_BYTES == 5 * 1024 * 1024


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (Channel, [1, 2, 3]),
        (ApplicantType, [1, 2, 3, 4]),
        (ReturnMethod, [0, 1]),
        (OnlinePayment, [0, 1, 2]),
        (YesNo, [0, 1]),
    ],
    ids=["KenhThucHien", "LoaiDoiTuong", "HinhThuc", "DuocThanhToanTrucTuyen", "flags"],
)
def test_code_lists(enum: type[Channel], values: list[int]) -> None:
    assert [member.value for member in enum] == values


def test_code_list_meanings() -> None:
    assert Channel.IN_PERSON.value == 1
    assert Channel.ONLINE.value == 2
    assert Channel.POSTAL.value == 3
    assert ApplicantType.CITIZEN.value == 1
    assert ApplicantType.BUSINESS.value == 2
    assert ApplicantType.STATE_AGENCY.value == 3
    assert ApplicantType.OTHER_ORGANISATION.value == 4
    assert ReturnMethod.IN_PERSON.value == 0
    assert ReturnMethod.BY_POST.value == 1
    assert OnlinePayment.NO.value == 0
    assert OnlinePayment.ON_PORTAL.value == 1
    assert OnlinePayment.ON_LOCAL_GATEWAY.value == 2

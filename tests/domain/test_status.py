"""Contract §5: dossier statuses, the one-step table and the reachability policy."""

from __future__ import annotations

import re
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain import DossierStatus, is_transition_allowed, reachable_from
from app.domain.status import (
    FINAL_STATUSES,
    NEXT_STATUSES,
    PROCESSING_ENDED_AT,
    RECEPTION_REQUIRED_AT,
    RESULT_REQUIRED_AT,
    STATUS_LABELS,
    transition_refusal_message,
)

from .factories import PROPERTY

S = DossierStatus


def statuses(*codes: int) -> frozenset[DossierStatus]:
    return frozenset(S(str(code)) for code in codes)


# The §5 table, copied from the contract text.
CONTRACT_TABLE: dict[int, set[int]] = {
    1: {2, 3, 5, 7},
    2: {4, 5, 6, 7, 8, 9},
    4: {5, 6, 7, 8, 9},
    5: {4, 6, 7, 8, 9},
    6: {4, 7, 8, 9},
    7: {8},
    9: {10},
    3: set(),
    8: set(),
    10: set(),
}

# "Reachable from 1: 2–10; from 2: 4–10; from 4, 5 or 6: 4–10; from 7: 8; from 9: 10;
# 3, 8 and 10 are final."
CONTRACT_REACHABLE: dict[int, set[int]] = {
    1: set(range(2, 11)),
    2: set(range(4, 11)),
    4: set(range(4, 11)),
    5: set(range(4, 11)),
    6: set(range(4, 11)),
    7: {8},
    9: {10},
    3: set(),
    8: set(),
    10: set(),
}

ALL = list(S)


def test_statuses_are_the_strings_1_to_10() -> None:
    assert [s.value for s in S] == [str(n) for n in range(1, 11)]
    assert all(isinstance(s.value, str) for s in S)


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("1", "Mới đăng ký"),
        ("2", "Được tiếp nhận"),
        ("3", "Không được tiếp nhận"),
        ("4", "Đang xử lý"),
        ("5", "Yêu cầu bổ sung giấy tờ"),
        ("6", "Yêu cầu thực hiện nghĩa vụ tài chính"),
        ("7", "Công dân yêu cầu rút hồ sơ"),
        ("8", "Dừng xử lý"),
        ("9", "Đã xử lý xong"),
        ("10", "Đã trả kết quả"),
    ],
)
def test_status_labels(code: str, label: str) -> None:
    assert S(code).label == label
    assert STATUS_LABELS[S(code)] == label


@pytest.mark.parametrize("source", sorted(CONTRACT_TABLE), ids=lambda n: f"from-{n}")
def test_one_step_table_matches_the_contract(source: int) -> None:
    assert NEXT_STATUSES[S(str(source))] == statuses(*CONTRACT_TABLE[source])


def test_one_step_table_covers_every_status() -> None:
    assert set(NEXT_STATUSES) == set(S)


def test_final_statuses_are_3_8_10() -> None:
    assert statuses(3, 8, 10) == FINAL_STATUSES


@pytest.mark.parametrize("source", sorted(CONTRACT_REACHABLE), ids=lambda n: f"from-{n}")
def test_reachable_from_matches_the_contract(source: int) -> None:
    assert reachable_from(S(str(source))) == statuses(*CONTRACT_REACHABLE[source])


def test_conditional_requirement_status_sets() -> None:
    assert statuses(2, 4, 6, 9, 10) == RECEPTION_REQUIRED_AT
    assert statuses(3, 8, 9, 10) == PROCESSING_ENDED_AT
    assert statuses(9, 10) == RESULT_REQUIRED_AT


PAIRS = [(a, b) for a in ALL for b in ALL]


@pytest.mark.parametrize(("stored", "new"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_is_transition_allowed_matches_the_contract(stored: S, new: S) -> None:
    expected = stored == new or int(new) in CONTRACT_REACHABLE[int(stored)]
    assert is_transition_allowed(stored, new) is expected


@pytest.mark.parametrize("status", ALL)
def test_same_status_is_always_allowed(status: S) -> None:
    assert is_transition_allowed(status, status)


@pytest.mark.parametrize(
    ("stored", "new"),
    [("9", "4"), ("4", "2"), ("10", "9"), ("2", "1"), ("8", "4"), ("3", "2"), ("7", "4")],
    ids=lambda v: v,
)
def test_regressions_are_refused(stored: str, new: str) -> None:
    assert not is_transition_allowed(S(stored), S(new))


@pytest.mark.parametrize(
    ("stored", "new"),
    [("1", "4"), ("1", "10"), ("2", "10"), ("6", "5"), ("5", "4"), ("1", "8")],
    ids=lambda v: v,
)
def test_skipping_intermediate_statuses_is_allowed(stored: str, new: str) -> None:
    assert is_transition_allowed(S(stored), S(new))


@pytest.mark.parametrize(("stored", "new"), [("10", "1"), ("9", "4"), ("4", "2"), ("1", "10")])
def test_refusal_message_names_both_codes(stored: str, new: str) -> None:
    message = transition_refusal_message(S(stored), S(new))
    # Exactly the two codes, stored first, and neither mistaken for part of another number.
    assert re.findall(r"(?<![0-9])[0-9]+(?![0-9])", message) == [stored, new]
    assert S(stored).label in message
    assert S(new).label in message


def bfs(start: DossierStatus) -> frozenset[DossierStatus]:
    """Statuses reachable in one or more steps of NEXT_STATUSES, by breadth-first search."""
    seen: set[DossierStatus] = set()
    queue = deque(NEXT_STATUSES[start])
    while queue:
        current = queue.popleft()
        if current in seen:
            continue
        seen.add(current)
        queue.extend(NEXT_STATUSES[current])
    return frozenset(seen)


status_strategy = st.sampled_from(ALL)


@PROPERTY
@given(status_strategy, status_strategy, status_strategy)
def test_reachability_is_transitive(a: S, b: S, c: S) -> None:
    if b in reachable_from(a) and c in reachable_from(b):
        assert c in reachable_from(a)
    if is_transition_allowed(a, b) and is_transition_allowed(b, c):
        assert is_transition_allowed(a, c)


@PROPERTY
@given(status_strategy, status_strategy)
def test_is_transition_allowed_agrees_with_breadth_first_search(stored: S, new: S) -> None:
    assert is_transition_allowed(stored, new) == (stored == new or new in bfs(stored))
    assert reachable_from(stored) == bfs(stored)


@PROPERTY
@given(st.lists(status_strategy, min_size=1, max_size=12))
def test_any_walk_of_the_table_is_allowed_end_to_end(steps: list[S]) -> None:
    # Follow the one-step table from the first status as far as the drawn choices allow;
    # every prefix of a walk is an allowed (possibly multi-step) transition.
    walk = [steps[0]]
    for wanted in steps[1:]:
        options = sorted(NEXT_STATUSES[walk[-1]], key=int)
        if not options:
            break
        walk.append(options[int(wanted) % len(options)])
    for later in walk[1:]:
        assert is_transition_allowed(walk[0], later)
    if len(walk) > 1 and walk[0] not in reachable_from(walk[-1]):
        assert not is_transition_allowed(walk[-1], walk[0])

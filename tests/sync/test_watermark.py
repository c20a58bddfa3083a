"""The change-feed watermark: exact on ties, never behind what was processed, and
noticing a record that changed again without its timestamp moving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.sync.connectors.watermark import Change, Watermark, row_digest

T0 = datetime(2024, 5, 13, 2, 30, tzinfo=UTC)


def change(at: datetime | None, record: str, digest: str = "v1") -> Change:
    return Change(at, record, digest)


def test_an_empty_watermark_covers_nothing() -> None:
    assert not Watermark().covers(change(T0, "a"))
    assert Watermark.load(None) == Watermark()
    assert Watermark.load({"at": None, "ids": {}}) == Watermark()


def test_ties_are_told_apart_by_id() -> None:
    mark = Watermark().advanced([change(T0, "a"), change(T0, "b")])
    assert mark.covers(change(T0, "a")) and mark.covers(change(T0, "b"))
    assert not mark.covers(change(T0, "c"))  # same time, not read yet
    assert mark.covers(change(T0 - timedelta(milliseconds=1), "z"))
    assert not mark.covers(change(T0 + timedelta(milliseconds=1), "a"))  # changed later


def test_a_record_changed_again_within_the_same_tick_is_read_again() -> None:
    mark = Watermark().advanced([change(T0, "a", "v1")])
    assert not mark.covers(change(T0, "a", "v2"))
    assert mark.advanced([change(T0, "a", "v2")]).covers(change(T0, "a", "v2"))


def test_advancing_to_a_later_time_forgets_the_old_ties() -> None:
    mark = Watermark().advanced([change(T0, "a"), change(T0 + timedelta(seconds=1), "b")])
    assert mark.at == T0 + timedelta(seconds=1) and dict(mark.ids) == {"b": "v1"}
    again = mark.advanced([change(T0 + timedelta(seconds=1), "c")])
    assert set(again.ids) == {"b", "c"}


def test_records_without_a_time_do_not_move_it() -> None:
    mark = Watermark().advanced([change(None, "a"), change(T0, "b")])
    assert (mark.at, dict(mark.ids)) == (T0, {"b": "v1"})
    assert not mark.covers(change(None, "a"))


def test_it_round_trips_through_a_checkpoint() -> None:
    mark = Watermark().advanced([change(T0, "b"), change(T0, "a", "x")])
    assert Watermark.load(mark.dump()) == mark
    assert mark.dump() == {"at": T0.isoformat(), "ids": {"a": "x", "b": "v1"}}


def test_an_old_cursor_without_digests_reads_its_ties_again() -> None:
    mark = Watermark.load({"at": T0.isoformat(), "ids": ["a"]})
    assert not mark.covers(change(T0, "a"))
    assert mark.covers(change(T0 - timedelta(seconds=1), "a"))


def test_past_moves_just_beyond_a_fully_read_tie_group() -> None:
    mark = Watermark().advanced([change(T0, "a")]).past(timedelta(milliseconds=1))
    assert mark.at == T0 + timedelta(milliseconds=1) and not mark.ids
    assert mark.covers(change(T0, "anything"))


def test_the_row_digest_sees_any_change_and_ignores_key_order() -> None:
    assert row_digest({"a": 1, "b": [1, 2]}) == row_digest({"b": [1, 2], "a": 1})
    assert row_digest({"a": 1}) != row_digest({"a": 2})


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=20), st.sampled_from("abcdefgh")),
        max_size=40,
    ),
    st.integers(min_value=0, max_value=40),
)
def test_processing_in_order_in_any_split_covers_exactly_what_was_processed(
    changes: list[tuple[int, str]], split: int
) -> None:
    """Feed sorted changes in two pages split anywhere: afterwards every processed change
    is covered, and any change after the last processed time is not."""
    ordered = [change(T0 + timedelta(seconds=s), key) for s, key in sorted(changes)]
    mark = Watermark().advanced(ordered[:split]).advanced(ordered[split:])
    latest = {c.record_id: c for c in ordered}
    assert all(mark.covers(c) for c in latest.values())
    later = T0 + timedelta(seconds=max((s for s, _ in changes), default=0) + 1)
    assert not mark.covers(change(later, "a"))

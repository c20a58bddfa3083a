"""Property: whatever the source does between and during polls — single changes, bulk
actions that tie many records to one timestamp, rows moving while a poll pages through
them — once the source is quiet and polled, storage equals the source's truth: nothing
lost, nothing stored twice, every dossier at its latest state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.db import create_session_factory
from app.simulators import BackgroundSimulator, Dialect, SimulatorSettings
from tests.conftest import IsolatedDatabase
from tests.simulators.helpers import Control
from tests.sync.polling import (
    assert_matches_truth,
    poll_until_quiet,
    poller_for,
    seed_catalogue,
    wipe,
)

Op = tuple[str, int, int]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("change"), st.integers(1, 6), st.just(1)),
        st.tuples(st.just("bulk"), st.integers(2, 12), st.integers(2, 12)),
        st.tuples(st.just("poll"), st.just(0), st.just(0)),
        st.tuples(st.just("poll_while_moving"), st.integers(1, 2), st.just(0)),
    ),
    min_size=1,
    max_size=8,
)


@pytest.fixture(scope="module")
def simulators() -> Iterator[dict[str, tuple[BackgroundSimulator, Control]]]:
    running: dict[str, tuple[BackgroundSimulator, Control]] = {}
    dialects: tuple[Dialect, ...] = ("opencps", "igate", "dvclt")
    try:
        for dialect in dialects:
            sim = BackgroundSimulator(dialect, SimulatorSettings(dossiers=5)).start()
            running[dialect] = (sim, Control(sim.url))
        yield running
    finally:
        for sim, control in running.values():
            control.close()
            sim.stop()


@pytest.mark.parametrize("dialect", ["opencps", "igate", "dvclt"])
@settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    dossiers=st.integers(3, 25),
    page_size=st.integers(3, 8),  # > moves per request: else no reader can keep up
    ops=operations,
)
async def test_storage_converges_to_the_truth(  # noqa: PLR0917 - hypothesis passes them
    dialect: Dialect,
    simulators: dict[str, tuple[BackgroundSimulator, Control]],
    migrated_database: IsolatedDatabase,
    seed: int,
    dossiers: int,
    page_size: int,
    ops: list[Op],
) -> None:
    sim, control = simulators[dialect]
    control.http.post("/_sim/reset", json={"seed": seed, "dossiers": dossiers}).raise_for_status()
    control.settings(
        ties=True, moves_per_list_request=0, duplicates_share=0.2, out_of_order_share=0.2
    )
    await wipe(migrated_database.engine)
    factory = create_session_factory(migrated_database.engine)
    catalogue = await seed_catalogue(factory)
    poller = poller_for(dialect, sim.url, factory, control.truth(), page_size=page_size)
    try:
        for name, amount, bulk in ops:
            if name in ("change", "bulk"):
                control.mutate(amount, bulk=bulk)
            elif name == "poll":
                assert (await poller.poll_once()).error is None
            else:
                control.settings(moves_per_list_request=amount)
                report = await poller.poll_once()
                control.settings(moves_per_list_request=0)
                assert report.error is None
        await poll_until_quiet(poller, limit=40)
        truth: dict[str, Any] = control.truth()
        counts = await assert_matches_truth(factory, dialect, truth, catalogue)
    finally:
        await poller.aclose()
    assert counts["valid"] + counts["quarantined"] == len(truth["dossiers"])

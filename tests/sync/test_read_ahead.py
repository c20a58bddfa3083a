"""Fetching a cursor source's next page while the poll stage stores the current one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.simulators import Dialect
from app.sync import poll
from app.sync.connectors import Page, SourceRecord, SourceUnavailable, read_ahead
from app.sync.connectors.http import Answer
from app.sync.normalise.common import Catalogue
from tests.sync.polling import (
    assert_matches_truth,
    poll_until_quiet,
    poller_for,
    simulator,
)

# Long enough never to pass by accident on a loaded machine; only a failing test waits it.
PATIENCE_S = 10.0


def page(n: int) -> Page:
    return Page([SourceRecord(f"dossier:{n}", str(n), {})], {"page": n})


class Numbered:
    """Pages 1, 2, … ``count``, then (``fail``) a source error; notes what it was asked."""

    def __init__(self, count: int, fail: bool = False) -> None:
        self.count, self.fail = count, fail
        self.fetched: list[int] = []
        self.second_fetched = asyncio.Event()
        self.closed = False

    async def pages(self) -> AsyncIterator[Page]:
        try:
            for n in range(1, self.count + 1):
                self.fetched.append(n)
                if n == 2:
                    self.second_fetched.set()
                yield page(n)
            if self.fail:
                raise SourceUnavailable("the source went away")
        finally:
            self.closed = True


async def test_pages_arrive_in_order_and_the_next_is_fetched_meanwhile() -> None:
    source = Numbered(4)
    seen: list[Any] = []
    async with read_ahead(source.pages()) as pages:
        async for item in pages:
            if not seen:
                # Page 2 is fetched while page 1 is still being handled here.
                await asyncio.wait_for(source.second_fetched.wait(), PATIENCE_S)
            seen.append(item.checkpoint)
    assert seen == [{"page": n} for n in range(1, 5)]
    assert source.closed


async def test_a_source_error_comes_after_the_pages_fetched_before_it() -> None:
    source = Numbered(2, fail=True)
    seen: list[Any] = []

    async def consume() -> None:
        async with read_ahead(source.pages()) as pages:
            async for item in pages:
                seen.append(item.checkpoint)  # noqa: PERF401 - in order, up to the error

    with pytest.raises(SourceUnavailable, match="the source went away"):
        await consume()
    assert seen == [{"page": 1}, {"page": 2}]


async def test_leaving_early_stops_the_fetching() -> None:
    source = Numbered(1000)
    async with read_ahead(source.pages()) as pages:
        async for _ in pages:
            break
    assert source.closed
    fetched = len(source.fetched)
    await asyncio.sleep(0.05)
    assert len(source.fetched) == fetched <= 3  # the page handled, one queued, one held


LIST_PATHS: dict[Dialect, str] = {
    "opencps": "/o/rest/v2/dossiers",
    "igate": "/pa/dossier/search",
    "dvclt": "/api/lienthongdvclt/hosolienthong/chua-nhan",
}


@pytest.mark.parametrize("dialect", ["opencps", "igate", "dvclt"])
async def test_the_poller_reads_a_cursor_source_ahead_of_its_store(
    dialect: Dialect,
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the first page is stored, a cursor dialect's next page is already asked for;
    the DVCLT queue's is not (it lists the same messages until they are acknowledged,
    after the commit). Either way the database ends equal to the source."""
    factory, catalogue = sessions
    with simulator(dialect, dossiers=30, seed=4) as (sim, control):
        truth = control.truth()
        poller = poller_for(dialect, sim.url, factory, truth, page_size=5)
        lists: list[str] = []
        second_list = asyncio.Event()

        send = poller.http.send

        async def note(method: str, path: str, **kwargs: Any) -> Answer:
            if path == LIST_PATHS[dialect]:
                lists.append(path)
                if len(lists) == 2:
                    second_list.set()
            return await send(method, path, **kwargs)

        monkeypatch.setattr(poller.http, "send", note)
        lists_while_storing: list[int] = []
        normalise_records = poll.normalise_records

        async def storing(*args: Any, **kwargs: Any) -> Any:
            if not lists_while_storing and dialect != "dvclt":
                await asyncio.wait_for(second_list.wait(), PATIENCE_S)
            lists_while_storing.append(len(lists))
            return await normalise_records(*args, **kwargs)

        monkeypatch.setattr(poll, "normalise_records", storing)
        try:
            await poll_until_quiet(poller)
        finally:
            await poller.aclose()
        await assert_matches_truth(factory, dialect, truth, catalogue)
    if dialect == "dvclt":
        assert lists_while_storing[0] == 1
    else:
        assert lists_while_storing[0] >= 2

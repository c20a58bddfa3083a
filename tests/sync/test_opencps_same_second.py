"""OpenCPS stamps ``modifiedDate`` in whole seconds, and a change that only adds a step
leaves the listed row as it was. A row read in the very second it was stamped can so
change again without any sign in the listing; the connector must read such a row again
at its next poll (found by CI: a step went missing in the wall-clock polling test).

A scripted server (not the simulator, served over loopback by aiohttp's test server)
makes the timing exact."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.domain.dates import VN_TZ
from app.sync.connectors import Connector
from app.sync.connectors.opencps import LIST_PATH
from tests.sync.polling import connector_for
from tests.sync.test_normalise_opencps import opencps_action, opencps_dossier


class Source:
    """One dossier stamped now; its actions are whatever the test says."""

    def __init__(self) -> None:
        stamp = datetime.now(VN_TZ).strftime("%d/%m/%Y %H:%M:%S")
        self.row = opencps_dossier(modifiedDate=stamp)
        self.actions = [opencps_action()]

    async def answer(self, request: web.Request) -> web.Response:
        path = request.path
        if path == LIST_PATH:
            start = int(request.query.get("start", 0))
            rows = [self.row][start:]
            return web.json_response({"total": 1, "data": rows})
        if path.endswith("/files"):
            return web.json_response({"total": 0, "data": []})
        if path.endswith("/actions"):
            return web.json_response({"total": len(self.actions), "data": self.actions})
        return web.json_response({}, status=404)

    @contextlib.asynccontextmanager
    async def connector(self) -> AsyncIterator[Connector]:
        application = web.Application()
        application.router.add_route("GET", "/{path:.*}", self.answer)
        async with (
            TestServer(application, host="127.0.0.1") as server,
            connector_for("opencps", str(server.make_url(""))) as connector,
        ):
            yield connector


async def poll(
    connector: Connector, checkpoint: dict[str, Any] | None
) -> tuple[list[Any], dict[str, Any] | None]:
    records: list[Any] = []
    cursor = checkpoint
    pages: AsyncIterator[Any] = connector.pages(checkpoint)
    async for page in pages:
        records += page.records
        cursor = page.checkpoint
    return records, cursor


@pytest.fixture
def source() -> Source:
    return Source()


async def test_a_step_added_in_the_second_of_the_last_read_is_not_missed(
    source: Source,
) -> None:
    async with source.connector() as connector:
        first, cursor = await poll(connector, None)
        assert [len(r.raw["actions"]) for r in first] == [1]

        # Same second, same listed row: only a new step.
        source.actions = [*source.actions, opencps_action(dossierActionId=302, actionNote="x")]
        again, _ = await poll(connector, cursor)
        assert [len(r.raw["actions"]) for r in again] == [2]
        assert json.dumps(again[0].raw["dossier"]) == json.dumps(source.row)


async def test_an_old_row_read_before_is_not_read_again(source: Source) -> None:
    source.row = opencps_dossier(modifiedDate="25/01/2024 09:15:42")  # long settled
    async with source.connector() as connector:
        first, cursor = await poll(connector, None)
        assert len(first) == 1
        again, _ = await poll(connector, cursor)
        assert again == []

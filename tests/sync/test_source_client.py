"""The connectors' HTTP client (``app/sync/connectors/http.py``): credentials, token
renewal, errors, query encoding — against the simulators where they can show it, and a
scripted token server over loopback (aiohttp's test server) where the timing must be
exact."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.simulators import Dialect
from app.sync.connectors import SourceAuthError, SourceUnavailable
from app.sync.connectors.igate import LOGIN_PATH, SEARCH_PATH
from tests.sync.polling import connector_for, simulator

FIRST_PAGE: dict[str, tuple[str, dict[str, str | int]]] = {
    "opencps": ("/o/rest/v2/dossiers", {"start": 0, "end": 5, "sort": "modifiedDate"}),
    "igate": (SEARCH_PATH, {"page": 0, "size": 5, "sort": "updatedDate,asc"}),
    "dvclt": ("/api/lienthongdvclt/hosolienthong/chua-nhan", {"limit": 5}),
}


@pytest.mark.parametrize("dialect", ["opencps", "igate", "dvclt"])
async def test_each_dialect_reads_with_its_credentials_and_wrong_ones_are_an_auth_error(
    dialect: Dialect,
) -> None:
    path, params = FIRST_PAGE[dialect]
    wrong = {"opencps": "password", "igate": "client_secret", "dvclt": "password"}[dialect]
    with simulator(dialect, dossiers=5, seed=2) as (sim, _):
        async with connector_for(dialect, sim.url) as connector:
            body = await connector.get_json(path, **params)
            assert body.get("data") or body.get("content")
        async with connector_for(dialect, sim.url, **{wrong: "not-demo"}) as connector:
            with pytest.raises(SourceAuthError, match="refused"):
                await connector.get_json(path, **params)


class TokenSource:
    """An iGate-like source whose tokens the test expires, and whose login can fail."""

    def __init__(self) -> None:
        self.logins = 0
        self.login_failures: list[int] = []  # statuses the next logins answer with
        self.valid: set[str] = set()
        self.queries: list[dict[str, str]] = []
        self.answered = asyncio.Event()
        self.hold: asyncio.Event | None = None  # searches wait for it once refused

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self.login_failures:
            return web.json_response({}, status=self.login_failures.pop(0))
        if form.get("client_id") != "demo" or form.get("client_secret") != "demo":
            return web.json_response({"error": "invalid_client"}, status=401)
        self.logins += 1
        token = f"token-{self.logins}"
        self.valid.add(token)
        return web.json_response({"access_token": token, "expires_in": 300})

    async def search(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.valid:
            if self.hold is not None:
                await self.hold.wait()  # every request in flight gets its 401 together
            return web.json_response({}, status=401)
        self.queries.append(dict(request.query))
        return web.json_response({"content": [], "totalElements": 0})

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        application = web.Application()
        application.router.add_post(LOGIN_PATH, self.login)
        application.router.add_get(SEARCH_PATH, self.search)
        async with TestServer(application, host="127.0.0.1") as server:
            yield str(server.make_url("")).rstrip("/")


async def test_requests_in_flight_when_the_token_expires_share_one_new_login() -> None:
    source = TokenSource()
    async with source.serving() as url, connector_for("igate", url) as connector:
        await connector.get_json(SEARCH_PATH, page=0)
        assert source.logins == 1
        source.valid.clear()  # the token expires at the source
        source.hold = asyncio.Event()
        calls = [asyncio.create_task(connector.get_json(SEARCH_PATH, page=n)) for n in range(4)]
        await asyncio.sleep(0.2)  # all four are at the source with the stale token
        source.hold.set()
        answers = await asyncio.gather(*calls)
    assert answers == [{"content": [], "totalElements": 0}] * 4
    assert source.logins == 2  # one new login, not one per refused request


async def test_a_login_service_that_is_down_is_waited_for_not_taken_for_bad_credentials() -> None:
    source = TokenSource()
    async with source.serving() as url, connector_for("igate", url) as connector:
        source.login_failures = [503, 502]
        assert await connector.get_json(SEARCH_PATH, page=0) == {
            "content": [],
            "totalElements": 0,
        }
        assert source.logins == 1

    source = TokenSource()
    async with source.serving() as url, connector_for("igate", url) as connector:
        connector.attempts = 2
        source.login_failures = [503, 503]
        with pytest.raises(SourceUnavailable) as caught:
            await connector.get_json(SEARCH_PATH, page=0)
        assert not isinstance(caught.value, SourceAuthError)
        assert "login refused (503)" in str(caught.value)


async def test_query_values_reach_the_source_as_given() -> None:
    """iGate's ``updated-from`` carries a ``+0700`` offset: a ``+`` left unescaped in a
    query reads as a space at the other end."""
    source = TokenSource()
    stamp = "2024-05-13T09:30:00.123+0700"
    async with source.serving() as url, connector_for("igate", url) as connector:
        query: dict[str, str | int] = {"updated-from": stamp, "size": 500}
        await connector.get_json(SEARCH_PATH, **query)
    assert source.queries == [{"updated-from": stamp, "size": "500"}]


async def test_a_source_that_does_not_answer_is_unavailable() -> None:
    # Port 9 (discard) on loopback: nothing listens there, the connection is refused.
    async with connector_for("opencps", "http://127.0.0.1:9") as connector:
        connector.attempts = 2
        with pytest.raises(SourceUnavailable, match="failed: ClientConnectorError"):
            await connector.get_json("/o/rest/v2/dossiers", start=0, end=5)


async def test_a_server_error_is_retried_after_a_back_off_then_reported_with_its_status() -> None:
    answers: list[int] = [500, 200]
    seen: list[float] = []

    async def flaky(request: web.Request) -> web.Response:
        seen.append(asyncio.get_running_loop().time())
        status = answers.pop(0) if answers else 503
        return web.json_response({"total": 0, "data": []}, status=status)

    application = web.Application()
    application.router.add_get("/o/rest/v2/dossiers", flaky)
    async with TestServer(application, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        async with connector_for("opencps", url) as connector:
            assert await connector.get_json("/o/rest/v2/dossiers") == {"total": 0, "data": []}
            assert len(seen) == 2
            # The back-off's first wait is at least its multiplier, 0.2 s.
            assert seen[1] - seen[0] >= 0.2
            connector.attempts = 2
            with pytest.raises(SourceUnavailable, match="answered 503"):
                await connector.get_json("/o/rest/v2/dossiers")
    assert len(seen) == 4


async def test_a_redirect_is_reported_not_followed_with_the_credentials() -> None:
    followed: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        followed.append(request.headers.get("Authorization", ""))
        return web.json_response({"total": 0, "data": []})

    application = web.Application()
    application.router.add_get("/o/rest/v2/dossiers", moved)
    application.router.add_get("/elsewhere", elsewhere)
    async with TestServer(application, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        async with connector_for("opencps", url) as connector:
            with pytest.raises(SourceUnavailable, match="answered 302"):
                await connector.get_json("/o/rest/v2/dossiers")
    assert followed == []

"""The HTTP client the connectors read their sources with: aiohttp's pool and the
dialects' authentication, nothing more.

Reading a source takes about three requests a dossier (the dialects fetch files,
actions, history or a message's detail one at a time), so a request's CPU is the largest
single item of the polling process. httpx over this same pool cost about twice what
the pool does (building and merging its request and URL objects, cookies, the auth
flow's generator: ``bench/source_requests.py``); the connectors need none of that — a
GET with a query, a PUT with JSON, a login — so they speak to aiohttp through this
thin layer instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

Params = Mapping[str, str | int | float]


class SourceTransportError(Exception):
    """The request did not get an answer: connection refused or reset, or timed out."""


class SourceStatusError(Exception):
    """The source answered with an error status."""

    def __init__(self, method: str, path: str, status: int) -> None:
        super().__init__(f"{method} {path} answered {status}")
        self.status = status


class LoginRefused(SourceStatusError):  # noqa: N818 - what happened, as it reads
    """The login call of a token dialect did not hand out a token."""

    def __init__(self, path: str, status: int) -> None:
        super().__init__("POST", path, status)
        self.args = (f"login refused ({status})",)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def checked(self, method: str, path: str) -> Answer:
        """This answer, unless its status is not a success (raised as
        :class:`SourceStatusError`; redirects are not followed, so a 3xx is one)."""
        if not 200 <= self.status < 300:
            raise SourceStatusError(method, path, self.status)
        return self


class Authenticator(Protocol):
    async def headers(self, client: SourceClient) -> dict[str, str]:
        """The headers a request carries (logging in first if need be)."""
        ...

    async def renew(self, client: SourceClient, refused: Mapping[str, str]) -> bool:
        """A request sent with ``refused`` got a 401: whether to send it again."""
        ...


class FixedHeaders:
    """Credentials sent with every request (OpenCPS: HTTP Basic and ``groupId``)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    @classmethod
    def basic(cls, username: str, password: str, **extra: str) -> FixedHeaders:
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        return cls({"Authorization": f"Basic {token}", **extra})

    async def headers(self, client: SourceClient) -> dict[str, str]:
        return self._headers

    async def renew(self, client: SourceClient, refused: Mapping[str, str]) -> bool:
        return False  # the same credentials would be refused again


class TokenLogin:
    """Bearer tokens from a login call, fetched when missing and again on a 401.

    Sources hand out short-lived tokens (iGate five minutes, DVCLT fifteen); a 401 means
    "log in again", not "stop". Requests in flight when the token expires all get their
    401; one of them logs in and the others use its token (a login at a time).
    """

    def __init__(
        self,
        path: str,
        token_of: Callable[[Any], str],
        *,
        form: Mapping[str, str] | None = None,
        json_body: Mapping[str, str] | None = None,
    ) -> None:
        self._path = path
        self._token_of = token_of
        self._form = form
        self._json = json_body
        self._lock = asyncio.Lock()
        self.token: str | None = None

    async def headers(self, client: SourceClient) -> dict[str, str]:
        if self.token is None:
            async with self._lock:
                if self.token is None:
                    await self._login(client)
        return {"Authorization": f"Bearer {self.token}"}

    async def renew(self, client: SourceClient, refused: Mapping[str, str]) -> bool:
        async with self._lock:
            if refused.get("Authorization") == f"Bearer {self.token}":
                await self._login(client)
        return True

    async def _login(self, client: SourceClient) -> None:
        answer = await client.send("POST", self._path, form=self._form, json_body=self._json)
        if answer.status != 200:
            raise LoginRefused(self._path, answer.status)
        self.token = self._token_of(answer.json())


class SourceClient:
    """Requests to one source over a pool of ``connections`` kept-alive connections."""

    def __init__(
        self,
        base_url: str,
        auth: Authenticator,
        *,
        connections: int,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # Opened at the first request: an aiohttp session belongs to the running loop.
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: Any = None,
    ) -> Answer:
        """``method path`` with the source's credentials, logging in again once on a 401."""
        headers = await self.auth.headers(self)
        answer = await self.send(method, path, params=params, json_body=json_body, headers=headers)
        if answer.status == 401 and await self.auth.renew(self, headers):
            headers = await self.auth.headers(self)
            answer = await self.send(
                method, path, params=params, json_body=json_body, headers=headers
            )
        return answer

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One HTTP exchange, as it is (no credentials added)."""
        session = self._session
        if session is None or session.closed:
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=self._timeout,
                # Sources are read, not browsed: no cookie jar to fill and consult.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        try:
            async with session.request(
                method,
                self.base_url + path,
                params=params,
                json=json_body,
                data=form,
                headers=headers,
                # No dialect redirects; one means a wrong base URL, said as such rather
                # than followed with the credentials to wherever it points.
                allow_redirects=False,
            ) as response:
                return Answer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as error:
            raise SourceTransportError(type(error).__name__) from error

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

"""The one small interface every dialect's connector implements, and what they share.

A connector turns a source into a sequence of *pages*: source records plus the cursor
that covers them. The poll stage stores each page's records and its cursor in one
transaction, then calls :meth:`Connector.acknowledge` (queue dialects acknowledge there,
only after what the messages carry is durably stored). Connectors do no database work.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from app.config import SourceSettings
from app.sync.connectors.http import (
    Answer,
    LoginRefused,
    Params,
    SourceClient,
    SourceStatusError,
    SourceTransportError,
)

T = TypeVar("T")
R = TypeVar("R")


class SourceUnavailable(Exception):  # noqa: N818 - a state of the source, as it reads
    """The source did not answer usably after the retries; the poll backs off."""


class SourceAuthError(SourceUnavailable):
    """The source refused the configured credentials (a configuration problem)."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as fetched: a dossier with its history (or one queue message)."""

    key: str  # quarantine key, e.g. "dossier:4711" or "message:12"
    record_id: str  # the source's own id
    raw: dict[str, Any]


@dataclass(slots=True)
class Page:
    records: list[SourceRecord]
    checkpoint: dict[str, Any] | None  # the cursor after these records (None: no cursor)
    acknowledgements: list[Any] = field(default_factory=list)  # queue dialects


def _transient(error: BaseException) -> bool:
    if isinstance(error, SourceTransportError):
        return True
    if isinstance(error, SourceStatusError):
        return error.status == 429 or error.status >= 500
    return False


class Connector(ABC):
    dialect: ClassVar[str]
    # Whether the next page may be fetched while the poll stage still stores this one. A
    # cursor dialect's next page depends only on rows already read; a queue's does not
    # move until the page is acknowledged, after its commit.
    reads_ahead: ClassVar[bool] = True
    # Retries of one request before the poll gives up on the source for this round.
    attempts: int = 4

    def __init__(self, settings: SourceSettings, http: SourceClient) -> None:
        self.settings = settings
        self.http = http
        self._limit = asyncio.Semaphore(settings.concurrency)

    @abstractmethod
    def pages(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Page]:
        """Records changed since ``checkpoint``, oldest first, a page at a time."""

    async def acknowledge(self, page: Page) -> None:  # noqa: B027 - cursor dialects: no-op
        """Called once ``page`` is committed. Cursor dialects have nothing to do."""

    async def get_json(self, path: str, **params: str | int | float) -> Any:
        """GET with retries on transient failures (exponential back-off with jitter)."""
        return (await self.request("GET", path, params=params or None)).json()

    async def request(
        self, method: str, path: str, *, params: Params | None = None, json_body: Any = None
    ) -> Answer:
        try:
            try:
                return await self._attempt(method, path, params, json_body)
            except (SourceStatusError, SourceTransportError) as error:
                if not _transient(error):
                    raise
                failed: BaseException | None = error
            # Only a request that failed makes tenacity's retrying state (about a quarter
            # of a request's CPU otherwise). The first failure is handed to it as its
            # first attempt, so that it waits and counts exactly as if it had made it.
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_transient),
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
                reraise=True,
            ):
                with attempt:
                    if failed is not None:
                        replayed, failed = failed, None
                        raise replayed
                    return await self._attempt(method, path, params, json_body)
        except LoginRefused as error:
            if _transient(error):  # the login service is down, not the credentials wrong
                raise SourceUnavailable(f"{self.settings.name}: {error}") from None
            raise SourceAuthError(f"{self.settings.name}: {error}") from None
        except SourceStatusError as error:
            if error.status in (401, 403):
                raise SourceAuthError(
                    f"{self.settings.name}: {method} {path} refused ({error.status})"
                ) from None
            raise SourceUnavailable(f"{self.settings.name}: {error}") from None
        except SourceTransportError as error:
            raise SourceUnavailable(
                f"{self.settings.name}: {method} {path} failed: {error}"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, method: str, path: str, params: Params | None, json_body: Any
    ) -> Answer:
        async with self._limit:
            answer = await self.http.request(method, path, params=params, json_body=json_body)
        return answer.checked(method, path)

    @staticmethod
    async def gather(items: Iterable[T], fetch: Callable[[T], Awaitable[R]]) -> list[R]:
        """Fetch per-item details concurrently (bounded by the source's ``concurrency``:
        the semaphore sits around each HTTP call)."""
        return list(await asyncio.gather(*(fetch(item) for item in items)))


@contextlib.asynccontextmanager
async def read_ahead(pages: AsyncIterator[Page]) -> AsyncIterator[AsyncIterator[Page]]:
    """``pages`` fetched one page ahead of their consumer, in a task of their own.

    The poll stage stores a page (normalising it and waiting on the database) while the
    connector already waits on the source for the next one: the two waits overlap instead
    of adding up. At most one finished page waits in the queue (and one more is being
    fetched), so memory stays bounded by the page size. An error of the source reaches
    the consumer where the sequence stops, after the pages fetched before it; leaving the
    block stops the fetching (the source's cursor is the committed one, so a page fetched
    but never stored is read again by the next poll).
    """
    queue: asyncio.Queue[Page | BaseException | None] = asyncio.Queue(maxsize=1)

    async def fetch() -> None:
        try:
            async for page in pages:
                await queue.put(page)
        except Exception as error:  # handed to the consumer, raised there
            await queue.put(error)
        else:
            await queue.put(None)

    async def fetched() -> AsyncIterator[Page]:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    fetcher = asyncio.create_task(fetch())
    try:
        yield fetched()
    finally:
        fetcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fetcher
        if isinstance(pages, AsyncGenerator):
            await pages.aclose()

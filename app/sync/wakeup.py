"""A wake-up hint for idle pushers on PostgreSQL (LISTEN/NOTIFY).

Every transaction that makes outbox rows due notifies :data:`CHANGES_CHANNEL` when it
commits (:meth:`OutboxRepository.notify_changes`), in whichever process stored the
change: a worker's poller, the API's ingest, a redrive. Each engine with a pusher holds
one connection of its own listening there, and a notification wakes its push loop at
once. It is only a hint: the loop still looks for due rows every
``sync.idle_push_wait_s``, so a dropped connection or a missed notification delays work
by that much and loses nothing. The connection is re-opened with back-off when it drops,
and is pinged now and then, since a half-open TCP connection would otherwise go
unnoticed; none of this ever stops the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.logs import get_logger
from app.repositories.outbox import CHANGES_CHANNEL

log = get_logger("dossier_sync.wakeup")

APPLICATION_NAME = "dossier-sync wake-up"  # tells the connection apart in pg_stat_activity
CONNECT_TIMEOUT_S = 10.0
PING_EVERY_S = 30.0
PING_TIMEOUT_S = 5.0
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
CLOSE_TIMEOUT_S = 2.0

Connect = Callable[[], Awaitable[Any]]  # opens an asyncpg connection (untyped library)


def connector_for(bind: object) -> Connect | None:
    """How to open a connection to the PostgreSQL database of ``bind`` (an engine), or
    None when it is not one. The connection is the engine's URL opened by asyncpg
    directly, outside the pool: it idles in LISTEN for the life of the process."""
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "postgresql":
        return None
    _args, params = bind.dialect.create_connect_args(bind.url)
    # The URL may carry options of SQLAlchemy's adapter (prepared statement cache);
    # asyncpg.connect would refuse them.
    accepted = inspect.signature(asyncpg.connect).parameters
    options: dict[str, Any] = {key: value for key, value in params.items() if key in accepted}
    options.setdefault("timeout", CONNECT_TIMEOUT_S)
    options.setdefault("server_settings", {"application_name": APPLICATION_NAME})

    async def connect() -> Any:
        return await asyncpg.connect(**options)

    return connect


class WakeupListener:
    """Calls ``on_notify`` for every notification on :data:`CHANGES_CHANNEL`, and once
    each time it starts listening (changes stored while nobody listened are due too)."""

    def __init__(
        self,
        connect: Connect,
        on_notify: Callable[[], None],
        *,
        ping_every_s: float = PING_EVERY_S,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.connect = connect
        self.on_notify = on_notify
        self.ping_every_s = ping_every_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.listening = asyncio.Event()  # set while a LISTEN connection is up
        self.server_pid: int | None = None  # its backend, while listening
        self._was_listening = False

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop`` is set, reconnecting as often as needed. Never raises
        (cancellation aside): the push loop works without the hint."""
        failures = 0
        while not stop.is_set():
            try:
                await self._connect_and_listen(stop)
            except Exception as error:  # any failure: the same answer, try again later
                # A connection that had been listening starts the back-off afresh.
                failures = 1 if self._was_listening else failures + 1
                delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (failures - 1))
                log.warning(
                    "wake-up listener down; pushers rely on their idle look meanwhile",
                    error=type(error).__name__,
                    retry_in_s=round(delay, 2),
                )
                await _sleep(stop, delay)

    async def _connect_and_listen(self, stop: asyncio.Event) -> None:
        """Listen on a new connection until ``stop`` (returns) or the connection is
        lost (raises)."""
        self._was_listening = False
        connection = await self.connect()
        try:
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(CHANGES_CHANNEL, self._notified)
            self._was_listening = True
            self.server_pid = connection.get_server_pid()
            self.listening.set()
            log.info("wake-up listener ready", channel=CHANGES_CHANNEL)
            self.on_notify()
            while not stop.is_set():
                await _first(self.ping_every_s, stop, lost)
                if lost.is_set():
                    raise ConnectionError("the listening connection was closed")
                if not stop.is_set():
                    # A liveness check of this connection, as the pool's pre-ping does.
                    await connection.execute("SELECT 1", timeout=PING_TIMEOUT_S)
        finally:
            self.listening.clear()
            self.server_pid = None
            await _close(connection)

    def _notified(self, *_notification: object) -> None:
        self.on_notify()


def listener_for(bind: object, on_notify: Callable[[], None]) -> WakeupListener | None:
    """A listener on the database of ``bind``, or None when that is not PostgreSQL
    (SQLite runs one worker, whose poller wakes its pusher directly)."""
    connect = connector_for(bind)
    return None if connect is None else WakeupListener(connect, on_notify)


async def _close(connection: Any) -> None:
    # asyncpg aborts the connection itself when a graceful close fails.
    with contextlib.suppress(Exception):
        await connection.close(timeout=CLOSE_TIMEOUT_S)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _first(seconds: float, *events: asyncio.Event) -> None:
    """Until one of ``events`` is set, or ``seconds`` have passed."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()

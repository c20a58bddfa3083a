"""Sources, their run-time health, poll leases and checkpoints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from app.models import PollCheckpoint, PollWorker, Source, SourceMessage
from app.repositories.base import Repository


class SourceRepository(Repository):
    async def ensure(self, name: str, dialect: str, now: datetime) -> Source:
        """The source row for a configured source, created on first sight."""
        statement = (
            self.insert(Source)
            .values(
                name=name, dialect=dialect, created_at=now, paused=False, consecutive_failures=0
            )
            .on_conflict_do_update(index_elements=["name"], set_={"dialect": dialect})
        )
        await self.session.execute(statement)
        source = await self.get_by_name(name)
        assert source is not None  # noqa: S101 - just upserted
        return source

    async def get_by_name(self, name: str) -> Source | None:
        return await self.session.scalar(
            select(Source).where(Source.name == name).execution_options(populate_existing=True)
        )

    async def list_all(self) -> Sequence[Source]:
        return (await self.session.scalars(select(Source).order_by(Source.name))).all()

    async def by_names(self, names: Iterable[str]) -> dict[str, Source]:
        rows = await self.session.scalars(
            select(Source)
            .where(Source.name.in_(list(names)))
            .execution_options(populate_existing=True)
        )
        return {row.name: row for row in rows}

    async def names(self, source_ids: Iterable[int]) -> dict[int, str]:
        rows = await self.session.execute(
            select(Source.id, Source.name).where(Source.id.in_(list(source_ids)))
        )
        return dict(rows.all())

    async def set_paused(self, source_id: int, paused: bool) -> None:
        await self.session.execute(
            update(Source).where(Source.id == source_id).values(paused=paused)
        )

    async def request_poll(self, source_id: int, now: datetime) -> None:
        """Ask for a poll now: the engine holding the source's lease notices it at its next
        check (``Engine`` looks every second or so while it waits between polls)."""
        await self.session.execute(
            update(Source)
            .where(Source.id == source_id)
            .values(poll_requested_at=now)
            .execution_options(synchronize_session=False)
        )

    async def clear_poll_request(self, source_id: int) -> None:
        """A poll is starting: it answers every request made before it. A request made
        while it runs stays (this poll may have read the source before the change that
        prompted it) and brings another poll."""
        await self.session.execute(
            update(Source)
            .where(Source.id == source_id, Source.poll_requested_at.is_not(None))
            .values(poll_requested_at=None)
            .execution_options(synchronize_session=False)
        )

    async def poll_requested(self, source_id: int, owner: str, now: datetime) -> bool:
        """Whether ``owner`` should poll the source now: a poll was asked for, the source
        is not paused, and the lease is ``owner``'s or free (another engine's live lease
        means that engine polls). One primary-key read: cheap enough to ask every second."""
        found = await self.session.scalar(
            select(Source.id).where(
                Source.id == source_id,
                Source.poll_requested_at.is_not(None),
                Source.paused.is_(False),
                or_(
                    Source.lease_owner.is_(None),
                    Source.lease_owner == owner,
                    Source.lease_expires_at <= now,
                ),
            )
        )
        return found is not None

    async def record_poll(self, source_id: int, now: datetime, *, error: str | None = None) -> None:
        """Remember a poll's outcome: success resets the failure streak."""
        values: dict[str, Any] = {"last_poll_at": now}
        if error is None:
            values |= {"last_success_at": now, "last_error": None, "consecutive_failures": 0}
        else:
            values |= {
                "last_error": error,
                "consecutive_failures": Source.consecutive_failures + 1,
            }
        await self.session.execute(update(Source).where(Source.id == source_id).values(**values))

    async def acquire_poll_lease(
        self, source_id: int, owner: str, now: datetime, ttl: timedelta
    ) -> bool:
        """Take (or extend) the right to poll a source. One worker at a time polls it;
        a lease left by a dead worker expires and is taken over."""
        result = await self.session.execute(
            update(Source)
            .where(
                Source.id == source_id,
                or_(
                    Source.lease_owner.is_(None),
                    Source.lease_owner == owner,
                    Source.lease_expires_at <= now,
                ),
            )
            .values(lease_owner=owner, lease_expires_at=now + ttl)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def held_by(self, owner: str, now: datetime) -> int:
        """How many sources ``owner`` holds an unexpired poll lease on."""
        count = await self.session.scalar(
            select(func.count())
            .select_from(Source)
            .where(Source.lease_owner == owner, Source.lease_expires_at > now)
        )
        return int(count or 0)

    async def heartbeat(self, owner: str, now: datetime, ttl: timedelta) -> None:
        """``owner`` polls sources and is alive until ``now + ttl``."""
        statement = self.insert(PollWorker).values(
            owner=owner, heartbeat_at=now, expires_at=now + ttl
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["owner"],
                set_={"heartbeat_at": now, "expires_at": now + ttl},
            )
        )

    async def live_workers(self, now: datetime) -> int:
        """How many polling engines are alive (a dead one's heartbeat expires; expired
        rows are swept at the same time)."""
        await self.session.execute(delete(PollWorker).where(PollWorker.expires_at <= now))
        count = await self.session.scalar(select(func.count()).select_from(PollWorker))
        return int(count or 0)

    async def forget_worker(self, owner: str) -> None:
        """``owner`` stops polling (a clean shutdown): its share goes to the others at once."""
        await self.session.execute(delete(PollWorker).where(PollWorker.owner == owner))

    async def release_poll_lease(self, source_id: int, owner: str) -> None:
        await self.session.execute(
            update(Source)
            .where(Source.id == source_id, Source.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )

    async def get_checkpoint(self, source_id: int, stream: str = "") -> dict[str, Any] | None:
        return await self.session.scalar(
            select(PollCheckpoint.cursor).where(
                PollCheckpoint.source_id == source_id, PollCheckpoint.stream == stream
            )
        )

    async def save_checkpoint(
        self, source_id: int, cursor: dict[str, Any], now: datetime, stream: str = ""
    ) -> None:
        """Store a stream's cursor. Call it in the transaction that stores the records the
        cursor moves past, so that both land or neither does."""
        statement = self.insert(PollCheckpoint).values(
            source_id=source_id, stream=stream, cursor=cursor, updated_at=now
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["source_id", "stream"],
                set_={"cursor": statement.excluded.cursor, "updated_at": now},
            )
        )


class SourceMessageRepository(Repository):
    """Messages of queue dialects (DVCLT), stored before they are acknowledged."""

    async def save(
        self, source_id: int, messages: Sequence[tuple[str, str, dict[str, Any]]], now: datetime
    ) -> None:
        """Keep each ``(message id, MaHoSo, raw)`` once; a redelivered message is a no-op."""
        if not messages:
            return
        statement = self.insert(SourceMessage)
        await self.session.execute(
            statement.on_conflict_do_nothing(index_elements=["source_id", "message_id"]),
            [
                {
                    "source_id": source_id,
                    "message_id": message_id,
                    "ma_ho_so": ma_ho_so,
                    "raw": raw,
                    "received_at": now,
                }
                for message_id, ma_ho_so, raw in messages
            ],
        )

    async def for_dossiers(
        self, source_id: int, codes: Iterable[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Every stored message of these dossiers, in arrival order."""
        rows = await self.session.execute(
            select(SourceMessage.ma_ho_so, SourceMessage.raw)
            .where(SourceMessage.source_id == source_id, self.one_of(SourceMessage.ma_ho_so, codes))
            .order_by(SourceMessage.id)
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for code, raw in rows.all():
            out.setdefault(code, []).append(raw)
        return out

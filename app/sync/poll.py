"""Poll stage driver: connector pages → normalise → store (+ quarantine), one transaction
per page together with the page's cursor; queue messages acknowledged after the commit.

Also re-evaluates a source's quarantine when its effective status map changes, and keeps
the source's health (last poll, last success, failure streak) for back-off and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import SourceSettings
from app.db import transaction
from app.domain.agency import unit_of
from app.domain.progress import ProgressRecord
from app.logs import get_logger
from app.repositories.catalogue import CatalogueRepository
from app.repositories.dossiers import IncomingDossier, StoreOutcome
from app.repositories.quarantine import QuarantineItem, QuarantineRepository
from app.repositories.sources import SourceMessageRepository, SourceRepository
from app.sync.connectors import (
    Connector,
    Page,
    SourceClient,
    SourceRecord,
    SourceUnavailable,
    http_client,
    make_connector,
    read_ahead,
)
from app.sync.normalise import dvclt, igate, opencps
from app.sync.normalise.common import Catalogue, Context, Normalised, Rejection, StatusMap
from app.sync.observe import NullObserver, Observer
from app.sync.store import ProgressIn, store

log = get_logger("dossier_sync.poll")

CURSOR_STREAM = ""
MAPPING_STREAM = "status_map"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class PollReport:
    source: str
    pages: int = 0
    records: int = 0
    changed: int = 0  # dossiers created or updated
    unchanged: int = 0
    progress_added: int = 0
    quarantined: int = 0
    resolved: int = 0
    paused: bool = False
    error: str | None = None
    changed_codes: list[str] = field(default_factory=list)

    def add(self, other: IngestReport) -> None:
        self.records += other.records
        self.changed += other.changed
        self.unchanged += other.unchanged
        self.progress_added += other.progress_added
        self.quarantined += other.quarantined
        self.resolved += other.resolved
        self.changed_codes += other.changed_codes


@dataclass(slots=True)
class IngestReport:
    records: int = 0
    changed: int = 0
    unchanged: int = 0
    progress_added: int = 0
    quarantined: int = 0
    resolved: int = 0
    changed_codes: list[str] = field(default_factory=list)


async def load_context(session: AsyncSession, settings: SourceSettings) -> Context:
    """The source's status map and served agencies, and the portal's catalogue as stored."""
    catalogue = CatalogueRepository(session)
    procedures = {p.code: p.data for p in await catalogue.procedures()}
    agencies = {a.code: a.name for a in await catalogue.agencies()}
    return Context(
        statuses=StatusMap(settings.dialect, settings.status_map),
        catalogue=Catalogue(procedures, agencies),
        agencies=tuple(settings.agencies),
        agency_map=dict(settings.agency_map),
    )


async def normalise_records(
    session: AsyncSession,
    source_id: int,
    dialect: str,
    records: Sequence[SourceRecord],
    *,
    context: Context,
    now: datetime,
) -> list[Normalised]:
    """Records of one page, normalised. Queue messages are stored first and each touched
    dossier is folded again from all its messages."""
    if dialect == "opencps":
        return [opencps.normalise(record.raw, context) for record in records]
    if dialect == "igate":
        return [igate.normalise(record.raw, context) for record in records]
    messages = SourceMessageRepository(session)
    without_code: list[Normalised] = []
    keep: list[tuple[str, str, dict[str, Any]]] = []
    for record in records:
        code = record.raw.get("item", {}).get("maHoSo") or record.raw.get("detail", {}).get(
            "maHoSo"
        )
        if isinstance(code, str) and code:
            keep.append((record.record_id, code, record.raw))
        else:
            reason = "maHoSo: bắt buộc"
            rejection = Rejection(
                record.key,
                "progress",
                record.raw,
                "invalid",
                reason,
                [{"path": "maHoSo", "code": "required", "message": "bắt buộc"}],
                None,
            )
            without_code.append(
                Normalised(record.key, record.record_id, None, None, rejections=(rejection,))
            )
    await messages.save(source_id, keep, now)
    return without_code + await refold(session, source_id, {code for _, code, _ in keep}, context)


async def refold(
    session: AsyncSession, source_id: int, codes: set[str], context: Context
) -> list[Normalised]:
    """DVCLT dossiers normalised from every message stored for them."""
    stored = await SourceMessageRepository(session).for_dossiers(source_id, sorted(codes))
    return [dvclt.normalise(code, messages, context) for code, messages in stored.items()]


async def ingest(
    session: AsyncSession,
    source_id: int,
    normalised: Sequence[Normalised],
    now: datetime,
) -> IngestReport:
    """Store what is valid (new versions and outbox entries), quarantine what is not,
    and close quarantine entries whose records are now valid. Never commits."""
    report = IngestReport(records=len(normalised))
    dossiers = [
        IncomingDossier(
            n.dossier,
            read_at=now,
            source_id=source_id,
            source_record_id=n.record_id,
            source_modified_at=n.modified_at,
        )
        for n in normalised
        if n.dossier is not None
    ]
    progress = [ProgressIn(record, now) for n in normalised for record in n.progress]
    stored = await store(session, dossiers, progress, now)
    for item in stored.dossiers:
        if item.outcome is StoreOutcome.UNCHANGED:
            report.unchanged += 1
        else:
            report.changed += 1
            report.changed_codes.append(item.ma_ho_so)
    report.progress_added = sum(stored.progress_added.values())
    quarantine = QuarantineRepository(session)
    for orphan in stored.orphan_progress:
        # Only reachable when a step's dossier is not stored yet (a queue message for a
        # dossier whose earlier messages were refused): kept, never dropped.
        await quarantine.put(_orphan(source_id, orphan.record), now)
        report.quarantined += 1
    for n in normalised:
        for rejection in n.rejections:
            await quarantine.put(_item(source_id, rejection), now)
            report.quarantined += 1
    valid = [key for n in normalised for key in n.valid_keys]
    report.resolved = await quarantine.resolve(source_id, valid, now)
    return report


def _item(source_id: int, rejection: Rejection) -> QuarantineItem:
    return QuarantineItem(
        source_id=source_id,
        record_key=rejection.key,
        kind=rejection.kind,
        raw=rejection.raw,
        reason_code=rejection.reason_code,
        reason=rejection.reason,
        errors=rejection.errors,
        ma_ho_so=rejection.ma_ho_so,
        unit=rejection.unit,
        agency=rejection.agency,
    )


def _orphan(source_id: int, record: ProgressRecord) -> QuarantineItem:
    return QuarantineItem(
        source_id=source_id,
        record_key=f"orphan:{record.MaHoSo}:{record.identity_hash()[:16]}",
        kind="progress",
        raw={"MaHoSo": record.MaHoSo, "record": record.to_portal()},
        reason_code="dossier_not_stored",
        reason="MaHoSo: hồ sơ chưa được lưu (đang cách ly hoặc chưa nhận)",
        errors=[{"path": "MaHoSo", "code": "dossier_not_stored", "message": "chưa lưu"}],
        ma_ho_so=record.MaHoSo,
        unit=unit_of(record.agency),
        agency=record.agency,
    )


async def reevaluate_quarantine(
    session: AsyncSession, source_id: int, dialect: str, context: Context, now: datetime
) -> IngestReport:
    """Run every open quarantine entry of the source through normalisation again (after
    the status map changed): what is valid now is stored and its entry resolved."""
    entries = await QuarantineRepository(session).list_open(source_id=source_id, limit=1_000_000)
    normalised: list[Normalised] = []
    dvclt_codes: set[str] = set()
    for entry in entries:
        if dialect == "dvclt":
            if entry.ma_ho_so:
                dvclt_codes.add(entry.ma_ho_so)
            continue
        if entry.kind == "dossier":
            module = opencps if dialect == "opencps" else igate
            normalised.append(module.normalise(entry.raw, context))
        elif entry.kind == "progress" and not entry.record_key.startswith("orphan:"):
            step = (opencps if dialect == "opencps" else igate).normalise_step(entry.raw, context)
            if isinstance(step, ProgressRecord):
                normalised.append(
                    Normalised(
                        entry.record_key,
                        entry.record_key,
                        None,
                        None,
                        progress=(step,),
                        valid_keys=(entry.record_key,),
                    )
                )
    if dvclt_codes:
        normalised += await refold(session, source_id, dvclt_codes, context)
    return await ingest(session, source_id, normalised, now)


async def request_reevaluation(session: AsyncSession, source_id: int, now: datetime) -> None:
    """Have the next poll of the source run its open quarantine through normalisation
    again, as after a status-map change (the stored fingerprint no longer matches). It
    runs in that poll, under the source's lease, so it cannot race the poller's own
    writes of the same records; and a quarantined raw record is the latest the source
    sent (a newer valid one would have resolved the entry), so nothing older is stored
    over something newer. Never commits."""
    await SourceRepository(session).save_checkpoint(
        source_id,
        {"fingerprint": None, "reevaluation_requested_at": now.isoformat()},
        now,
        MAPPING_STREAM,
    )


class Poller:
    """Polls one source. Holds its HTTP client (and so its tokens) between polls."""

    def __init__(
        self,
        settings: SourceSettings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        http: SourceClient | None = None,
        clock: Callable[[], datetime] = utcnow,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.http = http or http_client(settings)
        self.connector: Connector = make_connector(settings, self.http)
        self.clock = clock
        self.observer: Observer = observer or NullObserver()
        self.source_id: int | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    async def poll_once(self) -> PollReport:
        """One poll: everything the source changed since the last cursor, page by page."""
        report = PollReport(self.settings.name)
        async with transaction(self.sessions) as session:
            sources = SourceRepository(session)
            source = await sources.ensure(self.settings.name, self.settings.dialect, self.clock())
            self.source_id = source.id
            if source.paused:
                report.paused = True
                return report
            await sources.clear_poll_request(source.id)  # this poll answers it
            checkpoint = await sources.get_checkpoint(source.id, CURSOR_STREAM)
            context = await load_context(session, self.settings)
            await self._check_mapping(session, source.id, context, report)
        try:
            async with self._pages(checkpoint) as pages:
                await self._store_pages(pages, source.id, context, report)
        except SourceUnavailable as error:
            report.error = str(error)
        async with transaction(self.sessions) as session:
            await SourceRepository(session).record_poll(source.id, self.clock(), error=report.error)
        self.observer.source_poll(
            self.settings.name, "error" if report.error else "ok", report.records
        )
        log.info(
            "poll",
            source=self.settings.name,
            pages=report.pages,
            records=report.records,
            changed=report.changed,
            quarantined=report.quarantined,
            error=report.error,
        )
        return report

    def _pages(
        self, checkpoint: dict[str, Any] | None
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[Page]]:
        pages = self.connector.pages(checkpoint)
        if self.connector.reads_ahead:
            return read_ahead(pages)
        return contextlib.nullcontext(pages)

    async def _store_pages(
        self, pages: AsyncIterator[Page], source_id: int, context: Context, report: PollReport
    ) -> None:
        async for page in pages:
            now = self.clock()
            async with transaction(self.sessions) as session:
                normalised = await normalise_records(
                    session,
                    source_id,
                    self.settings.dialect,
                    page.records,
                    context=context,
                    now=now,
                )
                report.add(await ingest(session, source_id, normalised, now))
                if page.checkpoint is not None:
                    await SourceRepository(session).save_checkpoint(
                        source_id, page.checkpoint, now, CURSOR_STREAM
                    )
            await self.connector.acknowledge(page)
            report.pages += 1

    async def _check_mapping(
        self, session: AsyncSession, source_id: int, context: Context, report: PollReport
    ) -> None:
        sources = SourceRepository(session)
        fingerprint = context.statuses.fingerprint()
        stored = await sources.get_checkpoint(source_id, MAPPING_STREAM)
        if stored is not None and stored.get("fingerprint") == fingerprint:
            return
        if stored is not None:
            reevaluated = await reevaluate_quarantine(
                session, source_id, self.settings.dialect, context, self.clock()
            )
            report.add(reevaluated)
        await sources.save_checkpoint(
            source_id, {"fingerprint": fingerprint}, self.clock(), MAPPING_STREAM
        )


def backoff_delay(settings: SourceSettings, failures: int, cap_s: float = 300.0) -> timedelta:
    """How long to wait before polling a failing source again: doubling with each
    consecutive failure, from the poll interval up to ``cap_s``."""
    seconds = settings.poll_interval_s * (2 ** min(failures, 16))
    return timedelta(seconds=min(cap_s, seconds))


async def poll_forever(poller: Poller, stop: asyncio.Event) -> None:
    """Poll every ``poll_interval_s`` until ``stop`` is set; after failures wait longer
    (doubling, capped), so a source that is down is not hammered."""
    failures = 0
    while not stop.is_set():
        report = await poller.poll_once()
        failures = failures + 1 if report.error else 0
        delay = (
            backoff_delay(poller.settings, failures).total_seconds()
            if failures
            else poller.settings.poll_interval_s
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)

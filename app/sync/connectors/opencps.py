"""OpenCPS v2 connector (source-dialects.md §1).

OpenCPS filters by whole days only and pages by offset, so a poll re-reads the current
day and compares ``modifiedDate`` itself. Offsets are fragile when rows move mid-poll: a
row modified behind the current page jumps to the end and every row after it shifts one
place towards the start, so the next page would begin one row late. Each page is
therefore read with one row of overlap: if that row is not one already processed, rows
shifted, and the reader reads again with a margin before it (doubling, and kept for the
rest of the poll) until it overlaps. Re-read rows are recognised and skipped.

``modifiedDate`` has whole seconds and rows of one second are listed by ``dossierId``,
so a row changed in the very second the reader has just read lands *inside* that
second's group, possibly behind the reader, where no overlap check can see it. The
cursor therefore does not end at the newest row: it keeps a *window*, every row read at
or after ``at`` with the digest it was read in, where ``at`` lies far enough back (the
poll's own duration plus a margin) that a change made during or after the poll is
stamped inside it. The next poll starts reading just before the window (the row there
must be older than it, else rows shifted and it reads further back) and takes every row
of the window that is not in it exactly as read.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from app.config import SourceSettings
from app.domain.dates import VN_TZ
from app.sync.connectors.base import Connector, Page, SourceRecord
from app.sync.connectors.http import FixedHeaders
from app.sync.connectors.watermark import Change, Watermark, row_digest
from app.sync.normalise.opencps import modified_at, record_key

LIST_PATH = "/o/rest/v2/dossiers"


def auth(settings: SourceSettings) -> FixedHeaders:
    return FixedHeaders.basic(
        settings.secret("username"),
        settings.secret("password"),
        groupId=settings.secret("group_id"),
    )


class OpenCPSConnector(Connector):
    dialect = "opencps"

    def pages(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Page]:
        return self._pages(checkpoint or {})

    async def _pages(self, checkpoint: dict[str, Any]) -> AsyncIterator[Page]:
        started = time.monotonic()
        # Rows stamped this recently may have changed again within their second after an
        # earlier poll read them (see _processed): read them again whatever their digest.
        now = datetime.now(UTC)
        unsettled = (now - WINDOW_MARGIN, now + WINDOW_MARGIN)
        window = Watermark.load(checkpoint)  # `at`: the window's start; `ids`: rows in it
        day = _day(window.at)
        size = self.settings.page_size
        # Where the window started in this day's listing: only a hint.
        start = int(checkpoint.get("offset", 0)) if checkpoint.get("day") == day else 0
        margin = 0  # extra rows read before the overlap row, grown while rows shift
        resuming = True  # the first read must overlap a row older than the window
        read: dict[str, Change] = {}  # rows read in this poll, as last read
        positions: dict[int, Change] = {}  # listing position → row, as last read there
        while True:
            # Read from one row (plus the margin) before where the last page ended: that
            # row must be one already processed, else rows shifted and some were skipped.
            first = max(0, start - 1 - margin) if start > 0 else 0
            end = start + size
            params: dict[str, Any] = {
                "start": first,
                "end": end,
                "sort": "modifiedDate",
                "order": "false",
            }
            if day is not None:
                params["fromModifiedDate"] = day
            body = await self.get_json(LIST_PATH, **params)
            rows = [r for r in body.get("data") or [] if isinstance(r, dict)]
            if first > 0 and rows and not self._overlaps(rows[0], window, read, resuming):
                # Keep the wider margin for the rest of the poll: a source that moves
                # rows on every request would otherwise make every read fail again.
                margin = max(size, margin * 2)
                continue
            resuming = False
            fresh = [r for r in rows if not _processed(_change(r), window, read, unsettled)]
            details = await self.gather(fresh, self._details)
            records = [
                SourceRecord(
                    record_key(row.get("dossierId")),
                    str(row.get("dossierId")),
                    {"dossier": row, "files": files, "actions": actions},
                )
                for row, (files, actions) in zip(fresh, details, strict=True)
            ]
            for index, row in enumerate(rows):
                change = _change(row)
                read[change.record_id] = change
                positions[first + index] = change
            start = first + len(rows)
            if records or rows:
                yield Page(records, _cursor(window, read, positions, time.monotonic() - started))
            if len(rows) < end - first:
                return

    @staticmethod
    def _overlaps(
        row: dict[str, Any], window: Watermark, read: dict[str, Change], resuming: bool
    ) -> bool:
        """Whether the row a read starts with proves that nothing was skipped before it:
        a row read earlier in this poll, or (the poll's first read) one older than the
        window, since every change since the last poll is stamped inside it."""
        change = _change(row)
        if resuming:
            return change.at is not None and window.at is not None and change.at < window.at
        return _processed(change, window, read)

    async def _details(self, row: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        dossier_id = row.get("dossierId")
        files = await self.get_json(f"{LIST_PATH}/{dossier_id}/files")
        actions: list[Any] = []
        page = 0
        while True:  # actions page too; a long-lived dossier has many
            body = await self.get_json(
                f"{LIST_PATH}/{dossier_id}/actions", start=page, end=page + 100
            )
            batch = body.get("data") or [] if isinstance(body, dict) else []
            actions += batch
            page += 100
            if len(batch) < 100:
                break
        return (files.get("data") or [] if isinstance(files, dict) else []), actions


def _change(row: dict[str, Any]) -> Change:
    return Change(modified_at(row), str(row.get("dossierId")), row_digest(row))


def _day(at: datetime | None) -> str | None:
    return at.astimezone(VN_TZ).strftime("%d/%m/%Y") if at is not None else None


def _processed(
    change: Change,
    window: Watermark,
    read: dict[str, Change],
    unsettled: tuple[datetime, datetime] | None = None,
) -> bool:
    """Read already: in this poll, or before it (older than the window, or in it exactly
    as read then — unless it is *unsettled*).

    A change that only adds a step (no new status) leaves the listed row as it was when
    it lands in the second the row was last stamped: same ``modifiedDate``, same digest,
    yet new actions. So a row stamped within ``unsettled`` (the last seconds by this
    clock) and known only from an earlier poll is read again; the store finds an
    unchanged record unchanged. Rows of a source whose clock is far from ours (a
    simulated one) are never unsettled."""
    seen = read.get(change.record_id)
    if seen is not None and seen.digest == change.digest:
        return True
    if window.at is None or change.at is None:
        return False
    if change.at < window.at:
        return True
    if unsettled is not None and unsettled[0] <= change.at <= unsettled[1]:
        return False
    return window.ids.get(change.record_id) == change.digest


# A change made while a poll runs is stamped no earlier than the second the source's
# clock showed when the poll began: the newest row read, less the poll's duration. This
# much more covers rounding to whole seconds and the two clocks drifting apart.
WINDOW_MARGIN = timedelta(seconds=2)


def _cursor(
    window: Watermark,
    read: dict[str, Change],
    positions: dict[int, Change],
    elapsed_s: float,
) -> dict[str, Any]:
    """The cursor after the rows read so far: a window reaching back from the newest row
    by the poll's duration and :data:`WINDOW_MARGIN`, with every row read in it."""
    times = [c.at for c in read.values() if c.at is not None]
    if not times:
        return window.dump() | {"day": _day(window.at), "offset": 0}
    newest = max(times)
    at = (newest - timedelta(seconds=elapsed_s) - WINDOW_MARGIN).replace(microsecond=0)
    if window.at is not None:
        at = max(at, window.at)  # everything before the old window was read already
    # Rows of the old window not read again yet are left out: at worst read once more.
    ids = {c.record_id: c.digest for c in read.values() if c.at is not None and c.at >= at}
    day = _day(at)
    inside = [p for p, c in positions.items() if c.at is not None and c.at >= at]
    offset = min(inside) if inside and day == _day(window.at) else 0
    return Watermark(at, ids).dump() | {"day": day, "offset": offset}

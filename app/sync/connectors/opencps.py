"""OpenCPS v2 connector (source-dialects.md §1).

OpenCPS filters by whole days only and pages by offset, so a poll re-reads the current
day and compares ``modifiedDate`` itself (the watermark, with the ids at its exact time
for ties). Offsets are fragile when rows move mid-poll: a row modified behind the
current page jumps to the end and every row after it shifts one place towards the
start, so the next page would begin one row late. Each page is therefore read with one
row of overlap: if that row is not one already processed, rows shifted, and the reader
reads again with a margin before it (doubling, and kept for the rest of the poll) until
it overlaps. Re-read rows are recognised and skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from app.config import SourceSettings
from app.domain.dates import VN_TZ
from app.sync.connectors.base import Connector, Page, SourceRecord
from app.sync.connectors.watermark import Change, Watermark, row_digest
from app.sync.normalise.opencps import modified_at, record_key

LIST_PATH = "/o/rest/v2/dossiers"


def auth(settings: SourceSettings) -> tuple[httpx.BasicAuth, dict[str, str]]:
    return (
        httpx.BasicAuth(settings.secret("username"), settings.secret("password")),
        {"groupId": settings.secret("group_id")},
    )


class OpenCPSConnector(Connector):
    dialect = "opencps"

    def pages(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Page]:
        return self._pages(checkpoint or {})

    async def _pages(self, checkpoint: dict[str, Any]) -> AsyncIterator[Page]:
        mark = Watermark.load(checkpoint)
        day = mark.at.astimezone(VN_TZ).strftime("%d/%m/%Y") if mark.at else None
        size = self.settings.page_size
        # Where the previous poll stopped in this day's listing: only a hint.
        start = int(checkpoint.get("offset", 0)) if checkpoint.get("day") == day else 0
        margin = 0  # extra rows read before the overlap row, grown while rows shift
        done: set[tuple[str, str]] = set()  # rows read in this poll
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
            if first > 0 and rows and not self._processed(rows[0], mark, done):
                # Keep the wider margin for the rest of the poll: a source that moves
                # rows on every request would otherwise make every read fail again.
                margin = max(size, margin * 2)
                continue
            fresh = [r for r in rows if not self._processed(r, mark, done)]
            details = await self.gather(fresh, self._details)
            records = [
                SourceRecord(
                    record_key(row.get("dossierId")),
                    str(row.get("dossierId")),
                    {"dossier": row, "files": files, "actions": actions},
                )
                for row, (files, actions) in zip(fresh, details, strict=True)
            ]
            changes = [_change(r) for r in rows]
            done.update((c.record_id, c.digest) for c in changes)
            mark = mark.advanced(changes)
            start = first + len(rows)
            if records or rows:
                yield Page(records, mark.dump() | {"day": day, "offset": start})
            if len(rows) < end - first:
                return

    @staticmethod
    def _processed(row: dict[str, Any], mark: Watermark, done: set[tuple[str, str]]) -> bool:
        change = _change(row)
        return mark.covers(change) or (change.record_id, change.digest) in done

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

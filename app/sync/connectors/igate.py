"""VNPT iGate connector (source-dialects.md §2).

Keyset paging on ``updated-from`` (inclusive, millisecond precision): every request
starts again at the watermark, so rows that move to a later ``updatedDate`` mid-poll
(shifting the pages behind them) cannot make it skip anything; ties at the watermark are
told apart by id. A page of nothing but already-read ties may hide more of the group
behind it, so it is read again 500 wide: at most 500 rows share an ``updatedDate``, so a
500-row page of read ties means the whole group is read, and reading resumes 1 ms later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from app.config import SourceSettings
from app.domain.dates import VN_TZ
from app.sync.connectors.base import Connector, Page, SourceRecord
from app.sync.connectors.http import TokenLogin
from app.sync.connectors.watermark import Change, Watermark, row_digest
from app.sync.normalise.igate import record_key, updated_at

LOGIN_PATH = "/auth/realms/digo/protocol/openid-connect/token"
SEARCH_PATH = "/pa/dossier/search"
MAX_PAGE = 500
ONE_MS = timedelta(milliseconds=1)


def iso_ms(value: datetime) -> str:
    """``2024-05-13T09:30:00.000+0700``: the form iGate itself writes."""
    local = value.astimezone(VN_TZ)
    return (
        local.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{local.microsecond // 1000:03d}"
        + local.strftime("%z")
    )


def auth(settings: SourceSettings) -> TokenLogin:
    return TokenLogin(
        LOGIN_PATH,
        lambda body: str(body["access_token"]),
        form={
            "grant_type": "client_credentials",
            "client_id": settings.secret("client_id"),
            "client_secret": settings.secret("client_secret"),
        },
    )


class IGateConnector(Connector):
    dialect = "igate"

    def pages(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Page]:
        return self._pages(Watermark.load(checkpoint))

    async def _pages(self, mark: Watermark) -> AsyncIterator[Page]:
        page_size = min(self.settings.page_size, MAX_PAGE)
        size = page_size
        done: set[tuple[str, str]] = set()  # rows read in this poll, whatever their dates
        while True:
            params: dict[str, Any] = {"page": 0, "size": size, "sort": "updatedDate,asc"}
            if mark.at is not None:
                params["updated-from"] = iso_ms(mark.at)
            body = await self.get_json(SEARCH_PATH, **params)
            rows = [r for r in body.get("content") or [] if isinstance(r, dict)]
            changes = [Change(updated_at(r), str(r.get("id")), row_digest(r)) for r in rows]
            fresh = [
                row
                for row, change in zip(rows, changes, strict=True)
                if not mark.covers(change) and (change.record_id, change.digest) not in done
            ]
            if not fresh:
                only_read_ties = (
                    mark.at is not None
                    and len(rows) >= size
                    and all(change.at == mark.at for change in changes)
                )
                if not only_read_ties:
                    return
                if size < MAX_PAGE:
                    # The tie group may be longer than our pages; at most 500 share one
                    # time, so one page of 500 holds all of it.
                    size = MAX_PAGE
                    continue
                mark = mark.past(ONE_MS)  # the whole group (≤ 500) is read
                yield Page([], mark.dump())
                continue
            size = page_size
            histories = await self.gather(fresh, self._history)
            records = [
                SourceRecord(
                    record_key(row.get("id")),
                    str(row.get("id")),
                    {"dossier": row, "history": history},
                )
                for row, history in zip(fresh, histories, strict=True)
            ]
            done.update((c.record_id, c.digest) for c in changes)
            mark = mark.advanced(changes)
            yield Page(records, mark.dump())
            if len(rows) < size:
                return

    async def _history(self, row: dict[str, Any]) -> list[Any]:
        history = await self.get_json(f"/pa/dossier/{row.get('id')}/--history")
        return history if isinstance(history, list) else []

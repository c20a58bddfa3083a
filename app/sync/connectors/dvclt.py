"""DVCLT inter-agency queue connector (source-dialects.md §3).

No cursor: unacknowledged messages are listed oldest first and stay listed until
acknowledged. A page is a batch of messages with their details; the poll stage stores
them (and what they change) and commits, and only then does :meth:`acknowledge` tell the
queue. A crash in between means the messages come again, and storing them again changes
nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from app.config import SourceSettings
from app.sync.connectors.base import Connector, Page, SourceRecord
from app.sync.connectors.http import TokenLogin
from app.sync.normalise.dvclt import message_key

LOGIN_PATH = "/api/auth/token"
QUEUE_PATH = "/api/lienthongdvclt/hosolienthong"
MAX_LIST = 200


def auth(settings: SourceSettings) -> TokenLogin:
    return TokenLogin(
        LOGIN_PATH,
        lambda body: str(body["token"]),
        json_body={
            "userName": settings.secret("username"),
            "password": settings.secret("password"),
        },
    )


class DVCLTConnector(Connector):
    dialect = "dvclt"
    reads_ahead = False  # the queue lists the same messages until they are acknowledged

    def pages(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Page]:
        return self._pages()

    async def _pages(self) -> AsyncIterator[Page]:
        limit = min(self.settings.page_size, MAX_LIST)
        listed: set[str] = set()  # a message not acknowledged (yet) is listed again
        while True:
            body = await self.get_json(f"{QUEUE_PATH}/chua-nhan", limit=limit)
            items = [i for i in body.get("data") or [] if isinstance(i, dict)]
            new = [i for i in items if str(i.get("id")) not in listed]
            if not new:
                return
            details = await self.gather(new, self._detail)
            records = [
                SourceRecord(
                    message_key(item.get("id")),
                    str(item.get("id")),
                    {"item": item, "detail": detail},
                )
                for item, detail in zip(new, details, strict=True)
            ]
            listed.update(str(i.get("id")) for i in new)
            yield Page(records, None, [(i.get("maHoSo"), i.get("id")) for i in new])
            if len(items) < limit:
                return

    async def _detail(self, item: dict[str, Any]) -> dict[str, Any]:
        body = await self.get_json(f"{QUEUE_PATH}/{item.get('id')}")
        data = body.get("data") if isinstance(body, dict) else None
        return data if isinstance(data, dict) else {}

    async def acknowledge(self, page: Page) -> None:
        async def ack(message: tuple[Any, Any]) -> None:
            code, message_id = message
            await self.request(
                "PUT",
                f"{QUEUE_PATH}/da-nhan",
                json_body={"maHoSo": code, "id": message_id, "daNhan": True},
            )

        await self.gather(page.acknowledgements, ack)

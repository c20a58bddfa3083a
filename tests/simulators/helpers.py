"""Clients of the three dialects and of the control API, as a connector would call them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx

from app.domain.dates import VN_TZ

DMY_RE = re.compile(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}$")
ISO_MS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0700$")

DOSSIERS = "/o/rest/v2/dossiers"
TOKEN_IGATE = "/auth/realms/digo/protocol/openid-connect/token"
SEARCH = "/pa/dossier/search"
TOKEN_DVCLT = "/api/auth/token"
QUEUE = "/api/lienthongdvclt/hosolienthong"


def parse_dmy(value: str) -> datetime:
    return datetime.strptime(value, "%d/%m/%Y %H:%M:%S").replace(tzinfo=VN_TZ)


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


class Control:
    """The `/_sim` control API."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def truth(self) -> dict[str, Any]:
        answer = self.http.get("/_sim/truth")
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def by_key(self) -> dict[Any, dict[str, Any]]:
        return {d["key"]: d for d in self.truth()["dossiers"]}

    def mutate(self, count: int, bulk: int = 1) -> list[Any]:
        answer = self.http.post("/_sim/mutate", json={"count": count, "bulk": bulk})
        answer.raise_for_status()
        changed: list[Any] = answer.json()["changed"]
        return changed

    def settings(self, **changes: Any) -> dict[str, Any]:
        answer = self.http.patch("/_sim/settings", json=changes)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.http.get("/_sim/stats").json()
        return result

    def expire_tokens(self) -> int:
        expired: int = self.http.post("/_sim/expire-tokens").json()["expired"]
        return expired


class OpenCps:
    def __init__(self, url: str, username: str = "demo", password: str = "demo") -> None:
        self.http = httpx.Client(
            base_url=url, auth=(username, password), headers={"groupId": "1"}, timeout=30
        )

    def close(self) -> None:
        self.http.close()

    def page(self, **params: Any) -> dict[str, Any]:
        answer = self.http.get(DOSSIERS, params={"sort": "modifiedDate", **params})
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def rows(self, **params: Any) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.page(**params)["data"]
        return data


class IGate:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def token(self, client_id: str = "demo", secret: str = "demo") -> httpx.Response:
        return self.http.post(
            TOKEN_IGATE,
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        )

    def login(self) -> IGate:
        answer = self.token()
        assert answer.status_code == 200, answer.text
        self.http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        return self

    def search(self, **params: Any) -> dict[str, Any]:
        answer = self.http.get(SEARCH, params={"sort": "updatedDate,asc", **params})
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


class Dvclt:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def token(self, user: str = "demo", password: str = "demo") -> httpx.Response:
        return self.http.post(TOKEN_DVCLT, json={"userName": user, "password": password})

    def login(self) -> Dvclt:
        answer = self.token()
        assert answer.status_code == 200, answer.text
        self.http.headers["Authorization"] = f"Bearer {answer.json()['token']}"
        return self

    def pending(self, limit: int = 200) -> list[dict[str, Any]]:
        answer = self.http.get(f"{QUEUE}/chua-nhan", params={"limit": limit})
        assert answer.status_code == 200, answer.text
        data: list[dict[str, Any]] = answer.json()["data"]
        return data

    def detail(self, message_id: int) -> dict[str, Any]:
        answer = self.http.get(f"{QUEUE}/{message_id}")
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["data"]
        return data

    def ack(self, message: dict[str, Any]) -> httpx.Response:
        return self.http.put(
            f"{QUEUE}/da-nhan",
            json={"maHoSo": message["maHoSo"], "id": message["id"], "daNhan": True},
        )


@contextmanager
def closing_all(*clients: OpenCps | IGate | Dvclt | Control) -> Iterator[None]:
    try:
        yield
    finally:
        for client in clients:
            client.close()

"""The journal: every request the mock received, what it answered and which fault applied.

A bounded ring buffer: when full, the oldest entries go and ``dropped`` counts them, so a
report over a long run says how much it could not see. Items carry codes, statuses and
content hashes, never the personal data of the dossier (contract §8).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from app.domain.agency import agency_of_dossier, is_dossier_code
from app.domain.dossier import canonical_json

Outcome = Literal["ok", "partial", "rejected", "http_error", "dropped"]

# Journal digests are keyed per process: equal for a repeat within a run (what the
# conformance report compares), useless for guessing the personal data or password
# behind them from an exported journal.
_DIGEST_KEY = secrets.token_bytes(32)


def journal_digest(value: Any) -> str:
    """A keyed digest of a JSON value (an item as sent, a request without its session)."""
    return hmac.new(_DIGEST_KEY, canonical_json(value), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class JournalItem:
    ma_ho_so: str | None
    error_code: int | None  # None when the request never reached item processing
    status: str | None = None  # TrangThaiHoSo (dossier) / TrangThai (progress) as sent
    content_hash: str | None = None  # of the item as sent
    occurred_at: str | None = None  # ThoiDiemXuLy of a progress record
    stored: bool = False  # whether the portal kept it (False under ack_then_lose)


@dataclass(slots=True)
class JournalEntry:
    id: int
    at: datetime  # when the request arrived (UTC)
    endpoint: Literal["auth", "integration", "share"]
    service: str | None
    unit: str | None  # the dstcode header
    madonvi: str | None
    session: str | None  # fingerprint of the session token used or issued, never the token
    http_status: int | None  # None: no answer (dropped, hung)
    error_code: int | None
    message: str | None
    latency_ms: float
    outcome: Outcome
    is_updating: str | None = None
    request_hash: str | None = None  # body without the session: equal for a repeat
    items: list[JournalItem] = field(default_factory=list)
    fault: dict[str, Any] | None = None
    retry_after_s: float | None = None
    rate_limited: bool = False  # a 429 from the token bucket, not from a fault

    @property
    def item_count(self) -> int:
        return len(self.items)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        out["item_count"] = self.item_count
        return out


def outcome_of(http_status: int | None, error_code: int | None) -> Outcome:
    if http_status is None:
        return "dropped"
    if error_code == 0 and http_status == 200:
        return "ok"
    if error_code == 1:
        return "partial"
    if error_code is None or http_status in (413, 429) or http_status >= 500:
        return "http_error"
    return "rejected"


@dataclass(frozen=True, slots=True)
class JournalFilter:
    unit: str | None = None  # the calling unit (dstcode, else madonvi)
    agency: str | None = None  # a unit or agency: the caller, or owning any item
    ma_ho_so: str | None = None
    outcome: Outcome | None = None
    service: str | None = None
    faulted: bool | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, entry: JournalEntry) -> bool:
        return (
            (self.unit is None or (entry.unit or entry.madonvi) == self.unit)
            and (self.agency is None or self._concerns_agency(entry, self.agency))
            and (self.ma_ho_so is None or any(i.ma_ho_so == self.ma_ho_so for i in entry.items))
            and (self.outcome is None or entry.outcome == self.outcome)
            and (self.service is None or entry.service == self.service)
            and (self.faulted is None or (entry.fault is not None) == self.faulted)
            and (self.since is None or entry.at >= self.since)
            and (self.until is None or entry.at < self.until)
        )

    @staticmethod
    def _concerns_agency(entry: JournalEntry, agency: str) -> bool:
        if agency in (entry.unit, entry.madonvi):
            return True
        return any(
            item.ma_ho_so is not None
            and is_dossier_code(item.ma_ho_so)
            and agency_of_dossier(item.ma_ho_so) == agency
            for item in entry.items
        )


class Journal:
    def __init__(self, capacity: int = 10_000) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)
        self.dropped = 0
        self._next_id = 1

    @property
    def capacity(self) -> int:
        return self._entries.maxlen or 0

    def resize(self, capacity: int) -> None:
        entries = list(self._entries)
        self.dropped += max(0, len(entries) - capacity)
        self._entries = deque(entries[-capacity:], maxlen=capacity)

    def next_id(self) -> int:
        entry_id = self._next_id
        self._next_id += 1
        return entry_id

    def append(self, entry: JournalEntry) -> None:
        if len(self._entries) == self._entries.maxlen:
            self.dropped += 1
        self._entries.append(entry)

    def clear(self) -> None:
        self._entries.clear()
        self.dropped = 0

    def select(self, where: JournalFilter) -> Iterator[JournalEntry]:
        return (entry for entry in self._entries if where.matches(entry))

    def __len__(self) -> int:
        return len(self._entries)


def to_ndjson(entries: Iterator[JournalEntry]) -> Iterator[str]:
    for entry in entries:
        yield json.dumps(entry.to_json(), ensure_ascii=False) + "\n"

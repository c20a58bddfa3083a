"""A change-feed position: the newest modification time processed, and which records at
exactly that time were processed — in which form.

Sources stamp changes with a time; many records can share one (bulk actions), so a time
alone cannot say where to resume: resuming *after* it loses the unread records of a tie,
resuming *at* it repeats the read ones. The ids at the watermark settle it. A record can
also change twice within one tick of the source's clock (a second for OpenCPS) and keep
its time; so each id at the watermark is kept with a digest of the row as read, and a
row at the watermark whose content differs is read again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


def row_digest(row: Mapping[str, Any]) -> str:
    """A short fingerprint of a listed row, to notice a change that kept its timestamp."""
    encoded = json.dumps(row, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Change:
    at: datetime | None
    record_id: str
    digest: str


@dataclass(frozen=True, slots=True)
class Watermark:
    at: datetime | None = None
    ids: Mapping[str, str] = field(default_factory=dict)  # record id → row digest

    @classmethod
    def load(cls, checkpoint: dict[str, Any] | None) -> Watermark:
        if not checkpoint or not checkpoint.get("at"):
            return cls()
        ids = checkpoint.get("ids") or {}
        if isinstance(ids, list):  # an older cursor without digests: re-read those rows
            ids = dict.fromkeys(ids, "")
        return cls(datetime.fromisoformat(checkpoint["at"]), dict(ids))

    def dump(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat() if self.at else None,
            "ids": dict(sorted(self.ids.items())),
        }

    def covers(self, change: Change) -> bool:
        """Whether this change (record, time, content) was already processed."""
        if self.at is None or change.at is None:
            return False
        if change.at < self.at:
            return True
        return change.at == self.at and self.ids.get(change.record_id) == change.digest

    def advanced(self, changes: Iterable[Change]) -> Watermark:
        """The watermark after processing ``changes`` (all changes up to it included)."""
        at, ids = self.at, dict(self.ids)
        for change in changes:
            if change.at is None:
                continue
            if at is None or change.at > at:
                at, ids = change.at, {change.record_id: change.digest}
            elif change.at == at:
                ids[change.record_id] = change.digest
        return Watermark(at, ids)

    def past(self, step: timedelta) -> Watermark:
        """Resume just after the watermark (its whole tie group has been read)."""
        assert self.at is not None  # noqa: S101 - only called with a watermark
        return Watermark(self.at + step, {})

"""The conformance report: did a client behave as the contract asks (§2, §5, §6, §7)?

Computed from the journal for one unit over a time window. Each criterion passes or
fails and names the journal entries that show a failure, so an integrator can look them
up (``/_mock/journal``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from app.domain.codes import ErrorCode
from app.domain.status import DossierStatus, is_transition_allowed
from app.mockportal.journal import JournalEntry

# Whole-request answers that resending unchanged cannot fix.
_FINAL_REQUEST_CODES = frozenset(
    {
        ErrorCode.BAD_CREDENTIALS,
        ErrorCode.VALIDATION_FAILED,
        ErrorCode.BATCH_TOO_LARGE,
        ErrorCode.UNKNOWN_SERVICE,
        ErrorCode.UNIT_MISMATCH,
    }
)
# Item answers that resending unchanged cannot fix.
_FINAL_ITEM_CODES = frozenset(
    {ErrorCode.VALIDATION_FAILED, ErrorCode.TRANSITION_REFUSED, ErrorCode.UNIT_MISMATCH}
)
MIN_RETRY_GAP_S = 0.05
"""A retry sooner than this after a transient failure is a hot loop, not a back-off."""
BACKOFF_GROWTH = 1.5
"""Over a run of three or more retries the last wait must be at least this many times the
first: exponential back-off grows 4× over three retries, a fixed wait (plus timing noise)
does not grow at all."""
RETRY_AFTER_TOLERANCE_S = 0.05
IN_FLIGHT_TOLERANCE_S = 0.1
"""A request that arrives this soon after a -2 or a 429 was answered may have left the
client before the client read that answer (a client with several calls in flight at
once, on a busy event loop, or several processes sharing the unit): it is not counted as
reusing the session or as ignoring the Retry-After."""
MAX_EVIDENCE = 20


@dataclass(slots=True)
class Criterion:
    name: str
    description: str
    violations: list[tuple[list[int], str]] = field(default_factory=list)

    def flag(self, entries: Sequence[JournalEntry], detail: str) -> None:
        self.violations.append(([e.id for e in entries], detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": not self.violations,
            "description": self.description,
            "violations": len(self.violations),
            "evidence": [
                {"entries": ids, "detail": detail} for ids, detail in self.violations[:MAX_EVIDENCE]
            ],
        }


def _transient(entry: JournalEntry) -> bool:
    """Nothing is known to be stored: the client should retry, after a pause."""
    return (
        entry.http_status is None
        or entry.http_status in (429, 502, 503, 504)
        or entry.error_code == ErrorCode.INTERNAL_ERROR
    )


def _repeats(entries: Sequence[JournalEntry]) -> dict[tuple[str | None, str], list[JournalEntry]]:
    """Requests grouped by content (service + body without session), in arrival order."""
    groups: dict[tuple[str | None, str], list[JournalEntry]] = {}
    for entry in entries:
        if entry.request_hash is not None:
            groups.setdefault((entry.service, entry.request_hash), []).append(entry)
    return groups


def _retries_only_retryable(entries: Sequence[JournalEntry], c: Criterion) -> None:
    for group in _repeats(entries).values():
        for earlier, later in pairwise(group):
            if earlier.http_status is not None and earlier.error_code in _FINAL_REQUEST_CODES:
                c.flag(
                    [earlier, later],
                    f"{later.service} repeated unchanged after error_code {earlier.error_code}",
                )


def _backs_off(entries: Sequence[JournalEntry], c: Criterion) -> None:
    for group in _repeats(entries).values():
        chain: list[float] = []
        for earlier, later in pairwise(group):
            if not _transient(earlier):
                chain = []
                continue
            gap = (later.at - earlier.at).total_seconds()
            if earlier.retry_after_s is not None:
                # The portal named the wait; honours_retry_after judges it.
                chain = []
                continue
            if gap < MIN_RETRY_GAP_S:
                c.flag(
                    [earlier, later],
                    f"{later.service} retried after {gap * 1000:.0f} ms, no back-off",
                )
            chain.append(gap)
            if len(chain) >= 3 and chain[-1] < BACKOFF_GROWTH * chain[0]:
                c.flag(
                    [later],
                    f"{len(chain)} retries of one request without growing waits "
                    f"({chain[0]:.2f}s … {chain[-1]:.2f}s)",
                )
                chain = []


def _answered(entry: JournalEntry) -> datetime:
    """When the client may have read ``entry``'s answer: a request arriving before then
    may have left the client before it knew."""
    return entry.at + timedelta(milliseconds=entry.latency_ms or 0.0, seconds=IN_FLIGHT_TOLERANCE_S)


def _honours_retry_after(entries: Sequence[JournalEntry], c: Criterion) -> None:
    for index, entry in enumerate(entries):
        if entry.http_status != 429 or entry.retry_after_s is None:
            continue
        answered = _answered(entry)
        not_before = entry.at + timedelta(seconds=entry.retry_after_s - RETRY_AFTER_TOLERANCE_S)
        early = [e for e in entries[index + 1 :] if answered < e.at < not_before]
        if early:
            c.flag(
                [entry, *early],
                f"{len(early)} request(s) within Retry-After {entry.retry_after_s:g}s",
            )


def _reauthenticates(entries: Sequence[JournalEntry], c: Criterion) -> None:
    for index, entry in enumerate(entries):
        if entry.error_code != ErrorCode.SESSION_EXPIRED or entry.session is None:
            continue
        answered = _answered(entry)
        reused = [
            e
            for e in entries[index + 1 :]
            if e.endpoint != "auth" and e.session == entry.session and e.at > answered
        ]
        if reused:
            c.flag([entry, *reused], "kept using a session the portal had answered -2 for")


def _no_regressions(entries: Sequence[JournalEntry], c: Criterion) -> None:
    for entry in entries:
        for item in entry.items:
            if item.error_code == ErrorCode.TRANSITION_REFUSED:
                c.flag([entry], f"{item.ma_ho_so}: status {item.status} refused (-6)")


def _no_unchanged_resend(entries: Sequence[JournalEntry], c: Criterion) -> None:
    refused: dict[tuple[str | None, str, str], tuple[JournalEntry, int]] = {}
    for entry in entries:
        for item in entry.items:
            if item.ma_ho_so is None or item.content_hash is None:
                continue
            key = (entry.service, item.ma_ho_so, item.content_hash)
            if key in refused:
                first, code = refused[key]
                c.flag(
                    [first, entry],
                    f"{item.ma_ho_so} resent unchanged after error_code {code}",
                )
            if item.error_code in _FINAL_ITEM_CODES:
                refused.setdefault(key, (entry, item.error_code))


def _keeps_order(entries: Sequence[JournalEntry], c: Criterion) -> None:
    last_status: dict[str, tuple[DossierStatus, JournalEntry]] = {}
    acknowledged: set[str] = set()  # dossiers the portal answered success for
    for entry in entries:
        for item in entry.items:
            if item.ma_ho_so is None:
                continue
            if entry.service == "DongBoHoSoMC" and item.error_code == ErrorCode.SUCCESS:
                acknowledged.add(item.ma_ho_so)
            if (
                entry.service == "CapNhatTienDoHoSoMC"
                and item.error_code == ErrorCode.NOT_FOUND
                and item.ma_ho_so not in acknowledged  # else the portal lost it, not the client
            ):
                c.flag([entry], f"{item.ma_ho_so}: progress sent before its dossier (-4)")
            if entry.service != "DongBoHoSoMC" or item.status not in _STATUSES:
                continue
            status = DossierStatus(item.status)
            previous = last_status.get(item.ma_ho_so)
            if previous is not None and not is_transition_allowed(previous[0], status):
                c.flag(
                    [previous[1], entry],
                    f"{item.ma_ho_so}: sent status {status.value} after {previous[0].value}",
                )
            last_status[item.ma_ho_so] = (status, entry)


_STATUSES = frozenset(s.value for s in DossierStatus)


def _under_rate_limit(entries: Sequence[JournalEntry], c: Criterion) -> None:
    for entry in entries:
        if entry.rate_limited:
            c.flag([entry], "answered 429 by the rate limiter")


CRITERIA: Sequence[tuple[str, str, Callable[[Sequence[JournalEntry], Criterion], None]]] = (
    (
        "retries_only_retryable",
        "A request answered with -1, -5, -8, -9 or -10 is never repeated unchanged.",
        _retries_only_retryable,
    ),
    (
        "backs_off",
        f"After a transient failure (429, 502/503/504, -99, no answer) the same request is "
        f"retried no sooner than {MIN_RETRY_GAP_S * 1000:.0f} ms, and waits grow over a run "
        "of retries.",
        _backs_off,
    ),
    (
        "honours_retry_after",
        f"After a 429, nothing is sent for the unit before the Retry-After time (requests "
        f"arriving within {IN_FLIGHT_TOLERANCE_S * 1000:.0f} ms of the 429's answer may "
        "have been in flight and are not counted).",
        _honours_retry_after,
    ),
    (
        "reauthenticates_on_session_expiry",
        "After -2 the client logs in again instead of reusing the session.",
        _reauthenticates,
    ),
    (
        "no_regressions_pushed",
        "No status update is refused as a regression (-6).",
        _no_regressions,
    ),
    (
        "no_unchanged_resend_of_refused_items",
        "An item refused with -5, -6 or -10 is never sent again unchanged.",
        _no_unchanged_resend,
    ),
    (
        "keeps_per_dossier_order",
        "Each dossier's statuses are sent in an order the transition table allows, and its "
        "progress only once the dossier is at the portal.",
        _keeps_order,
    ),
    (
        "stays_under_rate_limit",
        "The client never exceeds the unit's token bucket.",
        _under_rate_limit,
    ),
)


def conformance_report(
    unit: str,
    entries: Sequence[JournalEntry],
    *,
    since: datetime | None,
    until: datetime | None,
    journal_dropped: int,
) -> dict[str, Any]:
    """The report for ``unit`` over the journal ``entries`` (already filtered to it)."""
    ordered = sorted(entries, key=lambda e: (e.at, e.id))
    results = []
    for name, description, check in CRITERIA:
        criterion = Criterion(name, description)
        check(ordered, criterion)
        results.append(criterion.to_json())
    return {
        "unit": unit,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "entries_examined": len(ordered),
        "journal_dropped": journal_dropped,
        "passed": all(r["passed"] for r in results),
        "criteria": results,
    }

"""Ingest stage (push mode): records sent to the API go to the store like polled ones.

Provincial systems that cannot be polled send portal-format dossiers
(``POST /api/v1/dossiers``) and progress records (``POST /api/v1/progress``), at most
:data:`MAX_ITEMS` a call. Each item is judged and answered on its own:

* its ``MaHoSo`` names an agency the API key does not cover: ``rejected``
  (``out_of_reach``). This is decided from the code alone, before anything is looked
  up, so the answer is the same whether that dossier exists or not;
* it breaks the contract's rules — the same :func:`parse_dossier` /
  :func:`parse_progress` a normalised polled record goes through, with the portal's
  procedure catalogue once it has been fetched: ``rejected`` with every issue by its path
  in the request body (``dossiers[3].NgayHenTra``);
* a progress record whose dossier is not stored: ``rejected`` (``dossier_not_stored``).
  It is not held for later: the caller learns at once that it must send the dossier
  first and then the step again, and a held step would have no owner to tell when it
  went through;
* otherwise it is stored by the store stage exactly as a polled record is (new version,
  content hash and outbox entry in the caller's transaction, so the pusher syncs it)
  and answered ``accepted`` — or ``unchanged`` when its content is what is already
  stored (for a step: the same step, contract §3.2), so a resend is harmless.

Items of one batch are taken in order: a later item for the same dossier is its newer
state. Each is answered as if the items had been sent one after another; the store
writes only the last (the pusher never sends superseded states anyway).

Every rejected item is quarantined, with its reason and its raw form, under the push
source of the caller's unit (``push:<unit>``, dialect ``push``, created on first use),
and is never pushed; the same record sent again valid resolves the entry. The batch is
one transaction: every item is stored or quarantined, or — a database failure — none.
Nothing here commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.domain.agency import agency_of_dossier, is_dossier_code, unit_of
from app.domain.dossier import Dossier, canonical_json, parse_dossier
from app.domain.progress import ProgressRecord, parse_progress
from app.domain.storable import nul_issues, storable
from app.domain.validation import FieldIssue, RecordInvalid
from app.repositories.catalogue import CatalogueRepository
from app.repositories.dossiers import (
    DossierRepository,
    IncomingDossier,
    IncomingProgress,
    StoreOutcome,
)
from app.repositories.outbox import OutboxRepository
from app.repositories.quarantine import QuarantineItem, QuarantineRepository
from app.repositories.sources import SourceRepository
from app.sync.store import store

MAX_ITEMS = 500  # per call (service-interface.md)
PUSH_DIALECT = "push"

# Reason codes of quarantine entries (and of the items' first error).
OUT_OF_REACH = "out_of_reach"
DOSSIER_NOT_STORED = "dossier_not_stored"
UNKNOWN_PROCEDURE = "unknown_procedure"
INVALID = "invalid"
_OWN_REASONS = frozenset({OUT_OF_REACH, DOSSIER_NOT_STORED, UNKNOWN_PROCEDURE})

OUT_OF_REACH_MESSAGE = "ngoài phạm vi đơn vị/cơ quan của khóa API"
NOT_STORED_MESSAGE = "hồ sơ chưa được lưu: gửi hồ sơ trước (POST /api/v1/dossiers), rồi gửi lại"


class ItemStatus(StrEnum):
    ACCEPTED = "accepted"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ItemError:
    field: str  # path in the request body: "dossiers[3].NgayHenTra"
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    status: ItemStatus
    ma_ho_so: str | None  # None when the item has no well-formed MaHoSo
    version: int | None = None  # the dossier version the item is stored as
    errors: tuple[ItemError, ...] = ()


@dataclass(slots=True)
class IngestResult:
    source: str
    items: list[ItemResult] = field(default_factory=list)

    def count(self, status: ItemStatus) -> int:
        return sum(1 for item in self.items if item.status is status)

    @property
    def changed(self) -> bool:
        """Whether anything new waits for the pusher."""
        return any(item.status is ItemStatus.ACCEPTED for item in self.items)

    def reasons(self) -> dict[str, int]:
        """Rejected items per reason code (for the log line of the call)."""
        out: dict[str, int] = {}
        for item in self.items:
            if item.errors:
                out[item.errors[0].code] = out.get(item.errors[0].code, 0) + 1
        return out


class SourcePaused(Exception):  # noqa: N818 - the state it reports, like RecordInvalid
    """An operator paused the caller's push source: nothing is taken until resumed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"source {name} is paused")
        self.name = name


def push_source_name(unit: str) -> str:
    """The source row of records pushed for ``unit``. Configured source names cannot
    contain ``:``, so it never collides with a polled source."""
    return f"push:{unit}"


@dataclass(slots=True)
class _Item:
    index: int
    raw: object
    code: str | None  # a well-formed MaHoSo, read before validation
    key: str = ""  # quarantine record key (set when first needed: some cost a hash)
    issues: list[FieldIssue] = field(default_factory=list)


# --- dossiers ----------------------------------------------------------------------------


async def ingest_dossiers(
    session: AsyncSession,
    caller: Principal,
    items: Sequence[object],
    now: datetime,
    *,
    field_name: str = "dossiers",
) -> IngestResult:
    """Validate, store and answer pushed dossiers; quarantine what is refused."""
    source_id, result = await _open(session, caller, now)
    catalogue = await CatalogueRepository(session).procedure_codes()
    procedures = catalogue or None  # not fetched yet: the portal will check MaTTHC
    refused: list[_Item] = []
    valid: list[tuple[_Item, Dossier]] = []
    for index, raw in enumerate(items):
        code = _readable_code(raw)
        item = _Item(index, raw, code, f"dossier:{code}" if code else _raw_key("dossier", raw))
        item.issues = _reach_issues(caller, code)
        if not item.issues:
            try:
                dossier = parse_dossier(raw, procedures=procedures)
            except RecordInvalid as invalid:
                item.issues = list(invalid.issues)
            else:
                item.issues = nul_issues(raw)
                if not item.issues:
                    valid.append((item, dossier))
                    continue
        refused.append(item)

    answers = await _store_dossiers(session, source_id, caller, valid, now)
    for item in refused:
        answers[item.index] = _rejected(item, field_name)
    await _quarantine(session, source_id, caller, refused, now, kind="dossier")
    await _resolve(session, source_id, _in_order([i for i, _ in valid], refused), now)
    await SourceRepository(session).record_poll(source_id, now)
    result.items = [answers[index] for index in range(len(items))]
    return result


async def _store_dossiers(
    session: AsyncSession,
    source_id: int,
    caller: Principal,
    valid: Sequence[tuple[_Item, Dossier]],
    now: datetime,
) -> dict[int, ItemResult]:
    """Store the last state of each dossier; answer every valid item."""
    last: dict[str, tuple[_Item, Dossier]] = {}
    occurrences: dict[str, int] = {}
    for item, dossier in valid:
        last[dossier.MaHoSo] = (item, dossier)
        occurrences[dossier.MaHoSo] = occurrences.get(dossier.MaHoSo, 0) + 1
    repeated = [code for code, n in occurrences.items() if n > 1]
    # Only a dossier sent twice in one batch needs its stored hash: its earlier states
    # are answered against what came before them, not against the last one.
    previous: dict[str, str | None] = dict(
        await DossierRepository(session).content_hashes(repeated) if repeated else {}
    )
    report = await store(
        session,
        [
            IncomingDossier(
                dossier,
                read_at=now,
                source_id=source_id,
                source_record_id=f"key:{caller.key_id}",  # which key wrote this version
            )
            # In code order, so that concurrent batches insert and lock rows in the same
            # order and cannot deadlock each other.
            for _code, (_item, dossier) in sorted(last.items())
        ],
        [],
        now,
    )
    stored = {s.ma_ho_so: s for s in report.dossiers}
    answers: dict[int, ItemResult] = {}
    for item, dossier in valid:
        code = dossier.MaHoSo
        is_last = last[code][0] is item
        if occurrences[code] == 1:
            changed = stored[code].outcome is not StoreOutcome.UNCHANGED
        else:
            content_hash = dossier.content_hash()
            changed = previous.get(code) != content_hash
            previous[code] = content_hash
        answers[item.index] = ItemResult(
            item.index,
            ItemStatus.ACCEPTED if changed else ItemStatus.UNCHANGED,
            code,
            version=stored[code].version if is_last else None,
        )
    return answers


# --- progress ----------------------------------------------------------------------------


async def ingest_progress(
    session: AsyncSession,
    caller: Principal,
    items: Sequence[object],
    now: datetime,
    *,
    field_name: str = "records",
) -> IngestResult:
    """Validate, store and answer pushed progress records; quarantine what is refused."""
    source_id, result = await _open(session, caller, now)
    refused: list[_Item] = []
    parsed: list[tuple[_Item, ProgressRecord, str]] = []  # with the step's identity hash
    for index, raw in enumerate(items):
        code = _readable_code(raw)
        item = _Item(index, raw, code)
        item.issues = _reach_issues(caller, code)
        if not item.issues:
            try:
                record = parse_progress(raw)
            except RecordInvalid as invalid:
                item.issues = list(invalid.issues)
            else:
                # Keyed by the step's identity, so that the same step sent again once
                # its dossier is stored resolves the entry of its first refusal.
                identity = record.identity_hash()
                item.key = f"progress:{record.MaHoSo}:{identity[:32]}"
                item.issues = nul_issues(raw)
                if not item.issues:
                    parsed.append((item, record, identity))
                    continue
        item.key = item.key or _raw_key("progress", raw)
        refused.append(item)

    repository = DossierRepository(session)
    ids = await repository.ids_by_code({r.MaHoSo for _, r, _ in parsed}) if parsed else {}
    known: list[tuple[_Item, ProgressRecord, str]] = []
    for item, record, identity in parsed:
        if record.MaHoSo in ids:
            known.append((item, record, identity))
        else:
            item.issues = [FieldIssue(("MaHoSo",), DOSSIER_NOT_STORED, NOT_STORED_MESSAGE)]
            refused.append(item)
    added = await repository.add_new_progress(
        [IncomingProgress(ids[r.MaHoSo], r, now, identity) for _, r, identity in known]
    )
    await OutboxRepository(session).mark_progress_pending({d for d, _ in added}, now)

    answers: dict[int, ItemResult] = {}
    answered: set[tuple[int, str]] = set()
    for item, record, identity in known:
        step = (ids[record.MaHoSo], identity)
        # The first of equal steps in the batch is the one that was stored.
        new = step in added and step not in answered
        answered.add(step)
        status = ItemStatus.ACCEPTED if new else ItemStatus.UNCHANGED
        answers[item.index] = ItemResult(item.index, status, record.MaHoSo)
    for item in refused:
        answers[item.index] = _rejected(item, field_name)
    await _quarantine(session, source_id, caller, refused, now, kind="progress")
    await _resolve(session, source_id, _in_order([i for i, _, _ in known], refused), now)
    await SourceRepository(session).record_poll(source_id, now)
    result.items = [answers[index] for index in range(len(items))]
    return result


# --- shared --------------------------------------------------------------------------------


async def _open(
    session: AsyncSession, caller: Principal, now: datetime
) -> tuple[int, IngestResult]:
    """The caller's push source (created on first use); refuses when it is paused."""
    name = push_source_name(caller.unit)
    sources = SourceRepository(session)
    # Read first: the upsert of `ensure` locks the row until commit, which would queue
    # every concurrent call of the unit behind the one in flight.
    source = await sources.get_by_name(name) or await sources.ensure(name, PUSH_DIALECT, now)
    if source.paused:
        raise SourcePaused(name)
    return source.id, IngestResult(name)


def _in_order(valid: Iterable[_Item], refused: Iterable[_Item]) -> list[tuple[_Item, bool]]:
    """Every item with whether it went through, in request order."""
    out = [(item, True) for item in valid] + [(item, False) for item in refused]
    return sorted(out, key=lambda pair: pair[0].index)


async def _resolve(
    session: AsyncSession, source_id: int, items: Sequence[tuple[_Item, bool]], now: datetime
) -> None:
    """Close the quarantine entries of records whose last occurrence went through (an
    entry refused earlier in the same batch included: it was put before this runs)."""
    final: dict[str, bool] = {}
    for item, ok in items:
        final[item.key] = ok
    keys = [key for key, ok in final.items() if ok]
    if keys:
        await QuarantineRepository(session).resolve(source_id, keys, now)


async def _quarantine(
    session: AsyncSession,
    source_id: int,
    caller: Principal,
    refused: Sequence[_Item],
    now: datetime,
    *,
    kind: str,
) -> None:
    repository = QuarantineRepository(session)
    for item in sorted(refused, key=lambda i: i.index):
        first = item.issues[0]
        mine = item.code is not None and first.code != OUT_OF_REACH
        # An item outside the key's reach is filed under the caller's unit, without its
        # code: attached to the dossier it names, it would let one unit's key make
        # another unit's dossier look quarantined.
        ma_ho_so = item.code if mine else None
        agency = agency_of_dossier(item.code) if mine and item.code else caller.agency
        await repository.put(
            QuarantineItem(
                source_id=source_id,
                record_key=item.key,
                kind=kind,
                raw=_storable_raw(item.raw),
                reason_code=first.code if first.code in _OWN_REASONS else INVALID,
                reason=first.describe(),
                errors=[issue.to_dict() for issue in item.issues],
                ma_ho_so=ma_ho_so,
                unit=unit_of(agency) if agency else caller.unit,
                agency=agency,
            ),
            now,
        )


def _rejected(item: _Item, field_name: str) -> ItemResult:
    prefix = f"{field_name}[{item.index}]"
    errors = tuple(
        ItemError(issue.render_path(prefix), issue.code, issue.message) for issue in item.issues
    )
    return ItemResult(item.index, ItemStatus.REJECTED, item.code, errors=errors)


def _readable_code(raw: object) -> str | None:
    if isinstance(raw, Mapping):
        code = raw.get("MaHoSo")
        if isinstance(code, str) and is_dossier_code(code):
            return code
    return None


def _reach_issues(caller: Principal, code: str | None) -> list[FieldIssue]:
    if code is None or caller.covers(agency_of_dossier(code)):
        return []  # a missing or malformed MaHoSo is the validation's to report
    return [FieldIssue(("MaHoSo",), OUT_OF_REACH, OUT_OF_REACH_MESSAGE)]


def _raw_key(kind: str, raw: object) -> str:
    """A quarantine key for a record known only by its content: sending the same broken
    record again finds its entry (and counts the sighting) instead of adding one."""
    digest = hashlib.sha256(canonical_json(storable(raw))).hexdigest()
    return f"{kind}:sha256:{digest[:40]}"


def _storable_raw(raw: object) -> dict[str, Any]:
    """The raw item as the quarantine can keep it: a JSON object (a non-object item is
    wrapped as ``{"item": …}``) that both databases accept."""
    safe = storable(raw)
    return safe if isinstance(safe, dict) else {"item": safe}

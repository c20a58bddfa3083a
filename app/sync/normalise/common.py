"""What every dialect's normalisation shares: status maps, source dates, the outcome types,
and the builder that turns a source record into a portal form while noting problems.

A record either becomes a valid :class:`Dossier` (with its progress records) or is
rejected with reasons that name the source field at fault; never anything in between.
A single history entry that cannot be mapped is rejected on its own: the dossier and
its other steps still go through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.agency import agency_of_dossier, is_dossier_code, unit_of
from app.domain.dates import VN_TZ
from app.domain.dossier import Dossier, parse_dossier
from app.domain.progress import ProgressRecord, parse_progress
from app.domain.status import DossierStatus
from app.domain.storable import nul_issues
from app.domain.validation import FieldIssue, RecordInvalid

# Default maps, source status → TrangThaiHoSo (source-dialects.md). Gaps are on purpose:
# an unmapped status is quarantined until the deployment maps it.
DEFAULT_STATUS_MAPS: Mapping[str, Mapping[str, str]] = {
    "opencps": {
        "new": "1",
        "receiving": "1",
        "processing": "4",
        "handover": "4",
        "interoperating": "4",
        "waiting": "5",
        "correcting": "5",
        "paying": "6",
        "cancelling": "7",
        "cancelled": "7",
        "unresolved": "8",
        "denied": "3",
        "releasing": "9",
        "posting": "9",
        "done": "10",
    },
    "igate": {
        "0": "1",
        "1": "1",
        "2": "2",
        "3": "4",
        "4": "9",
        "5": "10",
        "6": "3",
        "7": "5",
        "8": "6",
        "9": "7",
        "10": "8",
    },
    "dvclt": {"2": "5", "3": "2", "4": "9", "5": "10", "6": "3", "7": "4"},
}


class StatusMap:
    """A dialect's default map with a source's overrides on top."""

    def __init__(self, dialect: str, overrides: Mapping[str, str] | None = None) -> None:
        self.table: dict[str, DossierStatus] = {
            code: DossierStatus(status)
            for code, status in {**DEFAULT_STATUS_MAPS[dialect], **(overrides or {})}.items()
        }

    def get(self, source_status: object) -> DossierStatus | None:
        return self.table.get(str(source_status)) if source_status is not None else None

    def fingerprint(self) -> str:
        """Changes exactly when the effective map changes (quarantine is then re-evaluated).

        JSON, so that no source code containing ``,`` or ``=`` can make two maps alike."""
        pairs = sorted((k, v.value) for k, v in self.table.items())
        return json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The configured portal's reference data, as last fetched."""

    procedures: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    agencies: Mapping[str, str] = field(default_factory=dict)  # MaCoQuan → TenCoQuan

    def procedure_codes(self) -> set[str] | None:
        """For validation: ``None`` while the catalogue has not been fetched (no check)."""
        return set(self.procedures) if self.procedures else None


@dataclass(frozen=True, slots=True)
class Context:
    """What a source's normalisation needs besides the record."""

    statuses: StatusMap
    catalogue: Catalogue = field(default_factory=Catalogue)
    # Units or agencies this source serves; a dossier of anything else is quarantined.
    agencies: tuple[str, ...] = ()
    agency_map: Mapping[str, str] = field(default_factory=dict)  # DVCLT maDonVi → agency

    def serves(self, agency: str) -> bool:
        return not self.agencies or any(
            agency == served or (served.startswith("000.00.00.") and unit_of(agency) == served)
            for served in self.agencies
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record (or one history entry) that must not be pushed, and why."""

    key: str  # quarantine key: "dossier:4711", "action:9", "message:12", …
    kind: str  # dossier | progress
    raw: dict[str, Any]
    reason_code: str  # unmapped_status, unparsable_date, invalid, unknown_procedure, …
    reason: str
    errors: list[dict[str, str]]
    ma_ho_so: str | None

    @property
    def agency(self) -> str | None:
        code = self.ma_ho_so
        return agency_of_dossier(code) if code is not None and is_dossier_code(code) else None

    @property
    def unit(self) -> str | None:
        agency = self.agency
        return unit_of(agency) if agency else None


@dataclass(frozen=True, slots=True)
class Normalised:
    """One source record, normalised: a valid dossier and its steps, or a rejection, plus
    rejections of single steps that could not be mapped."""

    key: str
    record_id: str
    modified_at: datetime | None
    dossier: Dossier | None
    progress: tuple[ProgressRecord, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    # Quarantine keys that are now fine (the record or step went through this time).
    valid_keys: tuple[str, ...] = ()


class Problem(Exception):  # noqa: N818 - a finding, collected rather than raised to the top
    def __init__(self, path: str, code: str, message: str) -> None:
        self.issue = {"path": path, "code": code, "message": message}
        super().__init__(message)


class FormBuilder:
    """Builds a portal form from a source record, noting problems against source paths.

    Mapping problems (an unmapped status, a date that does not parse) are the source's;
    the contract's own validation runs afterwards on the finished form.
    """

    def __init__(self) -> None:
        self.form: dict[str, Any] = {}
        self.problems: list[dict[str, str]] = []

    def put(self, name: str, value: Any) -> None:
        """Set a portal field; empty values are left out (a field with no source)."""
        if value is None or value in ("", []):
            return
        self.form[name] = value

    def date(
        self, name: str, value: Any, path: str, parse: Callable[[Any], datetime | None]
    ) -> datetime | None:
        try:
            parsed = parse(value)
        except Problem as problem:
            self.problems.append(problem.issue | {"path": path})
            return None
        if parsed is not None:
            # The aware datetime itself: the contract's validator takes it as it is, where
            # its 14-digit text would be formatted here only to be parsed back there.
            self.form[name] = parsed
        return parsed

    def status(self, value: Any, path: str, statuses: StatusMap) -> DossierStatus | None:
        status = statuses.get(value)
        if status is None:
            self.problems.append(
                {
                    "path": path,
                    "code": "unmapped_status",
                    "message": f"trạng thái nguồn {value!r} chưa được ánh xạ sang TrangThaiHoSo",
                }
            )
        return status

    def problem(self, path: str, code: str, message: str) -> None:
        self.problems.append({"path": path, "code": code, "message": message})


_DMY = re.compile(r"[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}")


def parse_dmy(value: Any) -> datetime | None:
    """``dd/MM/yyyy HH:mm:ss`` local time (OpenCPS, DVCLT); ``""`` or null: unset."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Problem("", "unparsable_date", f"không phải ngày giờ: {value!r}")
    text = value.strip()
    try:
        if _DMY.fullmatch(text):
            # Every field its two (four) ASCII digits: what strptime makes of them, read
            # directly at a third of its cost (2.4 against 7.4 µs; every OpenCPS and
            # DVCLT date, every poll).
            return datetime(
                int(text[6:10]),
                int(text[3:5]),
                int(text[0:2]),
                int(text[11:13]),
                int(text[14:16]),
                int(text[17:19]),
                tzinfo=VN_TZ,
            )
        parsed = datetime.strptime(text, "%d/%m/%Y %H:%M:%S")  # noqa: DTZ007
    except ValueError:
        raise Problem("", "unparsable_date", f"ngày giờ không hợp lệ: {value!r}") from None
    return parsed.replace(tzinfo=VN_TZ)


def parse_iso(value: Any) -> datetime | None:
    """ISO-8601 with an offset (``2024-05-13T09:30:00.000+0700``), converted to
    Asia/Ho_Chi_Minh whatever offset it carries (iGate)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Problem("", "unparsable_date", f"không phải ngày giờ: {value!r}")
    try:
        # Python 3.11 reads ``+0700`` and ``Z`` offsets itself (3.10 needed them rewritten).
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Problem("", "unparsable_date", f"ngày giờ không hợp lệ: {value!r}") from None
    if parsed.tzinfo is None:
        raise Problem("", "unparsable_date", f"ngày giờ thiếu múi giờ: {value!r}")
    return parsed.astimezone(VN_TZ)


def first_reason(problems: list[dict[str, str]]) -> tuple[str, str]:
    first = problems[0]
    return first["code"], f"{first['path']}: {first['message']}"


def finish_dossier(
    builder: FormBuilder, key: str, raw: dict[str, Any], context: Context
) -> Dossier | Rejection:
    """Validate the built form with the contract's rules; a rejection when anything is
    wrong, naming the source field (mapping problems) or the portal field (contract)."""
    code = builder.form.get("MaHoSo")
    ma_ho_so = code if isinstance(code, str) else None
    if builder.problems:
        reason_code, reason = first_reason(builder.problems)
        return Rejection(key, "dossier", raw, reason_code, reason, builder.problems, ma_ho_so)
    try:
        dossier = parse_dossier(builder.form, procedures=context.catalogue.procedure_codes())
    except RecordInvalid as invalid:
        errors = [issue.to_dict() for issue in invalid.issues]
        reason_code = (
            "unknown_procedure" if invalid.first.code == "unknown_procedure" else "invalid"
        )
        return Rejection(key, "dossier", raw, reason_code, invalid.message(), errors, ma_ho_so)
    if unstorable := nul_issues(builder.form):
        return _unstorable(key, "dossier", raw, unstorable, ma_ho_so)
    if not context.serves(dossier.agency):
        reason = f"MaHoSo: cơ quan {dossier.agency} không thuộc các đơn vị nguồn này phục vụ"
        return Rejection(
            key,
            "dossier",
            raw,
            "agency_not_served",
            reason,
            [{"path": "MaHoSo", "code": "agency_not_served", "message": reason}],
            ma_ho_so,
        )
    return dossier


def finish_progress(
    builder: FormBuilder, key: str, raw: dict[str, Any]
) -> ProgressRecord | Rejection:
    code = builder.form.get("MaHoSo")
    ma_ho_so = code if isinstance(code, str) else None
    if builder.problems:
        reason_code, reason = first_reason(builder.problems)
        return Rejection(key, "progress", raw, reason_code, reason, builder.problems, ma_ho_so)
    try:
        record = parse_progress(builder.form)
    except RecordInvalid as invalid:
        errors = [issue.to_dict() for issue in invalid.issues]
        return Rejection(key, "progress", raw, "invalid", invalid.message(), errors, ma_ho_so)
    if unstorable := nul_issues(builder.form):
        return _unstorable(key, "progress", raw, unstorable, ma_ho_so)
    return record


def _unstorable(
    key: str, kind: str, raw: dict[str, Any], issues: list[FieldIssue], ma_ho_so: str | None
) -> Rejection:
    """Valid by the contract, but text PostgreSQL cannot hold: refused here, so that one
    record cannot fail the whole page that carries it."""
    errors = [issue.to_dict() for issue in issues]
    return Rejection(key, kind, raw, "invalid", issues[0].describe(), errors, ma_ho_so)


def assemble(
    key: str,
    record_id: str,
    modified_at: datetime | None,
    dossier: Dossier | Rejection,
    steps: list[tuple[str, ProgressRecord | Rejection]],
) -> Normalised:
    """Put a record's outcome together. A rejected dossier takes its steps with it: they
    are in its quarantined raw record and come back when it is re-evaluated."""
    if isinstance(dossier, Rejection):
        return Normalised(key, record_id, modified_at, None, rejections=(dossier,))
    progress = tuple(step for _, step in steps if isinstance(step, ProgressRecord))
    rejected = tuple(step for _, step in steps if isinstance(step, Rejection))
    valid = (key, *(step_key for step_key, step in steps if isinstance(step, ProgressRecord)))
    return Normalised(key, record_id, modified_at, dossier, progress, rejected, valid)
